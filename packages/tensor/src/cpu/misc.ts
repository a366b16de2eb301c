// Float64 twins of kernels/misc.ts: where, maskedFill, cast, and the constructors (fill, arange, zeros, ones).
import type { DType } from '../tensor.ts';
import { type F64, empty, broadcastShape, broadcastsTo, atBroadcast, unravel } from './array.ts';
import { roundF16 } from './half.ts';
import { wrapInt } from './elementwise.ts';

/** out = cond != 0 ? a : b, all three broadcast together. */
export function where(cond: F64, a: F64, b: F64): F64 {
  const shape = broadcastShape(broadcastShape(cond.shape, a.shape), b.shape);
  const out = empty(shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = unravel(i, shape);
    out.data[i] = atBroadcast(cond, c) !== 0 ? atBroadcast(a, c) : atBroadcast(b, c);
  }
  return out;
}

/** out = mask != 0 ? value : x; the mask broadcasts to x's shape. */
export function maskedFill(x: F64, mask: F64, value: number): F64 {
  if (!broadcastsTo(mask.shape, x.shape)) {
    throw new Error(`maskedFill: mask [${mask.shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  }
  const shape = x.shape;
  const out = empty(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = atBroadcast(mask, unravel(i, shape)) !== 0 ? value : x.data[i]!;
  return out;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

// WGSL saturates float -> int conversions at the largest f32 inside the int range: 2^31 - 128 and 2^32 - 256.
const I32_MAX_F = 2 ** 31 - 128;
const U32_MAX_F = 2 ** 32 - 256;

/** One value converted as WGSL converts it: floats to ints round toward zero and saturate; i32<->u32 keep the bits;
 *  anything to f16 goes through f32 first. */
export function castValue(v: number, to: DType, from: DType = 'f32'): number {
  const fromFloat = from === 'f32' || from === 'f16';
  switch (to) {
    case 'f32':
      return Math.fround(v);
    case 'f16':
      return roundF16(Math.fround(v));
    case 'i32':
      return fromFloat ? clamp(Math.trunc(v), -(2 ** 31), I32_MAX_F) : wrapInt(v, 'i32');
    case 'u32':
      return fromFloat ? clamp(Math.trunc(v), 0, U32_MAX_F) : wrapInt(v, 'u32');
  }
}

export function cast(x: F64, to: DType, from: DType = 'f32'): F64 {
  return { shape: [...x.shape], data: x.data.map((v) => castValue(v, to, from)) };
}

export function fill(shape: readonly number[], value: number, dtype: DType = 'f32'): F64 {
  const out = empty(shape);
  out.data.fill(castValue(value, dtype, 'f32'));
  return out;
}

export const zeros = (shape: readonly number[]) => fill(shape, 0);
export const ones = (shape: readonly number[]) => fill(shape, 1);
export const fromScalar = (value: number, dtype: DType = 'f32') => fill([], value, dtype);

/** [0, 1, ..., n-1]. */
export function arange(n: number): F64 {
  const out = empty([n]);
  for (let i = 0; i < n; i++) out.data[i] = i;
  return out;
}
