// Float64 twins of kernels/softmax.ts: softmax and log-softmax over the last axis, with the max subtracted first.
import { type F64, empty } from './array.ts';

function rowMax(row: Float64Array): number {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  return m;
}

function rows(x: F64, f: (row: Float64Array, out: Float64Array) => void): F64 {
  if (x.shape.length === 0) throw new Error('softmax: needs at least one axis');
  const C = x.shape[x.shape.length - 1]!;
  const y = empty(x.shape);
  for (let r = 0; C > 0 && r < x.data.length / C; r++) f(x.data.subarray(r * C, r * C + C), y.data.subarray(r * C, r * C + C));
  return y;
}

// x: [..., C] -> [..., C]
export function softmax(x: F64): F64 {
  return rows(x, (row, out) => {
    const m = rowMax(row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    for (let i = 0; i < row.length; i++) out[i] = Math.exp(row[i]! - m) / s;
  });
}

// x: [..., C] -> [..., C]: x - max - log(sum(exp(x - max)))
export function logSoftmax(x: F64): F64 {
  return rows(x, (row, out) => {
    const m = rowMax(row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = Math.log(s);
    for (let i = 0; i < row.length; i++) out[i] = row[i]! - m - lse;
  });
}
