// Layout copies: slice, concat, permute/transpose, broadcastTo, copy. Tensors are always contiguous, so each of these
// writes a new tensor. They share one strided-copy kernel: for every element of a (collapsed) iteration shape,
// dst[dstOffset + Σ c·dstStride] = src[srcOffset + Σ c·srcStride]. A copy that is one contiguous block on both sides
// becomes copyBufferToBuffer instead of a dispatch.
import { rt, grid } from '../runtime.ts';
import { Tensor, BYTES, type Shape } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor } from '../kernel.ts';
import { broadcastStrides, collapseDims, indexMath, indexValues } from './elementwise.ts';

/** Row-major strides of a shape. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** An axis in -rank..rank-1 as 0..rank-1, or an error naming the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Whether `from` broadcasts to exactly `to` (NumPy rules, `to` unchanged). */
export function broadcastsTo(from: Shape, to: Shape): boolean {
  const off = to.length - from.length;
  return off >= 0 && from.every((d, i) => d === 1 || d === to[off + i]);
}

/** The WGSL element type that moves a dtype's bits: u32 for every 4-byte dtype, f16 (which needs the feature). */
function bitsType(src: Tensor): string {
  if (src.dtype !== 'f16') return 'u32';
  if (!rt().ctx.hasF16) throw new Error('f16 tensors need an adapter with shader-f16');
  return 'f16';
}

/** dst[dstOffset + Σ c·dstStrides] = src[srcOffset + Σ c·srcStrides] for every coordinate c of `shape`. */
export function stridedCopy(
  src: Tensor,
  dst: Tensor,
  shape: Shape,
  srcStrides: readonly number[],
  srcOffset: number,
  dstStrides: readonly number[],
  dstOffset: number,
): void {
  if (src.dtype !== dst.dtype) throw new Error(`stridedCopy: dtypes differ (${src.dtype} vs ${dst.dtype})`);
  const keep = shape.map((_, d) => d).filter((d) => shape[d] !== 1); // size-1 dims move nothing
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const c = collapseDims(
    keep.length ? keep.map((d) => shape[d]!) : [1],
    [keep.map((d) => srcStrides[d]!), keep.map((d) => dstStrides[d]!)],
  );
  const [ss, ds] = c.strides as [number[], number[]];
  const bytes = BYTES[src.dtype];
  const contiguous = c.out.length === 1 && (c.out[0] === 1 || (ss[0] === 1 && ds[0] === 1));
  if (contiguous && (n * bytes) % 4 === 0 && (srcOffset * bytes) % 4 === 0 && (dstOffset * bytes) % 4 === 0) {
    const [from, to] = [src.place, dst.place]; // a packed view (a LoRA parameter, a gradient) sits at an offset
    rt().copy(from.buffer, from.offset + srcOffset * bytes, to.buffer, to.offset + dstOffset * bytes, n * bytes);
    return;
  }
  const rank = c.out.length;
  const bits = bitsType(src);
  // rows contiguous on both sides, in whole aligned vec4s: 4 values per invocation (a quarter of the index math and of
  // the loads: on lavapipe each load is 8 bounds-checked lane loads)
  const inner = c.out[rank - 1]!;
  const v4 = bits === 'u32' && ss[rank - 1] === 1 && ds[rank - 1] === 1 && inner % 4 === 0 &&
    [srcOffset, dstOffset, ...ss.slice(0, -1), ...ds.slice(0, -1)].every((v) => v % 4 === 0);
  const w = v4 ? 4 : 1;
  const per = (st: number[]) => (v4 ? [...st.slice(0, -1).map((v) => v / 4), 1] : st);
  const shape4 = v4 ? [...c.out.slice(0, -1), inner / 4] : c.out;
  copyKernel(v4 ? 'vec4<u32>' : bits, rank).run(
    { S: src, D: dst },
    { n: n / w, srcOff: srcOffset / w, dstOff: dstOffset / w, ...indexValues(['src', 'dst'], shape4, [per(ss), per(ds)]) },
    grid(Math.ceil(n / w / WG)),
  );
}

/** D[dstOff + Σ c·dst] = S[srcOff + Σ c·src] over a rank-`rank` iteration shape, moving `elem`s. */
function copyKernel(elem: string, rank: number) {
  return kernelFor(`stridedCopy:${elem === 'vec4<u32>' ? 'vec4' : elem}:r${rank}`, () => {
    const im = indexMath(rank, ['src', 'dst']);
    return {
      enable: elem === 'f16' ? ['f16'] : [],
      params: { n: 'u32', srcOff: 'u32', dstOff: 'u32', ...im.params },
      bindings: { S: elem, D: `rw ${elem}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${im.code}
  D[p.dstOff + idst] = S[p.srcOff + isrc];`,
    };
  });
}

/** A new tensor with the same contents. */
export function copy(x: Tensor): Tensor {
  const y = Tensor.empty(x.shape, x.dtype);
  stridedCopy(x, y, [x.size], [1], 0, [1], 0);
  return y;
}

// x: [d0, d1, ...] -> [e0 - s0, e1 - s1, ...]. Missing trailing bounds take the whole axis; negative bounds count from the end.
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  const r = x.rank;
  if (starts.length > r || ends.length > r) throw new Error(`slice: more bounds than the ${r} axes of [${x.shape.join(', ')}]`);
  const lo = x.shape.map((d, i) => (starts[i] === undefined ? 0 : starts[i]! < 0 ? starts[i]! + d : starts[i]!));
  const hi = x.shape.map((d, i) => (ends[i] === undefined ? d : ends[i]! < 0 ? ends[i]! + d : ends[i]!));
  x.shape.forEach((d, i) => {
    if (!(Number.isInteger(lo[i]) && Number.isInteger(hi[i]) && lo[i]! >= 0 && lo[i]! <= hi[i]! && hi[i]! <= d)) {
      throw new Error(`slice: bounds [${starts[i]}, ${ends[i]}) out of range on axis ${i} of size ${d}`);
    }
  });
  const shape = hi.map((h, i) => h - lo[i]!);
  const y = Tensor.empty(shape, x.dtype);
  const st = stridesOf(x.shape);
  const offset = lo.reduce((a, l, i) => a + l * st[i]!, 0);
  stridedCopy(x, y, shape, st, offset, stridesOf(shape), 0);
  return y;
}

// list: [..., n_i, ...] (n_i at `axis`) -> [..., Σ n_i, ...]
export function concat(list: readonly Tensor[], axis: number): Tensor {
  const first = list[0];
  if (!first) throw new Error('concat: needs at least one tensor');
  const ax = normAxis('concat', axis, first.rank);
  for (const t of list) {
    if (t.dtype !== first.dtype) throw new Error(`concat: dtypes differ (${first.dtype} vs ${t.dtype})`);
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`concat: [${t.shape.join(', ')}] does not match [${first.shape.join(', ')}] off axis ${ax}`);
    }
  }
  const shape = [...first.shape];
  shape[ax] = list.reduce((n, t) => n + t.shape[ax]!, 0);
  const y = Tensor.empty(shape, first.dtype);
  const yst = stridesOf(shape);
  let at = 0;
  for (const t of list) {
    stridedCopy(t, y, t.shape, stridesOf(t.shape), 0, yst, at * yst[ax]!);
    at += t.shape[ax]!;
  }
  return y;
}

// x: [d0, d1, ...] -> [d_dims[0], d_dims[1], ...]
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const p = dims.map((d) => normAxis('permute', d, x.rank));
  if (p.length !== x.rank || new Set(p).size !== x.rank) {
    throw new Error(`permute: [${dims.join(', ')}] is not a permutation of ${x.rank} axes`);
  }
  const shape = p.map((d) => x.shape[d]!);
  const y = Tensor.empty(shape, x.dtype);
  const st = stridesOf(x.shape);
  stridedCopy(x, y, shape, p.map((d) => st[d]!), 0, stridesOf(shape), 0);
  return y;
}

/** Swap axes a and b (a copy). */
export function transpose(x: Tensor, a: number, b: number): Tensor {
  const dims = [...x.shape.keys()];
  const i = normAxis('transpose', a, x.rank);
  const j = normAxis('transpose', b, x.rank);
  [dims[i], dims[j]] = [dims[j]!, dims[i]!];
  return permute(x, dims);
}

/** Materialise x broadcast to `shape` (NumPy rules). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  if (!broadcastsTo(x.shape, shape)) {
    throw new Error(`broadcastTo: [${x.shape.join(', ')}] does not broadcast to [${shape.join(', ')}]`);
  }
  const y = Tensor.empty(shape, x.dtype);
  stridedCopy(x, y, shape, broadcastStrides(x.shape, shape), 0, stridesOf(shape), 0);
  return y;
}
