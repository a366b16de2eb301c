// Shape ops. reshape is a free view (storage is contiguous); permute/transpose, slice and concat copy.
// Their backwards move g back where the forward took it from: reshape back, permute by the inverse, zero-pad a slice,
// slice a concat, sum an expand back over the dims it broadcast. take() picks rows by an index list; its backward
// scatter-adds rows back (repeats accumulate). No kernels of their own: every copy is the tensor package's one
// strided-copy kernel (or a buffer copy when the block is contiguous).
import * as tensor from '@dawngrad/tensor';
import { ref, type Tensor, type Shape } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

// ---- reshape: a view -----------------------------------------------------------------------------------------------

export interface ReshapeAttrs {
  /** the new shape; one dim may be -1 */
  shape: readonly number[];
}

export const RESHAPE = defineOp<ReshapeAttrs>({
  name: 'reshape',
  rule: 'dx = reshape(g, x.shape)',
  forward: ([x], a) => x!.reshape(a.shape),
  backward: (g, { inputs: [x] }) => [g.reshape(x!.shape)],
  cpu: {
    forward: ([x], a) => ({ shape: resolveShape(x!.shape, a.shape), data: Float64Array.from(x!.data) }),
    backward: (g, { inputs: [x] }) => [{ shape: [...x!.shape], data: Float64Array.from(g.data) }],
  },
});

/** A shape with its -1 filled in, or an error naming both shapes. */
function resolveShape(from: readonly number[], to: readonly number[]): number[] {
  const n = from.reduce((a, b) => a * b, 1);
  const s = [...to];
  const hole = s.indexOf(-1);
  if (hole >= 0) s[hole] = n / s.filter((_, i) => i !== hole).reduce((a, b) => a * b, 1);
  if (s.reduce((a, b) => a * b, 1) !== n || s.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: [${from.join(', ')}] cannot become [${to.join(', ')}]`);
  }
  return s;
}

// ---- permute / transpose -------------------------------------------------------------------------------------------

export interface PermuteAttrs {
  /** out.shape[i] = x.shape[dims[i]] */
  dims: readonly number[];
}

/** The permutation that undoes `dims`. */
function inversePerm(dims: readonly number[]): number[] {
  const r = dims.length;
  const p = dims.map((d) => (d < 0 ? d + r : d));
  return p.map((_, i) => p.indexOf(i));
}

export const PERMUTE = defineOp<PermuteAttrs>({
  name: 'permute',
  rule: 'dx = permute(g, dims⁻¹)',
  forward: ([x], a) => tensor.permute(x!, a.dims),
  backward: (g, { attrs }) => [tensor.permute(g, inversePerm(attrs.dims))],
  cpu: {
    forward: ([x], a) => ref.permute(x!, a.dims),
    backward: (g, { attrs }) => [ref.permute(g, inversePerm(attrs.dims))],
  },
});

// ---- slice: backward zero-pads g into the input's shape ----------------------------------------------------------

export interface SliceAttrs {
  /** per-axis bounds [start, end); missing trailing axes are taken whole; negative bounds count from the end */
  starts: readonly number[];
  ends: readonly number[];
}

/** The first element the slice takes on each axis (bounds are validated by the forward). */
function sliceStarts(shape: Shape, starts: readonly number[]): number[] {
  return shape.map((d, i) => (starts[i] === undefined ? 0 : starts[i]! < 0 ? starts[i]! + d : starts[i]!));
}

// g: [e0 - s0, e1 - s1, ...] -> dx: x.shape, g written at the slice's offset, zeros around it
function padSlice(g: Tensor, xShape: Shape, starts: readonly number[]): Tensor {
  const dx = tensor.zeros(xShape);
  const st = tensor.stridesOf(xShape);
  const offset = sliceStarts(xShape, starts).reduce((acc, s, i) => acc + s * st[i]!, 0);
  tensor.stridedCopy(g, dx, g.shape, tensor.stridesOf(g.shape), 0, st, offset); // ordered after the fill: same stream
  return dx;
}

export const SLICE = defineOp<SliceAttrs>({
  name: 'slice',
  rule: 'dx = g zero-padded back to x.shape',
  forward: ([x], a) => tensor.slice(x!, a.starts, a.ends),
  backward: (g, { inputs: [x], attrs }) => [padSlice(g, x!.shape, attrs.starts)],
  cpu: {
    forward: ([x], a) => ref.slice(x!, a.starts, a.ends),
    backward(g, { inputs: [x], attrs: a }) {
      const lo = sliceStarts(x!.shape, a.starts);
      const dx = ref.empty(x!.shape);
      for (let i = 0; i < g.data.length; i++) {
        const c = ref.unravel(i, g.shape).map((v, d) => v + lo[d]!);
        dx.data[ref.ravel(c, x!.shape)] = g.data[i]!;
      }
      return [dx];
    },
  },
});

// ---- concat: backward slices g ---------------------------------------------------------------------------------------

export interface ConcatAttrs {
  axis: number;
}

/** [start, end) of each input along the concat axis. */
function concatRanges(shapes: Shape[], axis: number): { ax: number; bounds: [number, number][] } {
  const ax = axis < 0 ? axis + shapes[0]!.length : axis;
  let at = 0;
  const bounds = shapes.map((s): [number, number] => [at, (at += s[ax]!)]);
  return { ax, bounds };
}

/** Bounds for slice() that take [lo, hi) along `ax` and every other axis whole. */
const along = (shape: Shape, ax: number, lo: number, hi: number) => ({
  starts: shape.map((_, i) => (i === ax ? lo : 0)),
  ends: shape.map((d, i) => (i === ax ? hi : d)),
});

export const CONCAT = defineOp<ConcatAttrs>({
  name: 'concat',
  rule: 'dxᵢ = g sliced to xᵢ\'s range along the axis',
  forward: (xs, a) => tensor.concat(xs, a.axis),
  backward(g, { inputs: xs, attrs: a, needs }) {
    const { ax, bounds } = concatRanges(xs.map((x) => x.shape), a.axis);
    return bounds.map(([lo, hi], i) => {
      if (!needs[i]) return null;
      const b = along(g.shape, ax, lo, hi);
      return tensor.slice(g, b.starts, b.ends);
    });
  },
  cpu: {
    forward: (xs, a) => ref.concat(xs, a.axis),
    backward(g, { inputs: xs, attrs: a }) {
      const { ax, bounds } = concatRanges(xs.map((x) => x.shape), a.axis);
      return bounds.map(([lo, hi]) => {
        const b = along(g.shape, ax, lo, hi);
        return ref.slice(g, b.starts, b.ends);
      });
    },
  },
});

// ---- expand: broadcast to a larger shape (a copy); backward sums g back over the broadcast dims --------------------

export interface ExpandAttrs {
  /** the target shape; x.shape must broadcast to it (NumPy rules) */
  shape: readonly number[];
}

// x: [1, P, KV, D] -> [B, P, KV, D] (any NumPy broadcast); every copy of an element sends its gradient back to it
export const EXPAND = defineOp<ExpandAttrs>({
  name: 'expand',
  rule: 'dx = g summed over the broadcast dims back to x.shape',
  forward: ([x], a) => tensor.broadcastTo(x!, a.shape),
  backward: (g, { inputs: [x] }) => [sameShape(g.shape, x!.shape) ? g : tensor.sumTo(g, x!.shape)],
  cpu: {
    forward: ([x], a) => ref.broadcastTo(x!, a.shape),
    backward: (g, { inputs: [x] }) => [ref.sumTo(g, x!.shape)],
  },
});

const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

// ---- take: rows by an index list along axis 0 -------------------------------------------------------------------------

// x: [N, ...rest], idx: [M] (i32) -> [M, ...rest]; out-of-range indices give zero rows and get no gradient
export const TAKE = defineOp<null>({
  name: 'take',
  rule: 'dx[idx[m]] += g[m]: a scatter-add, repeated indices accumulate',
  differentiable: [true, false],
  forward: ([x, idx]) => tensor.take(x!, idx!, 0),
  backward(g, { inputs: [x, idx], needs }) {
    if (!needs[0]) return [null, null];
    const N = x!.shape[0]!;
    const inner = x!.size / (N || 1);
    // g: [...idx, ...rest] -> rows [...idx, inner] -> [N, inner] -> x.shape
    const dx = tensor.scatterAddRows(g.reshape([...idx!.shape, inner]), idx!, N);
    return [dx.reshape(x!.shape), null];
  },
  cpu: {
    forward: ([x, idx]) => ref.take(x!, idx!, 0),
    backward(g, { inputs: [x, idx] }) {
      const N = x!.shape[0]!;
      const inner = x!.data.length / (N || 1);
      const dx = ref.scatterAddRows(ref.reshape(g, [...idx!.shape, inner]), idx!, N);
      return [ref.reshape(dx, x!.shape), zerosLike(idx!)];
    },
  },
});

const zerosLike = (x: F64): F64 => ref.empty(x.shape);

// ---- public ops ----------------------------------------------------------------------------------------------------

/** A view with another shape (one dim may be -1); free. */
export const reshape = (x: Var, shape: readonly number[]) => apply(RESHAPE, [x], { shape });
/** out.shape[i] = x.shape[dims[i]] (a copy). */
export const permute = (x: Var, dims: readonly number[]) => apply(PERMUTE, [x], { dims });
/** Swap axes a and b (a copy). */
export function transpose(x: Var, a = -2, b = -1): Var {
  const dims = [...x.shape.keys()];
  const i = tensor.normAxis('transpose', a, x.shape.length);
  const j = tensor.normAxis('transpose', b, x.shape.length);
  [dims[i], dims[j]] = [dims[j]!, dims[i]!];
  return permute(x, dims);
}
/** x[starts[0]:ends[0], ...] (a copy). */
export const slice = (x: Var, starts: readonly number[], ends: readonly number[]) => apply(SLICE, [x], { starts, ends });
/** Join along `axis`; every other axis must match. */
export const concat = (xs: readonly Var[], axis: number) => apply(CONCAT, [...xs], { axis });
/** x broadcast to `shape` (NumPy rules; a copy); the gradient sums back over the broadcast dims. */
export const expand = (x: Var, shape: readonly number[]) => apply(EXPAND, [x], { shape });
/** Rows of x picked by idx (i32 [M]) along axis 0: x: [N, ...] -> [M, ...]. */
export const take = (x: Var, idx: Var) => apply(TAKE, [x, idx], null);
