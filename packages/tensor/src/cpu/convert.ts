// Moving between GPU tensors and the float64 reference (f16 travels as its 16-bit patterns).
import { Tensor, type DType } from '../tensor.ts';
import { type F64 } from './array.ts';
import { toF16Bits, fromF16Bits } from './half.ts';

/** Read a GPU tensor back as float64 (flushes the pending work). */
export async function fromTensor(t: Tensor): Promise<F64> {
  const host = await t.toArray();
  return { shape: [...t.shape], data: t.dtype === 'f16' ? fromF16Bits(host) : Float64Array.from(host) };
}

/** Upload a float64 array as a GPU tensor of `dtype` (values are rounded to it on the way). */
export function toTensor(a: F64, dtype: DType = 'f32'): Tensor {
  return Tensor.fromArray(dtype === 'f16' ? toF16Bits(a.data) : a.data, a.shape, dtype);
}
