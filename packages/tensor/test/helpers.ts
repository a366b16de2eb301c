// Shared test helpers for the kernel property tests: shape arbitraries, seeded values, and a closeness check
// against the float64 reference that names the worst element when it fails.
import { mulberry32 } from '../src/random.ts';
import fc from 'fast-check';
import { expect } from 'vitest';
import { Tensor, ref, setRowStrategy, type DType, type RowStrategy } from '../src/index.ts';

/** The sizes every property draws dims from: 1, odd primes-ish, just under/over multiples of 4 and 16, a big one. */
export const SIZES = [1, 3, 7, 56, 57, 224, 1000] as const;

/** Shapes of rank minRank..maxRank with dims from SIZES (plus any `extra`), at most maxNumel elements. */
export function shapeArb(opts: { minRank?: number; maxRank?: number; maxNumel?: number; extra?: number[] } = {}): fc.Arbitrary<number[]> {
  const { minRank = 1, maxRank = 3, maxNumel = 60_000, extra = [] } = opts;
  return fc
    .array(fc.constantFrom(...SIZES, ...extra), { minLength: minRank, maxLength: maxRank })
    .filter((s) => ref.size(s) <= maxNumel);
}

/** A shape and another that broadcasts against it (some dims set to 1, some leading dims dropped). */
export function broadcastPairArb(opts: { maxRank?: number; maxNumel?: number } = {}): fc.Arbitrary<[number[], number[]]> {
  return shapeArb({ maxRank: opts.maxRank ?? 3, maxNumel: opts.maxNumel ?? 60_000 }).chain((s) =>
    fc
      .tuple(fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }), fc.integer({ min: 0, max: s.length }), fc.boolean())
      .map(([ones, drop, swap]) => {
        const b = s.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
        return (swap ? [b, s] : [s, b]) as [number[], number[]];
      }),
  );
}

/** A seeded PRNG, so failing cases replay from fast-check's seed. */
export const rng = mulberry32;

/** n f32-representable values uniform in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** n integers uniform in [lo, hi]. */
export function ints(n: number, seed: number, lo: number, hi: number): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor((hi - lo + 1) * r());
  return out;
}

/** A GPU tensor and its float64 twin with the same (already f32/i32-rounded) values. */
export function pair(values: Float32Array | Int32Array | Uint32Array, shape: readonly number[], dtype?: DType): [Tensor, ref.F64] {
  return [Tensor.fromArray(values, shape, dtype), ref.array(values, shape)];
}

export interface Tol {
  /** absolute tolerance */
  atol?: number;
  /** relative tolerance, times |expected| or times `scale` when given */
  rtol?: number;
  /** per-element magnitude for rtol (e.g. the sum of |x| that went into a sum) */
  scale?: ref.F64;
}

/** Read a tensor back and check every element against the reference: |got - want| <= atol + rtol·scale. */
export async function expectClose(t: Tensor, want: ref.F64, tol: Tol = {}, what = 'result'): Promise<void> {
  expect(t.shape, `${what}: shape`).toEqual(want.shape);
  const got = await ref.fromTensor(t);
  const { atol = 0, rtol = 0, scale } = tol;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.data.length; i++) {
    const g = got.data[i]!;
    const w = want.data[i]!;
    if (Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w))) continue;
    const bound = atol + rtol * (scale ? scale.data[i]! : Math.abs(w));
    const excess = Math.abs(g - w) - bound;
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    const c = ref.unravel(worst, want.shape);
    expect.fail(
      `${what} [${want.shape.join(', ')}] at [${c.join(', ')}]: got ${got.data[worst]}, want ${want.data[worst]} ` +
        `(atol ${atol}, rtol ${rtol}${scale ? ` x scale ${scale.data[worst]}` : ''})`,
    );
  }
}

/** Exact equality (bit-level for floats, NaN equal to NaN). */
export async function expectEqual(t: Tensor, want: ref.F64, what = 'result'): Promise<void> {
  return expectClose(t, want, {}, what);
}

/** fast-check settings for GPU properties: modest run counts keep the suite fast on a software adapter. */
export const RUNS = { numRuns: 25 };

/** Row strategies to draw from: the adapter's own choice and both forced paths, so every kernel runs on any adapter. */
export const strategyArb = fc.constantFrom<RowStrategy>('auto', 'workgroup', 'thread');

/** Run fn with a forced row strategy, restoring 'auto' after. */
export async function withRows<T>(s: RowStrategy, fn: () => Promise<T>): Promise<T> {
  setRowStrategy(s);
  try {
    return await fn();
  } finally {
    setRowStrategy('auto');
  }
}
