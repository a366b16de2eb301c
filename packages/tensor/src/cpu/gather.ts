// Float64 twins of kernels/gather.ts: embedding lookup, its gradient, and take() along an axis.
import { type F64, empty, size, normAxis } from './array.ts';

// table: [V, C], ids: [...] -> [..., C]. Out-of-range ids give zero rows, as the kernel does.
export function gatherRows(table: F64, ids: F64): F64 {
  const [V, C] = table.shape as [number, number];
  const out = empty([...ids.shape, C]);
  ids.data.forEach((id, n) => {
    if (id >= 0 && id < V) out.data.set(table.data.subarray(id * C, id * C + C), n * C);
  });
  return out;
}

// grad: [..., C], ids: [...] -> [V, C]: each grad row added to the row its id names (out-of-range ids are skipped).
export function scatterAddRows(grad: F64, ids: F64, V: number): F64 {
  const C = grad.shape[grad.shape.length - 1]!;
  const out = empty([V, C]);
  ids.data.forEach((id, n) => {
    if (id < 0 || id >= V) return;
    for (let c = 0; c < C; c++) out.data[id * C + c]! += grad.data[n * C + c]!;
  });
  return out;
}

// x: [...pre, N, ...post] (N at `axis`), idx: [...I] -> [...pre, ...I, ...post] (numpy.take). Out-of-range indices give zeros.
export function take(x: F64, idx: F64, axis = 0): F64 {
  const ax = normAxis(axis, x.shape.length);
  const N = x.shape[ax]!;
  const outer = size(x.shape.slice(0, ax));
  const inner = size(x.shape.slice(ax + 1));
  const M = idx.data.length;
  const out = empty([...x.shape.slice(0, ax), ...idx.shape, ...x.shape.slice(ax + 1)]);
  for (let o = 0; o < outer; o++) {
    for (let m = 0; m < M; m++) {
      const src = idx.data[m]!;
      if (src < 0 || src >= N) continue;
      for (let k = 0; k < inner; k++) out.data[(o * M + m) * inner + k] = x.data[(o * N + src) * inner + k]!;
    }
  }
  return out;
}
