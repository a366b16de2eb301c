// Float64 twins of kernels/layout.ts: slice, concat, permute/transpose, copy (broadcastTo lives in array.ts).
import { type F64, empty, unravel, ravel, normAxis } from './array.ts';

/** x[starts[0]:ends[0], starts[1]:ends[1], ...]; missing trailing axes are taken whole, negative bounds count from the end. */
export function slice(x: F64, starts: readonly number[], ends: readonly number[]): F64 {
  const r = x.shape.length;
  if (starts.length > r || ends.length > r) throw new Error(`slice: more bounds than the ${r} axes of [${x.shape.join(', ')}]`);
  const lo = x.shape.map((d, i) => (starts[i] === undefined ? 0 : starts[i]! < 0 ? starts[i]! + d : starts[i]!));
  const hi = x.shape.map((d, i) => (ends[i] === undefined ? d : ends[i]! < 0 ? ends[i]! + d : ends[i]!));
  x.shape.forEach((d, i) => {
    if (!(lo[i]! >= 0 && lo[i]! <= hi[i]! && hi[i]! <= d)) throw new Error(`slice: bounds [${starts[i]}, ${ends[i]}) out of range on axis ${i} of size ${d}`);
  });
  const shape = hi.map((h, i) => h - lo[i]!);
  const out = empty(shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = unravel(i, shape).map((v, d) => v + lo[d]!);
    out.data[i] = x.data[ravel(c, x.shape)]!;
  }
  return out;
}

/** Join tensors along `axis`; every other axis must match. */
export function concat(list: readonly F64[], axis: number): F64 {
  if (list.length === 0) throw new Error('concat: needs at least one tensor');
  const r = list[0]!.shape.length;
  const ax = normAxis(axis, r);
  for (const t of list) {
    if (t.shape.length !== r || t.shape.some((d, i) => i !== ax && d !== list[0]!.shape[i])) {
      throw new Error(`concat: [${t.shape.join(', ')}] does not match [${list[0]!.shape.join(', ')}] off axis ${ax}`);
    }
  }
  const shape = [...list[0]!.shape];
  shape[ax] = list.reduce((n, t) => n + t.shape[ax]!, 0);
  const out = empty(shape);
  let at = 0;
  for (const t of list) {
    for (let i = 0; i < t.data.length; i++) {
      const c = unravel(i, t.shape);
      c[ax]! += at;
      out.data[ravel(c, shape)] = t.data[i]!;
    }
    at += t.shape[ax]!;
  }
  return out;
}

/** out.shape[i] = x.shape[dims[i]]. */
export function permute(x: F64, dims: readonly number[]): F64 {
  const r = x.shape.length;
  const p = dims.map((d) => normAxis(d, r));
  if (p.length !== r || new Set(p).size !== r) throw new Error(`permute: [${dims.join(', ')}] is not a permutation of ${r} axes`);
  const shape = p.map((d) => x.shape[d]!);
  const out = empty(shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = unravel(i, shape);
    const src = new Array<number>(r);
    p.forEach((d, k) => (src[d] = c[k]!));
    out.data[i] = x.data[ravel(src, x.shape)]!;
  }
  return out;
}

/** Swap axes a and b. */
export function transpose(x: F64, a: number, b: number): F64 {
  const dims = [...x.shape.keys()];
  const [i, j] = [normAxis(a, dims.length), normAxis(b, dims.length)];
  [dims[i], dims[j]] = [dims[j]!, dims[i]!];
  return permute(x, dims);
}

export function copy(x: F64): F64 {
  return { shape: [...x.shape], data: Float64Array.from(x.data) };
}
