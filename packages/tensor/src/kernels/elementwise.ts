// Elementwise unary and binary ops with NumPy broadcasting: y = f(x), z = a ∘ b, and dst += src in place.
// One kernel per arity, specialised on the op, the dtype and the output rank (shapes travel as uniforms): one
// invocation per element, or per vec4 when nothing broadcasts — a quarter of the invocations and 16-byte loads.
import { rt, grid } from '../runtime.ts';
import { Tensor, type DType, type Shape } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor } from '../kernel.ts';

export { WG, FLAT_INDEX } from '../kernel.ts';

/** The WGSL element type of a dtype (its own name for every dtype; f16 also needs `enable f16`: see dtypeEnable). */
export function wgslType(dtype: DType): string {
  return dtype === 'f16' ? 'f16' : dtype;
}

/** The WGSL extensions a dtype needs (defineKernel's `enable`): f16 exists only where the adapter has shader-f16. */
export function dtypeEnable(op: string, dtype: DType): string[] {
  if (dtype !== 'f16') return [];
  if (!rt().ctx.hasF16) throw new Error(`${op}: f16 tensors need an adapter with shader-f16`);
  return ['f16'];
}

/** Same-shape f32 ops with a length divisible by 4 move vec4s: a quarter of the invocations, 16-byte loads. */
function useVec4(dtype: DType, n: number): boolean {
  return dtype === 'f32' && n % 4 === 0 && n > 0;
}

// x is the input, c an optional scalar parameter (f32).
export const UNARY = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: 'inverseSqrt(x)',
  abs: 'abs(x)',
  recip: '1.0 / x',
  square: 'x * x',
  sigmoid: '1.0 / (1.0 + exp(-x))',
  silu: 'x / (1.0 + exp(-x))',
  tanh: 'tanh(x)',
  relu: 'max(x, 0.0)',
  sin: 'sin(x)',
  cos: 'cos(x)',
  // WGSL's pow is exp2(c·log2 x): NaN for x < 0, so integer exponents of negative bases take the sign by hand
  powScalar: 'select(pow(x, c), select(pow(x, c), pow(-x, c) * select(1.0, -1.0, abs(c % 2.0) == 1.0), c == round(c)), x < 0.0)',
  addScalar: 'x + c',
  mulScalar: 'x * c',
} as const;
export type UnaryOp = keyof typeof UNARY;

export const BINARY = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  max: 'max(a, b)',
  min: 'min(a, b)',
  pow: 'pow(a, b)',
  // comparisons give 0 or 1 in the operands' dtype (Elem is aliased to it in the kernel), ready for where/maskedFill
  eq: 'select(Elem(0), Elem(1), a == b)',
  ne: 'select(Elem(0), Elem(1), a != b)',
  lt: 'select(Elem(0), Elem(1), a < b)',
  le: 'select(Elem(0), Elem(1), a <= b)',
  gt: 'select(Elem(0), Elem(1), a > b)',
  ge: 'select(Elem(0), Elem(1), a >= b)',
} as const;
export type BinaryOp = keyof typeof BINARY;

const INT_UNARY = new Set<UnaryOp>(['neg', 'abs', 'square', 'addScalar', 'mulScalar']);

/** y = op(x) elementwise; `c` is the scalar of powScalar/addScalar/mulScalar. */
export function unary(op: UnaryOp, x: Tensor, c = 0): Tensor {
  if (x.dtype !== 'f32' && !INT_UNARY.has(op)) throw new Error(`${op}: needs f32, got ${x.dtype}`);
  if (op === 'neg' && x.dtype === 'u32') throw new Error('neg: u32 has no negation');
  const y = Tensor.empty(x.shape, x.dtype);
  const elem = wgslType(x.dtype);
  const v4 = useVec4(x.dtype, x.size);
  const n = v4 ? x.size / 4 : x.size;
  const enable = dtypeEnable(op, x.dtype);
  kernelFor(`unary:${op}:${elem}${v4 ? ':v4' : ''}`, () => {
    // the vec4 variant applies the scalar expression to each lane, so every op works unchanged
    const body = v4
      ? `let v = X[i];
  var o: vec4<f32>;
  for (var k = 0u; k < 4u; k++) { let x = v[k]; o[k] = ${UNARY[op]}; }
  Y[i] = o;`
      : `let x = X[i];
  Y[i] = ${UNARY[op]};`;
    const E = v4 ? 'vec4<f32>' : elem;
    return {
      enable,
      params: { n: 'u32', c: 'f32' },
      bindings: { X: E, Y: `rw ${E}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let c = ${elem === 'f32' ? 'p.c' : `${elem}(p.c)`};
  ${body}`,
    };
  }).run({ X: x, Y: y }, { n, c }, grid(Math.ceil(n / WG)));
  return y;
}

/** The NumPy broadcast of two shapes, or an error naming both. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`cannot broadcast [${a.join(', ')}] with [${b.join(', ')}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` read as if broadcast to `out` (0 on broadcast dims). */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const strides = new Array<number>(out.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = out.length - shape.length + i;
    strides[o] = shape[i] === 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

/** Merge adjacent dims that are contiguous for every operand, so most broadcasts run at rank 1 or 2. */
export function collapseDims(out: number[], strides: number[][]): { out: number[]; strides: number[][] } {
  const o = [out[0] ?? 1];
  const s = strides.map((st) => [st[0] ?? 0]);
  for (let i = 1; i < out.length; i++) {
    const last = o.length - 1;
    const mergeable = strides.every((st, k) => st[i]! * out[i]! === s[k]![last] || (st[i] === 0 && s[k]![last] === 0));
    if (mergeable) {
      o[last] = o[last]! * out[i]!;
      strides.forEach((st, k) => (s[k]![last] = st[i]!));
    } else {
      o.push(out[i]!);
      strides.forEach((st, k) => s[k]!.push(st[i]!));
    }
  }
  return { out: o, strides: s };
}

/**
 * WGSL that turns flat index `i` into offsets `ia`, `ib` (… for each operand) for a rank-`rank` broadcast, with the
 * uniforms it reads (the output dims d0.., then each operand's strides) and their values from `indexValues`.
 */
export function indexMath(rank: number, operands: string[]): { params: Record<string, 'u32'>; code: string } {
  const params: Record<string, 'u32'> = {};
  for (let d = 0; d < rank; d++) params[`d${d}`] = 'u32';
  for (const o of operands) for (let d = 0; d < rank; d++) params[`${o}${d}`] = 'u32';
  const code: string[] = ['var r = i;', ...operands.map((o) => `var i${o} = 0u;`)];
  for (let d = rank - 1; d >= 0; d--) {
    code.push(`{ let c = r % p.d${d}; r = r / p.d${d};${operands.map((o) => ` i${o} += c * p.${o}${d};`).join('')} }`);
  }
  return { params, code: code.join('\n  ') };
}

/** indexMath's uniform values, named as its params: the dims `out`, then each operand's strides in order. */
export function indexValues(operands: string[], out: number[], strides: number[][]): Record<string, number> {
  const v: Record<string, number> = {};
  out.forEach((d, k) => (v[`d${k}`] = d));
  operands.forEach((o, j) => strides[j]!.forEach((st, k) => (v[`${o}${k}`] = st)));
  return v;
}

/** z = a op b with broadcasting. Both operands share a dtype. */
export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtypes differ (${a.dtype} vs ${b.dtype})`);
  if (op === 'pow' && a.dtype !== 'f32') throw new Error(`pow: needs f32, got ${a.dtype}`);
  const outShape = broadcastShapes(a.shape, b.shape);
  const z = Tensor.empty(outShape, a.dtype);
  const elem = wgslType(a.dtype);
  const same = a.size === z.size && b.size === z.size;
  const v4 = same && useVec4(a.dtype, z.size);
  const n = v4 ? z.size / 4 : z.size;
  const full = outShape.length ? outShape : [1];
  const { out, strides } = collapseDims(full, [broadcastStrides(a.shape, full), broadcastStrides(b.shape, full)]);
  const rank = same ? 0 : out.length;
  const enable = dtypeEnable(op, a.dtype);
  kernelFor(`binary:${op}:${elem}:${v4 ? 'v4' : `r${rank}`}`, () => {
    const im = indexMath(rank, ['a', 'b']);
    // the vec4 variant applies the scalar expression to each lane, so every op works unchanged
    const body = v4
      ? `let va = A[i];
  let vb = B[i];
  var o: vec4<f32>;
  for (var k = 0u; k < 4u; k++) { let a = va[k]; let b = vb[k]; o[k] = ${BINARY[op]}; }
  Z[i] = o;`
      : `${rank ? im.code : 'let ia = i; let ib = i;'}
  let a = A[ia];
  let b = B[ib];
  Z[i] = ${BINARY[op]};`;
    const E = v4 ? 'vec4<f32>' : elem;
    return {
      enable,
      params: { n: 'u32', ...im.params },
      bindings: { A: E, B: E, Z: `rw ${E}` },
      decls: `alias Elem = ${elem};`,
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${body}`,
    };
  }).run({ A: a, B: b, Z: z }, { n, ...indexValues(['a', 'b'], out, strides) }, grid(Math.ceil(n / WG)));
  return z;
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binary('div', a, b);

/**
 * dst += src in place, same shape, f32: accumulates a gradient into a tensor someone else holds (a leaf's `.grad`,
 * possibly a view into an optimiser's packed buffer), so the tensor object and its storage stay the same.
 */
export function addInto(dst: Tensor, src: Tensor): void {
  if (dst.dtype !== 'f32' || src.dtype !== 'f32') throw new Error(`addInto: needs f32, got ${dst.dtype} += ${src.dtype}`);
  if (dst.size !== src.size || dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new Error(`addInto: shapes differ ([${dst.shape.join(', ')}] += [${src.shape.join(', ')}])`);
  }
  if (dst.size === 0) return;
  if (src.place.buffer === dst.place.buffer) {
    // one buffer cannot be bound both read and read_write (whatever the views' offsets): add a copy instead
    const c = unary('mulScalar', src, 1);
    addInto(dst, c);
    c.dispose();
    return;
  }
  const v4 = useVec4('f32', dst.size);
  const n = v4 ? dst.size / 4 : dst.size;
  const E = v4 ? 'vec4<f32>' : 'f32';
  kernelFor(`addInto:${E}`, () => ({
    params: { n: 'u32' },
    bindings: { S: E, D: `rw ${E}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  D[i] += S[i];`,
  })).run({ S: src, D: dst }, { n }, grid(Math.ceil(n / WG)));
}
