// Softmax and log-softmax over the last axis, numerically stable: subtract the row max before exp, so every exp is
// of a value <= 0 (no overflow) and the sum is >= 1 (no log(0)); -Infinity entries (masks) become exactly 0.
// Long rows: one workgroup per row, three sweeps (max, sum of exp, write) with tree reductions in workgroup memory.
// (An online one-sweep max+sum would read x once less but turns all -Infinity chunks into NaN without extra care.)
// Short rows (C <= 32), and any rows on a software adapter: one invocation per row (see rowStrategy in reduce.ts).
import { grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor, treeReduce } from '../kernel.ts';
import { rowStrategy } from './reduce.ts';

function output(log: boolean): string {
  return log ? 'x - m - log(total)' : 'exp(x - m) / total';
}

// x: [rows, C] -> y: [rows, C]; one workgroup of W per row
function rowKernel(log: boolean, W: number) {
  return kernelFor(`softmaxRows:${log ? 'log' : 'exp'}:w${W}`, () => ({
    workgroupSize: [W],
    params: { rows: 'u32', C: 'u32' },
    bindings: { X: 'f32', Y: 'rw f32' },
    decls: `const W = ${W}u;\nvar<workgroup> sh: array<f32, W>;`,
    body: `  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; } // uniform per workgroup, so the barriers below stay legal
  let base = row * p.C;
  // 1. the row max (each thread starts from element 0: max ignores repeats)
  var m = X[base];
  for (var k = lid.x; k < p.C; k += W) { m = max(m, X[base + k]); }
  sh[lid.x] = m;
  ${treeReduce(W, 'lid.x', (h) => `sh[lid.x] = max(sh[lid.x], sh[lid.x + ${h}]);`)}
  m = sh[0];
  workgroupBarrier(); // everyone has read the max before sh is reused
  // 2. the sum of exp(x - max)
  var partial = 0.0;
  for (var k = lid.x; k < p.C; k += W) { partial += exp(X[base + k] - m); }
  sh[lid.x] = partial;
  ${treeReduce(W, 'lid.x', (h) => `sh[lid.x] += sh[lid.x + ${h}];`)}
  let total = sh[0];
  // 3. write
  for (var k = lid.x; k < p.C; k += W) { let x = X[base + k]; Y[base + k] = ${output(log)}; }`,
  }));
}

// x: [rows, C] -> y: [rows, C]; one invocation per row, three serial sweeps
function threadKernel(log: boolean) {
  return kernelFor(`softmaxThread:${log ? 'log' : 'exp'}`, () => ({
    params: { rows: 'u32', C: 'u32' },
    bindings: { X: 'f32', Y: 'rw f32' },
    body: `${FLAT_INDEX}
  if (i >= p.rows) { return; }
  let base = i * p.C;
  var m = X[base];
  for (var k = 1u; k < p.C; k++) { m = max(m, X[base + k]); }
  var total = 0.0;
  for (var k = 0u; k < p.C; k++) { total += exp(X[base + k] - m); }
  for (var k = 0u; k < p.C; k++) { let x = X[base + k]; Y[base + k] = ${output(log)}; }`,
  }));
}

function softmaxLike(name: string, x: Tensor, log: boolean): Tensor {
  if (x.dtype !== 'f32') throw new Error(`${name}: needs f32, got ${x.dtype}`);
  if (x.rank === 0) throw new Error(`${name}: needs at least one axis, got a scalar`);
  const C = x.shape[x.rank - 1]!;
  const y = Tensor.empty(x.shape, 'f32');
  const rows = C === 0 ? 0 : x.size / C;
  if (rows === 0) return y;
  if (rowStrategy(rows, C) === 'thread') threadKernel(log).run({ X: x, Y: y }, { rows, C }, grid(Math.ceil(rows / WG)));
  else rowKernel(log, C <= 256 ? 64 : 256).run({ X: x, Y: y }, { rows, C }, grid(rows));
  return y;
}

// x: [..., C] -> [..., C], each row sums to 1
export function softmax(x: Tensor): Tensor {
  return softmaxLike('softmax', x, false);
}

// x: [..., C] -> [..., C] = x - max - log(sum(exp(x - max)))
export function logSoftmax(x: Tensor): Tensor {
  return softmaxLike('logSoftmax', x, true);
}
