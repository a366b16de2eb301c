// Float64 twins of kernels/reduce.ts: sum, mean, max, argmax over axes; sumTo (undo a broadcast); sumAll.
import { type F64, empty, size, unravel, normAxis, broadcastsTo } from './array.ts';

/** Axes as sorted, distinct, non-negative numbers; undefined means every axis. */
export function normAxes(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => normAxis(a, rank));
  if (new Set(list).size !== list.length) throw new Error(`reduce: repeated axis in [${list.join(', ')}]`);
  return list.sort((a, b) => a - b);
}

/** The output shape of reducing `axes` of `shape`. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Fold every input element into its output slot with `combine`, starting from `init`. */
function fold(x: F64, axes: number[], keepdim: boolean, init: number, combine: (acc: number, v: number) => number): F64 {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = empty(reducedShape(x.shape, axes, keepdim));
  out.data.fill(init);
  for (let i = 0; i < x.data.length; i++) {
    const c = unravel(i, x.shape);
    let o = 0;
    for (let d = 0; d < c.length; d++) o = o * keptShape[d]! + (axes.includes(d) ? 0 : c[d]!);
    out.data[o] = combine(out.data[o]!, x.data[i]!);
  }
  return out;
}

export function sum(x: F64, axes?: number | readonly number[], keepdim = false): F64 {
  return fold(x, normAxes(axes, x.shape.length), keepdim, 0, (a, v) => a + v);
}

/** The mean; over an empty axis it is NaN (0 / 0), as in PyTorch. */
export function mean(x: F64, axes?: number | readonly number[], keepdim = false): F64 {
  const ax = normAxes(axes, x.shape.length);
  const count = size(ax.map((a) => x.shape[a]!));
  const s = sum(x, ax, keepdim);
  for (let i = 0; i < s.data.length; i++) s.data[i] = s.data[i]! / count;
  return s;
}

export function max(x: F64, axes?: number | readonly number[], keepdim = false): F64 {
  const ax = normAxes(axes, x.shape.length);
  if (ax.some((a) => x.shape[a] === 0)) throw new Error(`max: cannot reduce an empty axis of [${x.shape.join(', ')}]`);
  return fold(x, ax, keepdim, -Infinity, (a, v) => (v > a ? v : a));
}

/** The index of the largest value along `axis` (the first one on ties). */
export function argmax(x: F64, axis: number, keepdim = false): F64 {
  const ax = normAxis(axis, x.shape.length);
  const K = x.shape[ax]!;
  if (K === 0) throw new Error(`argmax: cannot reduce an empty axis of [${x.shape.join(', ')}]`);
  const outer = size(x.shape.slice(0, ax));
  const inner = size(x.shape.slice(ax + 1));
  const out = empty(reducedShape(x.shape, [ax], keepdim));
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (x.data[(o * K + k) * inner + j]! > x.data[(o * K + best) * inner + j]!) best = k;
      out.data[o * inner + j] = best;
    }
  }
  return out;
}

/** Sum a broadcast result `x` back to `shape` (the gradient of broadcasting `shape` up to x.shape). */
export function sumTo(x: F64, shape: readonly number[]): F64 {
  if (!broadcastsTo(shape, x.shape)) {
    throw new Error(`sumTo: [${shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  }
  const lead = x.shape.length - shape.length;
  const axes = x.shape.map((_, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1));
  const s = sum(x, axes, true);
  return { shape: [...shape], data: s.data };
}

/** The sum of every element, as a scalar (shape []). */
export function sumAll(x: F64): F64 {
  return sum(x, undefined, false);
}
