// The float64 CPU reference: a plain row-major array type and the index helpers every reference op uses.
// This code is the oracle of the GPU kernels, so it is written to be obviously correct, not fast.

/** A float64 CPU tensor: row-major, contiguous. Integer tensors hold their integers as float64. */
export interface F64 {
  shape: number[];
  data: Float64Array;
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Wrap values (copied into a Float64Array) with a shape; the shape defaults to 1-D. */
export function array(data: ArrayLike<number>, shape: readonly number[] = [data.length]): F64 {
  if (size(shape) !== data.length) throw new Error(`ref.array: ${data.length} values do not fill shape [${shape.join(', ')}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

export function empty(shape: readonly number[]): F64 {
  return { shape: [...shape], data: new Float64Array(size(shape)) };
}

/** Row-major strides: the step in the flat array for +1 along each dim. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** Flat index -> coordinates. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

/** Coordinates -> flat index. */
export function ravel(c: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d]! + c[d]!;
  return i;
}

/** An axis given as -rank..rank-1, as 0..rank-1. */
export function normAxis(axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
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

/** Whether `from` broadcasts to exactly `to`. */
export function broadcastsTo(from: readonly number[], to: readonly number[]): boolean {
  const off = to.length - from.length;
  return off >= 0 && from.every((d, i) => d === 1 || d === to[off + i]);
}

/** The value of `x` at output coordinates `c` when `x` is broadcast to a shape of rank c.length. */
export function atBroadcast(x: F64, c: readonly number[]): number {
  const off = c.length - x.shape.length;
  let i = 0;
  for (let d = 0; d < x.shape.length; d++) i = i * x.shape[d]! + (x.shape[d] === 1 ? 0 : c[off + d]!);
  return x.data[i]!;
}

/** Materialise `x` broadcast to `shape`. */
export function broadcastTo(x: F64, shape: readonly number[]): F64 {
  if (!broadcastsTo(x.shape, shape)) {
    throw new Error(`broadcastTo: [${x.shape.join(', ')}] does not broadcast to [${shape.join(', ')}]`);
  }
  const out = empty(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = atBroadcast(x, unravel(i, shape));
  return out;
}

export function reshape(x: F64, shape: readonly number[]): F64 {
  if (size(shape) !== x.data.length) throw new Error(`reshape: [${x.shape.join(', ')}] cannot become [${shape.join(', ')}]`);
  return { shape: [...shape], data: x.data };
}
