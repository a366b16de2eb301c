// Float64 twins of kernels/elementwise.ts: unary and binary ops with NumPy broadcasting.
// Floats are computed in float64 (the GPU rounds to f32); integer dtypes wrap like WGSL's i32/u32 arithmetic.
import type { UnaryOp, BinaryOp } from '../kernels/elementwise.ts';
import type { DType } from '../tensor.ts';
import { type F64, empty, broadcastShape, atBroadcast, unravel } from './array.ts';

type IntDType = 'i32' | 'u32';

/** Wrap an integer-valued number into the range of i32/u32 (two's complement). */
export function wrapInt(v: number | bigint, dtype: IntDType): number {
  const t = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
  return dtype === 'i32' ? Number(BigInt.asIntN(32, t)) : Number(BigInt.asUintN(32, t));
}

/** An exact integer product (float64 would lose the low bits that survive the wrap). */
const imul = (a: number, b: number) => BigInt(a) * BigInt(b);

const UNARY_REF: Record<UnaryOp, (x: number, c: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  recip: (x) => 1 / x,
  square: (x) => x * x,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  tanh: Math.tanh,
  relu: (x) => Math.max(x, 0),
  sin: Math.sin,
  cos: Math.cos,
  powScalar: (x, c) => x ** c,
  addScalar: (x, c) => x + c,
  mulScalar: (x, c) => x * c,
};

const BINARY_REF: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  pow: (a, b) => a ** b,
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

/** y = op(x). For i32/u32 the scalar c is truncated to an integer first, as the kernel does. */
export function unary(op: UnaryOp, x: F64, c = 0, dtype: DType = 'f32'): F64 {
  const f = UNARY_REF[op];
  const y = empty(x.shape);
  const int = dtype === 'i32' || dtype === 'u32';
  for (let i = 0; i < y.data.length; i++) {
    const v = x.data[i]!;
    if (!int) y.data[i] = f(v, c);
    else if (op === 'square') y.data[i] = wrapInt(imul(v, v), dtype);
    else if (op === 'mulScalar') y.data[i] = wrapInt(imul(v, Math.trunc(c)), dtype);
    else y.data[i] = wrapInt(f(v, Math.trunc(c)), dtype);
  }
  return y;
}

/** z = a op b with broadcasting. For i32/u32: truncating division (x / 0 = x, as WGSL defines it) and wrapping. */
export function binary(op: BinaryOp, a: F64, b: F64, dtype: DType = 'f32'): F64 {
  const f = BINARY_REF[op];
  const shape = broadcastShape(a.shape, b.shape);
  const z = empty(shape);
  const int = dtype === 'i32' || dtype === 'u32';
  for (let i = 0; i < z.data.length; i++) {
    const c = unravel(i, shape);
    const va = atBroadcast(a, c);
    const vb = atBroadcast(b, c);
    if (!int) z.data[i] = f(va, vb);
    else if (op === 'div') z.data[i] = vb === 0 ? va : wrapInt(va / vb, dtype);
    else if (op === 'mul') z.data[i] = wrapInt(imul(va, vb), dtype);
    else z.data[i] = wrapInt(f(va, vb), dtype);
  }
  return z;
}

export const add = (a: F64, b: F64) => binary('add', a, b);
export const sub = (a: F64, b: F64) => binary('sub', a, b);
export const mul = (a: F64, b: F64) => binary('mul', a, b);
export const div = (a: F64, b: F64) => binary('div', a, b);
