// Softmax and log-softmax over the last axis, numerically stable: subtract the row max before exp, so every exp is
// of a value <= 0 (no overflow) and the sum is >= 1 (no log(0)); -Infinity entries (masks) become exactly 0.
// Long rows: one workgroup per row, three sweeps (max, sum of exp, write) with tree reductions in workgroup memory.
// (An online one-sweep max+sum would read x once less but turns all -Infinity chunks into NaN without extra care.)
// Short rows (C <= 32), and any rows on a software adapter: one invocation per row (see rowStrategy in reduce.ts).
import { rt, grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG, FLAT_INDEX, MAIN_SIG } from './elementwise.ts';
import { rowStrategy } from './reduce.ts';

function output(log: boolean): string {
  return log ? 'x - m - log(total)' : 'exp(x - m) / total';
}

function rowKernel(log: boolean, W: number) {
  return {
    key: `softmaxRows:${log ? 'log' : 'exp'}:w${W}`,
    wgsl: () => `
const W = ${W}u;
struct P { rows: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
var<workgroup> sh: array<f32, W>;
@compute @workgroup_size(W) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; } // uniform per workgroup
  let base = row * p.C;
  // 1. the row max (each thread starts from element 0: max ignores repeats)
  var m = X[base];
  for (var k = lid.x; k < p.C; k += W) { m = max(m, X[base + k]); }
  sh[lid.x] = m;
  workgroupBarrier();
  for (var h = W / 2u; h > 0u; h >>= 1u) {
    if (lid.x < h) { sh[lid.x] = max(sh[lid.x], sh[lid.x + h]); }
    workgroupBarrier();
  }
  m = sh[0];
  workgroupBarrier(); // everyone has read the max before sh is reused
  // 2. the sum of exp(x - max)
  var s = 0.0;
  for (var k = lid.x; k < p.C; k += W) { s += exp(X[base + k] - m); }
  sh[lid.x] = s;
  workgroupBarrier();
  for (var h = W / 2u; h > 0u; h >>= 1u) {
    if (lid.x < h) { sh[lid.x] += sh[lid.x + h]; }
    workgroupBarrier();
  }
  let total = sh[0];
  // 3. write
  for (var k = lid.x; k < p.C; k += W) { let x = X[base + k]; Y[base + k] = ${output(log)}; }
}`,
  };
}

function threadKernel(log: boolean) {
  return {
    key: `softmaxThread:${log ? 'log' : 'exp'}`,
    wgsl: () => `
struct P { rows: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${MAIN_SIG} {
  ${FLAT_INDEX}
  if (i >= p.rows) { return; }
  let base = i * p.C;
  var m = X[base];
  for (var k = 1u; k < p.C; k++) { m = max(m, X[base + k]); }
  var total = 0.0;
  for (var k = 0u; k < p.C; k++) { total += exp(X[base + k] - m); }
  for (var k = 0u; k < p.C; k++) { let x = X[base + k]; Y[base + k] = ${output(log)}; }
}`,
  };
}

function softmaxLike(name: string, x: Tensor, log: boolean): Tensor {
  if (x.dtype !== 'f32') throw new Error(`${name}: needs f32, got ${x.dtype}`);
  if (x.rank === 0) throw new Error(`${name}: needs at least one axis, got a scalar`);
  const C = x.shape[x.rank - 1]!;
  const y = Tensor.empty(x.shape, 'f32');
  const rows = C === 0 ? 0 : x.size / C;
  if (rows === 0) return y;
  if (rowStrategy(rows, C) === 'thread') {
    rt().dispatch({ kernel: threadKernel(log), buffers: [x.buffer, y.buffer], params: [rows, C], workgroups: grid(Math.ceil(rows / WG)) });
  } else {
    const W = C <= 256 ? 64 : 256;
    rt().dispatch({ kernel: rowKernel(log, W), buffers: [x.buffer, y.buffer], params: [rows, C], workgroups: grid(rows) });
  }
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
