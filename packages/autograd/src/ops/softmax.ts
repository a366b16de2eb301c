// Softmax and log-softmax over the last axis. The forwards are the tensor kernels; the backwards are one fused
// kernel each, a row reduction followed by an elementwise write:
//   softmax:     y = softmax(x)     dx = y·(g − Σ g·y)
//   logSoftmax:  y = logSoftmax(x)  dx = g − exp(y)·Σ g
// Both need only y (the forward output), not x. Short rows: one invocation per row with a serial loop; long rows:
// one workgroup per row, a strided loop per thread and a tree in workgroup memory (fixed order: deterministic).
import * as tensor from '@dawngrad/tensor';
import { ref, grid, Tensor, WG, FLAT_INDEX, kernelFor, treeReduce } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

const SMALL_C = 32; // at or below: one invocation per row (as the forward kernel does)

type Kind = 'softmax' | 'logSoftmax';

// the per-element term of the row sum, and the gradient written from it (s = the row sum)
const TERM: Record<Kind, string> = { softmax: 'g * y', logSoftmax: 'g' };
const DX: Record<Kind, string> = { softmax: 'y * (g - s)', logSoftmax: 'g - exp(y) * s' };

// y, g: [rows, C] -> dx: [rows, C]; one invocation per row: the row sum, then the write
function smallKernel(kind: Kind) {
  return kernelFor(`softmaxBackwardSmall:${kind}`, () => ({
    params: { rows: 'u32', C: 'u32' },
    bindings: { Y: 'f32', G: 'f32', DX: 'rw f32' },
    body: `${FLAT_INDEX}
  if (i >= p.rows) { return; }
  let base = i * p.C;
  var s = 0.0;
  for (var k = 0u; k < p.C; k++) { let y = Y[base + k]; let g = G[base + k]; s += ${TERM[kind]}; }
  for (var k = 0u; k < p.C; k++) { let y = Y[base + k]; let g = G[base + k]; DX[base + k] = ${DX[kind]}; }`,
  }));
}

// the same with one workgroup of W per row: strided partial sums, a tree, then the strided write
function rowKernel(kind: Kind, W: number) {
  return kernelFor(`softmaxBackwardRows:${kind}:w${W}`, () => ({
    workgroupSize: [W],
    params: { rows: 'u32', C: 'u32' },
    bindings: { Y: 'f32', G: 'f32', DX: 'rw f32' },
    decls: `const W = ${W}u;\nvar<workgroup> sh: array<f32, W>;`,
    body: `  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; } // uniform per workgroup, so the barriers stay legal
  let base = row * p.C;
  var acc = 0.0;
  for (var k = lid.x; k < p.C; k += W) { let y = Y[base + k]; let g = G[base + k]; acc += ${TERM[kind]}; }
  sh[lid.x] = acc;
  ${treeReduce(W, 'lid.x', (h) => `sh[lid.x] += sh[lid.x + ${h}];`)}
  let s = sh[0]; // the row sum
  for (var k = lid.x; k < p.C; k += W) { let y = Y[base + k]; let g = G[base + k]; DX[base + k] = ${DX[kind]}; }`,
  }));
}

/** dx from the forward output y and the upstream gradient g, both [..., C]. */
function softmaxBackward(kind: Kind, g: Tensor, y: Tensor): Tensor {
  const C = y.shape[y.rank - 1]!;
  const dx = Tensor.empty(y.shape, 'f32');
  const rows = C === 0 ? 0 : y.size / C;
  if (rows === 0) return dx;
  const buffers = { Y: y, G: g, DX: dx };
  if (C <= SMALL_C) smallKernel(kind).run(buffers, { rows, C }, grid(Math.ceil(rows / WG)));
  else rowKernel(kind, C <= 256 ? 64 : 256).run(buffers, { rows, C }, grid(rows));
  return dx;
}

// The same rules in float64, row by row.
function cpuBackward(kind: Kind, g: F64, y: F64): F64 {
  const C = y.shape[y.shape.length - 1]!;
  const dx = ref.empty(y.shape);
  for (let base = 0; C > 0 && base < y.data.length; base += C) {
    let s = 0;
    for (let k = 0; k < C; k++) s += kind === 'softmax' ? g.data[base + k]! * y.data[base + k]! : g.data[base + k]!;
    for (let k = 0; k < C; k++) {
      const yv = y.data[base + k]!;
      const gv = g.data[base + k]!;
      dx.data[base + k] = kind === 'softmax' ? yv * (gv - s) : gv - Math.exp(yv) * s;
    }
  }
  return dx;
}

// x: [..., C] -> y: [..., C]
export const SOFTMAX = defineOp<null>({
  name: 'softmax',
  rule: 'y = softmax(x): dx = y·(g − Σ_c g·y) over the last axis',
  forward: ([x]) => tensor.softmax(x!),
  backward: (g, { out: y }) => [softmaxBackward('softmax', g, y)],
  cpu: {
    forward: ([x]) => ref.softmax(x!),
    backward: (g, { out: y }) => [cpuBackward('softmax', g, y)],
  },
});

export const LOG_SOFTMAX = defineOp<null>({
  name: 'logSoftmax',
  rule: 'y = logSoftmax(x): dx = g − exp(y)·Σ_c g over the last axis',
  forward: ([x]) => tensor.logSoftmax(x!),
  backward: (g, { out: y }) => [softmaxBackward('logSoftmax', g, y)],
  cpu: {
    forward: ([x]) => ref.logSoftmax(x!),
    backward: (g, { out: y }) => [cpuBackward('logSoftmax', g, y)],
  },
});

/** Softmax over the last axis. x: [..., C] -> [..., C] */
export const softmax = (x: Var) => apply(SOFTMAX, [x], null);
/** Log-softmax over the last axis. x: [..., C] -> [..., C] */
export const logSoftmax = (x: Var) => apply(LOG_SOFTMAX, [x], null);
