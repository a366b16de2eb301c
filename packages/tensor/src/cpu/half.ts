// IEEE half precision on the host: encode/decode the 16-bit pattern (f16 tensors are uploaded and read back as bits),
// and round a number to the nearest f16 (ties to even). Written out by hand: Node 20 has no Float16Array.

/** The number an f16 bit pattern holds. */
export function f16FromBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24; // zero and subnormals
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The f16 bit pattern nearest to x (ties to even; beyond the f16 range it becomes ±Infinity). */
export function f16ToBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal: units of 2^-24 (1024 = the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 can be off by one ulp near powers of two
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** x rounded to the nearest f16 value. */
export function roundF16(x: number): number {
  return f16FromBits(f16ToBits(x));
}

/** Encode numbers as f16 bits (for Tensor.fromArray(bits, shape, 'f16')). */
export function toF16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f16ToBits(values[i]!);
  return out;
}

/** Decode f16 bits (what an f16 tensor's toArray() returns) into numbers. */
export function fromF16Bits(bits: ArrayLike<number>): Float64Array {
  const out = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16FromBits(bits[i]!);
  return out;
}
