// Elementwise unary/binary ops vs the float64 reference, over random shapes (vec4 and scalar paths, broadcasting).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor, ref, unary, binary, add, addInto, UNARY, BINARY, type UnaryOp, type BinaryOp } from '../src/index.ts';
import { shapeArb, broadcastPairArb, uniform, ints, pair, expectClose, expectEqual, RUNS, type Tol } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const ULP = 2 ** -23; // one f32 ulp, relative

// Input domain and tolerance per op. Tolerances follow the WGSL accuracy table: correctly rounded ops within an ulp,
// exp within 3 + 2|x| ulp, log within 2^-21 absolute near 1, sin/cos within 2^-11 absolute on [-π, π], the rest
// "inherited" from the formulas they are built from.
const UNARY_CASES: Record<UnaryOp, { lo: number; hi: number; tol: Tol; c?: number[] }> = {
  neg: { lo: -100, hi: 100, tol: {} },
  abs: { lo: -100, hi: 100, tol: {} },
  relu: { lo: -100, hi: 100, tol: {} },
  square: { lo: -100, hi: 100, tol: { rtol: ULP } },
  addScalar: { lo: -100, hi: 100, tol: { rtol: ULP, atol: 1e-5 }, c: [-3.5, 0, 0.25, 7] },
  mulScalar: { lo: -100, hi: 100, tol: { rtol: ULP }, c: [-3.5, 0, 0.25, 7] },
  exp: { lo: -20, hi: 20, tol: { rtol: 43 * ULP } },
  log: { lo: 1e-3, hi: 1e3, tol: { atol: 2 ** -21, rtol: 3 * ULP } },
  sqrt: { lo: 0, hi: 1e4, tol: { rtol: 5 * ULP } },
  rsqrt: { lo: 1e-3, hi: 1e4, tol: { rtol: 3 * ULP } },
  recip: { lo: 0.1, hi: 10, tol: { rtol: 3 * ULP } },
  sigmoid: { lo: -20, hi: 20, tol: { rtol: 1e-5, atol: 1e-7 } },
  silu: { lo: -20, hi: 20, tol: { rtol: 1e-5, atol: 1e-6 } },
  tanh: { lo: -10, hi: 10, tol: { rtol: 1e-5, atol: 2e-6 } },
  sin: { lo: -Math.PI, hi: Math.PI, tol: { atol: 2 ** -11 } },
  cos: { lo: -Math.PI, hi: Math.PI, tol: { atol: 2 ** -11 } },
  // negative bases: integer exponents take the sign by hand, others are NaN on both sides
  powScalar: { lo: -10, hi: 10, tol: { rtol: 2e-5 }, c: [-2.5, -1, 0.5, 2, 3] },
};

const BINARY_CASES: Record<BinaryOp, { a: [number, number]; b: [number, number]; tol: Tol }> = {
  add: { a: [-100, 100], b: [-100, 100], tol: { rtol: ULP, atol: 1e-12 } },
  sub: { a: [-100, 100], b: [-100, 100], tol: { rtol: ULP, atol: 1e-12 } },
  mul: { a: [-100, 100], b: [-100, 100], tol: { rtol: ULP } },
  div: { a: [-100, 100], b: [0.5, 50], tol: { rtol: 3 * ULP } },
  max: { a: [-1, 1], b: [-1, 1], tol: {} },
  min: { a: [-1, 1], b: [-1, 1], tol: {} },
  pow: { a: [0.1, 10], b: [-3, 3], tol: { rtol: 2e-5 } },
  eq: { a: [-2, 2], b: [-2, 2], tol: {} },
  ne: { a: [-2, 2], b: [-2, 2], tol: {} },
  lt: { a: [-2, 2], b: [-2, 2], tol: {} },
  le: { a: [-2, 2], b: [-2, 2], tol: {} },
  gt: { a: [-2, 2], b: [-2, 2], tol: {} },
  ge: { a: [-2, 2], b: [-2, 2], tol: {} },
};

describe('unary', () => {
  it('every op matches the reference (vec4 and scalar paths)', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxNumel: 20_000 }), fc.nat(), fc.nat(), async (shape, seed, ci) => {
        for (const op of Object.keys(UNARY) as UnaryOp[]) {
          const k = UNARY_CASES[op];
          const c = k.c ? k.c[ci % k.c.length]! : 0;
          const [x, xr] = pair(uniform(ref.size(shape), seed, k.lo, k.hi), shape);
          await expectClose(unary(op, x, c), ref.unary(op, xr, c), k.tol, `${op}(c=${c}) [${shape}]`);
          x.dispose();
        }
      }),
      { numRuns: 12 },
    );
  });

  it('integer unary ops wrap like i32', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxNumel: 5000 }), fc.constantFrom('neg', 'abs', 'square', 'addScalar', 'mulScalar') as fc.Arbitrary<UnaryOp>, fc.nat(), async (shape, op, seed) => {
        const [x, xr] = pair(ints(ref.size(shape), seed, -100_000, 100_000), shape);
        await expectEqual(unary(op, x, 3), ref.unary(op, xr, 3, 'i32'), `${op} i32`);
        x.dispose();
      }),
      RUNS,
    );
  });

  it('rejects float-only ops on integers and neg on u32', () => {
    const x = Tensor.fromArray(new Int32Array([1, 2]));
    expect(() => unary('exp', x)).toThrow(/exp: needs f32, got i32/);
    expect(() => unary('neg', Tensor.fromArray(new Uint32Array([1])))).toThrow(/u32/);
  });
});

describe('binary', () => {
  it('every op matches the reference under broadcasting', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPairArb({ maxNumel: 10_000 }), fc.nat(), async ([sa, sb], seed) => {
        for (const op of Object.keys(BINARY) as BinaryOp[]) {
          const k = BINARY_CASES[op];
          let va = uniform(ref.size(sa), seed, ...k.a);
          let vb = uniform(ref.size(sb), seed + 1, ...k.b);
          if (op === 'eq' || op === 'ne' || op === 'le' || op === 'ge') {
            // coarse values so equal pairs actually occur
            va = va.map(Math.round);
            vb = vb.map(Math.round);
          }
          const [a, ar] = pair(va, sa);
          const [b, br] = pair(vb, sb);
          await expectClose(binary(op, a, b), ref.binary(op, ar, br), k.tol, `${op} [${sa}] [${sb}]`);
          a.dispose();
          b.dispose();
        }
      }),
      { numRuns: 12 },
    );
  });

  it('i32 and u32 arithmetic matches wrapping integer math (division truncates, x / 0 = x)', async () => {
    const ops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'lt', 'eq'];
    await fc.assert(
      fc.asyncProperty(broadcastPairArb({ maxNumel: 5000 }), fc.constantFrom(...ops), fc.constantFrom('i32', 'u32') as fc.Arbitrary<'i32' | 'u32'>, fc.nat(), async ([sa, sb], op, dtype, seed) => {
        const lo = dtype === 'i32' ? -70_000 : 0;
        const mk = (n: number, s: number) => (dtype === 'i32' ? ints(n, s, lo, 70_000) : new Uint32Array(ints(n, s, 0, 140_000)));
        const [a, ar] = pair(mk(ref.size(sa), seed), sa, dtype);
        const [b, br] = pair(mk(ref.size(sb), seed + 1).map((v) => (op === 'div' ? v % 50 : v)), sb, dtype);
        await expectEqual(binary(op, a, b), ref.binary(op, ar, br, dtype), `${op} ${dtype}`);
        a.dispose();
        b.dispose();
      }),
      RUNS,
    );
  });

  it('adds with broadcasting (hand-checked values)', async () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(Array.from(await add(a, Tensor.fromArray([10, 20, 30], [3])).toArray())).toEqual([11, 22, 33, 14, 25, 36]);
    expect(Array.from(await add(a, Tensor.fromArray([100, 200], [2, 1])).toArray())).toEqual([101, 102, 103, 204, 205, 206]);
  });

  it('handles empty and scalar shapes', async () => {
    const e = add(Tensor.empty([0, 3]), Tensor.fromArray([1, 2, 3], [3]));
    expect(e.shape).toEqual([0, 3]);
    const s = binary('mul', Tensor.fromArray([3], []), Tensor.fromArray([1, 2, 3, 4], [4]));
    await expectEqual(s, ref.array([3, 6, 9, 12]));
  });

  it('names both shapes when they do not broadcast', () => {
    expect(() => add(Tensor.empty([2, 3]), Tensor.empty([4]))).toThrow('cannot broadcast [2, 3] with [4]');
    expect(() => add(Tensor.empty([2]), Tensor.empty([2], 'i32'))).toThrow(/dtypes differ/);
  });

  it('addInto adds in place: the same tensor and buffer, scalar and vec4 paths, a tensor added to itself', async () => {
    for (const n of [5, 8]) {
      const dst = Tensor.fromArray(Array.from({ length: n }, (_, i) => i), [n]);
      const buffer = dst.buffer;
      addInto(dst, Tensor.fromArray(Array.from({ length: n }, (_, i) => 10 * i), [n]));
      expect(dst.buffer).toBe(buffer);
      expect(Array.from(await dst.toArray())).toEqual(Array.from({ length: n }, (_, i) => 11 * i));
      addInto(dst, dst);
      expect(Array.from(await dst.toArray())).toEqual(Array.from({ length: n }, (_, i) => 22 * i));
    }
    expect(() => addInto(Tensor.empty([2, 3]), Tensor.empty([3, 2]))).toThrow(/shapes differ/);
    expect(() => addInto(Tensor.empty([2], 'i32'), Tensor.empty([2], 'i32'))).toThrow(/needs f32/);
  });
});
