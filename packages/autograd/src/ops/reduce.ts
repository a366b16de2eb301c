// Reductions over axes: sum, mean, max (keepdim optional).
// sum/mean backward: broadcast g back over the reduced axes (mean also divides by the count).
// max backward: the whole of g goes to ONE element per output — the argmax, the FIRST maximal element in row-major
// order on ties (as the CPU twin does); every other element gets 0. (PyTorch's amax spreads g evenly over ties;
// a subgradient either way, and first-index keeps the GPU kernel a plain argmax.)
// The forwards are the tensor package's reductions; max's backward is an argmax and then one invocation per element
// of dx that keeps g only at its group's argmax (a select, no scatter).
import * as tensor from '@dawngrad/tensor';
import { ref, grid, Tensor, WG, FLAT_INDEX, defineKernel, type Shape } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

export interface ReduceAttrs {
  /** axes to reduce (negative counts from the end); undefined: all of them */
  axes?: number | readonly number[];
  keepdim?: boolean;
}

/** The axes as sorted, distinct, non-negative numbers. */
function axesOf(op: string, attrs: ReduceAttrs, rank: number): number[] {
  return tensor.normAxes(op, attrs.axes, rank);
}

/** x.shape with the reduced axes set to 1: the shape g takes before it is broadcast back. */
function keptShape(shape: Shape, axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

const count = (shape: Shape, axes: number[]) => axes.reduce((n, a) => n * shape[a]!, 1);

// ---- sum / mean ----------------------------------------------------------------------------------------------------

// x: [..., K, ...] -> y: [..., (1), ...]; dx = g broadcast back to x's shape (·1/K for the mean)
function sumLike(name: 'sum' | 'mean') {
  const isMean = name === 'mean';
  return defineOp<ReduceAttrs>({
    name,
    rule: isMean ? 'dx = g broadcast back over the reduced axes, divided by K' : 'dx = g broadcast back over the reduced axes',
    forward: ([x], a) => (isMean ? tensor.mean : tensor.sum)(x!, a.axes, a.keepdim ?? false),
    backward(g, { inputs: [x], attrs: a }) {
      const axes = axesOf(name, a, x!.rank);
      const dx = tensor.broadcastTo(g.reshape(keptShape(x!.shape, axes)), x!.shape);
      return [isMean ? tensor.unary('mulScalar', dx, 1 / count(x!.shape, axes)) : dx];
    },
    cpu: {
      forward: ([x], a) => (isMean ? ref.mean : ref.sum)(x!, a.axes, a.keepdim ?? false),
      backward(g, { inputs: [x], attrs: a }) {
        const axes = ref.normAxes(a.axes, x!.shape.length);
        const dx = ref.broadcastTo(ref.reshape(g, keptShape(x!.shape, axes)), x!.shape);
        if (isMean) dx.data.forEach((v, i) => (dx.data[i] = v / count(x!.shape, axes)));
        return [dx];
      },
    },
  });
}

export const SUM = sumLike('sum');
export const MEAN = sumLike('mean');

// ---- max -----------------------------------------------------------------------------------------------------------

// x viewed as [outer, K, inner], idx: [outer, inner] (the argmax along K), g: [outer, inner] -> dx: [outer, K, inner]
// One invocation per element of dx: it is g where its k is the argmax of its column, else 0.
const routeKernel = defineKernel({
  name: 'maxBackwardRoute',
  params: { n: 'u32', K: 'u32', inner: 'u32' },
  bindings: { G: 'f32', Idx: 'i32', DX: 'rw f32' },
  body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let j = i % p.inner;
  let k = (i / p.inner) % p.K;
  let o = i / (p.inner * p.K);
  let col = o * p.inner + j;
  DX[i] = select(0.0, G[col], u32(Idx[col]) == k);`,
});

/** dx for y = max(x, axes): g routed to the first argmax of each reduced group. */
function maxBackward(g: Tensor, x: Tensor, axes: number[]): Tensor {
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  if (!contiguous) {
    // bring the reduced axes to the end (keeping their order, so "first" still means row-major first), then back
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const perm = [...kept, ...axes];
    const dxp = maxBackward(g, tensor.permute(x, perm), axes.map((_, i) => kept.length + i));
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return tensor.permute(dxp, inverse);
  }
  const outer = count(x.shape, x.shape.map((_, i) => i).filter((i) => i < axes[0]!));
  const K = count(x.shape, axes);
  const inner = x.size / (outer * K || 1);
  const idx = tensor.argmax(x.reshape([outer, K, inner]), 1); // [outer, inner], first index on ties
  const dx = Tensor.empty(x.shape, 'f32');
  routeKernel.run({ G: g, Idx: idx, DX: dx }, { n: x.size, K, inner }, grid(Math.ceil(x.size / WG)));
  return dx;
}

export const MAX = defineOp<ReduceAttrs>({
  name: 'max',
  rule: 'dx = g at the first argmax of each reduced group (row-major order on ties), 0 elsewhere',
  forward: ([x], a) => tensor.max(x!, a.axes, a.keepdim ?? false),
  backward: (g, { inputs: [x], attrs: a }) => [maxBackward(g, x!, axesOf('max', a, x!.rank))],
  cpu: {
    forward: ([x], a) => ref.max(x!, a.axes, a.keepdim ?? false),
    backward(g, { inputs: [x], out: y, attrs: a }) {
      // walk x in row-major order; the first element equal to its group's max takes the group's gradient
      const axes = ref.normAxes(a.axes, x!.shape.length);
      const kshape = keptShape(x!.shape, axes);
      const dx: F64 = { shape: [...x!.shape], data: new Float64Array(x!.data.length) };
      const taken = new Uint8Array(y.data.length);
      for (let i = 0; i < x!.data.length; i++) {
        const c = ref.unravel(i, x!.shape);
        const o = ref.ravel(c.map((v, d) => (axes.includes(d) ? 0 : v)), kshape);
        if (!taken[o] && x!.data[i] === y.data[o]) {
          taken[o] = 1;
          dx.data[i] = g.data[o]!;
        }
      }
      return [dx];
    },
  },
});

// ---- public ops ----------------------------------------------------------------------------------------------------

/** Σ over `axes` (default all). x: [..., K, ...] -> [..., (1 if keepdim), ...] */
export const sum = (x: Var, axes?: number | readonly number[], keepdim = false) => apply(SUM, [x], { axes, keepdim });
/** Mean over `axes` (default all). */
export const mean = (x: Var, axes?: number | readonly number[], keepdim = false) => apply(MEAN, [x], { axes, keepdim });
/** Maximum over `axes` (default all); its gradient goes to the first maximal element of each group. */
export const max = (x: Var, axes?: number | readonly number[], keepdim = false) => apply(MAX, [x], { axes, keepdim });
