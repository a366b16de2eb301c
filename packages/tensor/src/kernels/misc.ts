// Selection, conversion and constructors: where, maskedFill, cast, fill/zeros/ones/fromScalar, arange.
import { rt, grid } from '../runtime.ts';
import { Tensor, type DType, type Shape } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor } from '../kernel.ts';
import { broadcastShapes, broadcastStrides, collapseDims, indexMath, indexValues } from './elementwise.ts';
import { f16ToBits } from '../cpu/half.ts';
import { broadcastsTo } from './layout.ts';

/** The 4-byte dtypes a kernel can read as a plain WGSL scalar. */
function word(op: string, t: Tensor): string {
  if (t.dtype === 'f16') {
    if (!rt().ctx.hasF16) throw new Error(`${op}: f16 tensors need an adapter with shader-f16`);
    return 'f16';
  }
  return t.dtype;
}
const enableF16 = (...types: string[]) => (types.includes('f16') ? ['f16'] : []);

// ---- constructors ------------------------------------------------------------------------------------------------

/** The 32-bit pattern that, repeated, fills a buffer with `value` of `dtype` (an f16 is packed twice per word). */
function fillWord(value: number, dtype: DType): number {
  const dv = new DataView(new ArrayBuffer(4));
  switch (dtype) {
    case 'f32':
      dv.setFloat32(0, value, true);
      return dv.getUint32(0, true);
    case 'f16':
      return (f16ToBits(value) * 0x10001) >>> 0;
    case 'i32':
    case 'u32': {
      const [lo, hi] = dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
      if (!Number.isInteger(value) || value < lo || value > hi) throw new Error(`fill: ${value} is not a ${dtype} value`);
      return value >>> 0;
    }
  }
}

/** A tensor of `shape` with every element `value`. Encoded, not uploaded: no flush. */
export function fill(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const y = Tensor.empty(shape, dtype);
  const words = Math.ceil(y.bytes / 4);
  if (words === 0) return y;
  // whole vec4s when the buffer has room for the rounded-up tail (pool buffers come in multiples of 16 bytes):
  // a quarter of the invocations, which matters on a software adapter (measured: 4x faster at 74 MB on lavapipe)
  const v4 = y.buffer.size >= Math.ceil(words / 4) * 16;
  const n = v4 ? Math.ceil(words / 4) : words;
  const E = v4 ? 'vec4<u32>' : 'u32';
  kernelFor(`fill:${E}`, () => ({
    params: { n: 'u32', word: 'u32' },
    bindings: { Y: `rw ${E}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  Y[i] = ${E}(p.word);`,
  })).run({ Y: y }, { n, word: fillWord(value, dtype) }, grid(Math.ceil(n / WG)));
  return y;
}

export const zeros = (shape: Shape, dtype: DType = 'f32') => fill(shape, 0, dtype);
export const ones = (shape: Shape, dtype: DType = 'f32') => fill(shape, 1, dtype);
/** A scalar tensor (shape []). */
export const fromScalar = (value: number, dtype: DType = 'f32') => fill([], value, dtype);

/** [0, 1, ..., n-1] as i32 (default), u32 or f32. */
export function arange(n: number, dtype: DType = 'i32'): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new Error(`arange: n must be a non-negative integer, got ${n}`);
  if (dtype === 'f16') throw new Error('arange: f16 is not supported (cast an f32 arange)');
  const y = Tensor.empty([n], dtype);
  if (n === 0) return y;
  kernelFor(`arange:${dtype}`, () => ({
    params: { n: 'u32' },
    bindings: { Y: `rw ${dtype}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  Y[i] = ${dtype}(i);`,
  })).run({ Y: y }, { n }, grid(Math.ceil(n / WG)));
  return y;
}

// ---- selection ---------------------------------------------------------------------------------------------------

/** out = cond != 0 ? a : b, with NumPy broadcasting of all three. cond: f32 (0/1), i32 or u32; a and b share a dtype. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new Error(`where: dtypes of a and b differ (${a.dtype} vs ${b.dtype})`);
  if (cond.dtype === 'f16') throw new Error('where: cond must be f32, i32 or u32, got f16');
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape), b.shape);
  const y = Tensor.empty(shape, a.dtype);
  const full = shape.length ? shape : [1];
  const { out, strides } = collapseDims(full, [cond, a, b].map((t) => broadcastStrides(t.shape, full)));
  const rank = out.length;
  const C = cond.dtype;
  const elem = word('where', a);
  kernelFor(`where:${C}:${elem}:r${rank}`, () => {
    const im = indexMath(rank, ['c', 'a', 'b']);
    return {
      enable: enableF16(elem),
      params: { n: 'u32', ...im.params },
      bindings: { Cond: C, A: elem, B: elem, Y: `rw ${elem}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${im.code}
  Y[i] = select(B[ib], A[ia], Cond[ic] != ${C}(0));`,
    };
  }).run({ Cond: cond, A: a, B: b, Y: y }, { n: y.size, ...indexValues(['c', 'a', 'b'], out, strides) }, grid(Math.ceil(y.size / WG)));
  return y;
}

/** out = mask != 0 ? value : x; mask (f32 0/1, i32 or u32) broadcasts to x's shape. value may be ±Infinity. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (!broadcastsTo(mask.shape, x.shape)) {
    throw new Error(`maskedFill: mask [${mask.shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  }
  const shape = [...x.shape];
  if (mask.dtype === 'f16') throw new Error('maskedFill: mask must be f32, i32 or u32, got f16');
  const y = Tensor.empty(x.shape, x.dtype);
  const full = shape.length ? shape : [1];
  const { out, strides } = collapseDims(full, [broadcastStrides(mask.shape, full)]);
  const rank = out.length;
  const M = mask.dtype;
  const elem = word('maskedFill', x);
  // the fill value travels as f32 for floats, as the integer itself for i32/u32
  const vType = elem === 'i32' ? 'i32' : elem === 'u32' ? 'u32' : 'f32';
  if (vType !== 'f32' && !Number.isInteger(value)) throw new Error(`maskedFill: ${value} is not a ${elem} value`);
  kernelFor(`maskedFill:${M}:${elem}:r${rank}`, () => {
    const im = indexMath(rank, ['m']);
    const vExpr = vType === 'f32' ? `${elem}(p.v)` : 'p.v';
    return {
      enable: enableF16(elem),
      params: { n: 'u32', v: vType, ...im.params },
      bindings: { X: elem, Mask: M, Y: `rw ${elem}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${im.code}
  Y[i] = select(X[i], ${vExpr}, Mask[im] != ${M}(0));`,
    };
  }).run({ X: x, Mask: mask, Y: y }, { n: y.size, v: value, ...indexValues(['m'], out, strides) }, grid(Math.ceil(y.size / WG)));
  return y;
}

// ---- conversion --------------------------------------------------------------------------------------------------

/**
 * Convert to another dtype, as WGSL converts: floats to ints round toward zero and saturate (at 2^31 - 128 and
 * 2^32 - 256, the largest f32 values inside the int ranges); i32 <-> u32 keep the bits;
 * to f16 rounds through f32. f16 is read and written as packed pairs (pack2x16float/unpack2x16float), so every store
 * is a whole 32-bit word — no 2-byte stores racing within a word, and no shader-f16 needed for the conversion itself.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const y = Tensor.empty(x.shape, dtype);
  if (x.size === 0) return y;
  if (x.dtype === dtype) {
    const [src, dst] = [x.place, y.place]; // x may be a packed view, at an offset in its buffer
    rt().copy(src.buffer, src.offset, dst.buffer, dst.offset, Math.ceil(x.bytes / 4) * 4);
    return y;
  }
  const from = x.dtype;
  const toF16 = dtype === 'f16';
  const n = toF16 ? Math.ceil(x.size / 2) : x.size; // an f16 output is written two elements per invocation
  kernelFor(`cast:${from}:${dtype}`, () => {
    // the element e of X as the target type (f16 sources are unpacked to f32 first; f16 is exact in f32)
    const read = from === 'f16' ? 'unpack2x16float(X[e / 2u])[e % 2u]' : 'X[e]';
    const conv = (e: string) => (dtype === 'f16' ? `f32(${e})` : `${dtype}(${e})`);
    const body = toF16
      ? `let e0 = 2u * i;
  let e1 = min(e0 + 1u, p.count - 1u); // an odd tail pairs with itself; the spare half is padding
  var e = e0; let a = ${conv(read)};
  e = e1; let b = ${conv(read)};
  Y[i] = pack2x16float(vec2<f32>(a, b));`
      : `let e = i;
  Y[i] = ${conv(read)};`;
    return {
      params: { n: 'u32', count: 'u32' },
      bindings: { X: from === 'f16' ? 'u32' : from, Y: `rw ${toF16 ? 'u32' : dtype}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${body}`,
    };
  }).run({ X: x, Y: y }, { n, count: x.size }, grid(Math.ceil(n / WG)));
  return y;
}
