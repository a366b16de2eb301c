// where / maskedFill / cast / fill / arange vs the float64 reference: all exact.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, rt, Tensor, ref, where, maskedFill, cast, fill, zeros, ones, fromScalar, arange, binary, type DType } from '../src/index.ts';
import { SIZES, shapeArb, broadcastPairArb, uniform, ints, expectEqual, RUNS } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const hasF16 = () => rt().ctx.hasF16;

/** A tensor of `dtype` holding `values` converted to it (as cast would), and its reference. */
function make(values: ArrayLike<number>, shape: number[], dtype: DType): [Tensor, ref.F64] {
  const r = ref.cast(ref.array(values, shape), dtype);
  return [ref.toTensor(r, dtype), r];
}

/** 0/1 values, about a third ones. */
const bits = (n: number, seed: number) => Array.from(ints(n, seed, 0, 2), (v) => (v === 2 ? 1 : 0));

describe('where', () => {
  it('selects with three-way broadcasting, for any cond dtype', async () => {
    const shapes = broadcastPairArb({ maxRank: 3, maxNumel: 20_000 }).chain(([a, b]) =>
      fc.tuple(fc.constant(a), fc.constant(b), fc.constantFrom(a, b, [1], a.slice(1))),
    );
    const valueTypes: DType[] = hasF16() ? ['f32', 'i32', 'f16'] : ['f32', 'i32'];
    await fc.assert(
      fc.asyncProperty(shapes, fc.constantFrom<DType>('f32', 'i32', 'u32'), fc.constantFrom(...valueTypes), fc.nat(), async ([sa, sb, sc], condType, T, seed) => {
        const [c, cr] = make(bits(ref.size(sc), seed), sc, condType);
        const [a, ar] = make(uniform(ref.size(sa), seed + 1, -100, 100), sa, T);
        const [b, br] = make(uniform(ref.size(sb), seed + 2, -100, 100), sb, T);
        const got = where(c, a, b);
        expect(got.dtype).toBe(T);
        await expectEqual(got, ref.where(cr, ar, br), `where cond [${sc}] ${condType}, a [${sa}], b [${sb}] ${T}`);
        [a, b, c].forEach((t) => t.dispose());
      }),
      RUNS,
    );
  });

  it('composes with comparisons (cond from lt)', async () => {
    const [x, xr] = make(uniform(57, 3), [57], 'f32');
    const zero = fromScalar(0);
    await expectEqual(where(binary('lt', x, zero), zero, x), ref.where(ref.binary('lt', xr, ref.fromScalar(0)), ref.fromScalar(0), xr));
  });
});

describe('maskedFill', () => {
  it('fills where the broadcast mask is non-zero, including with -Infinity', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPairArb({ maxRank: 3, maxNumel: 20_000 }), fc.constantFrom<DType>('f32', 'i32', 'u32'), fc.constantFrom(-Infinity, 0, -3.5, 1e4), fc.nat(),
        async ([a, b], maskType, value, seed) => {
          const [xs, ms] = ref.broadcastShape(a, b).length === a.length && ref.size(a) >= ref.size(b) ? [a, b] : [ref.broadcastShape(a, b), b];
          const [x, xr] = make(uniform(ref.size(xs), seed), xs, 'f32');
          const [m, mr] = make(bits(ref.size(ms), seed + 1), ms, maskType);
          await expectEqual(maskedFill(x, m, value), ref.maskedFill(xr, mr, value), `maskedFill [${xs}] mask [${ms}] ${maskType} value ${value}`);
          x.dispose();
          m.dispose();
        }),
      RUNS,
    );
  });

  it('fills integer tensors with integers and rejects a mask that would grow x', async () => {
    const [x, xr] = make(ints(21, 4, -50, 50), [3, 7], 'i32');
    const [m, mr] = make(bits(7, 5), [7], 'u32');
    await expectEqual(maskedFill(x, m, -1), ref.maskedFill(xr, mr, -1));
    expect(() => maskedFill(Tensor.empty([7]), Tensor.empty([3, 7]), 0)).toThrow('maskedFill: mask [3, 7] does not broadcast to [7]');
  });
});

describe('cast', () => {
  it('converts between every pair of dtypes as WGSL does (trunc + saturate to ints, bits kept i32<->u32)', async () => {
    const types: DType[] = ['f32', 'i32', 'u32', 'f16'];
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 2, maxNumel: 20_000 }), fc.constantFrom(...types), fc.constantFrom(...types), fc.nat(), async (shape, from, to, seed) => {
        // f16 ends stay inside the f16 range; float -> int includes values beyond the int range to check saturation
        const span = from === 'f16' || to === 'f16' ? 6e4 : from === 'f32' ? 1e10 : 3e9;
        const [x, xr] = make(uniform(ref.size(shape), seed, -span, span), shape, from);
        const got = cast(x, to);
        expect(got.dtype).toBe(to);
        await expectEqual(got, ref.cast(xr, to, from), `cast [${shape}] ${from} -> ${to}`);
        x.dispose();
      }),
      { numRuns: 40 },
    );
  });

  it('rounds f32 to the nearest f16 (odd lengths, subnormals, ties)', async () => {
    // values on f16 half-ulp boundaries and in the subnormal range
    const v = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -20, -(2 ** -24), 65504, -0.1, 1 / 3];
    const [x, xr] = make(v, [v.length], 'f32');
    await expectEqual(cast(x, 'f16'), ref.cast(xr, 'f16'), 'f32 -> f16');
  });

  it('casts a packed view (at a non-zero offset) to its own dtype', async () => {
    const { views, whole } = Tensor.packed([[3], [5]]);
    views[0]!.write([9, 9, 9]);
    views[1]!.write([1, -2.5, 3, 4e6, 0.5]);
    const y = cast(views[1]!, 'f32');
    expect(Array.from(await y.toArray())).toEqual([1, -2.5, 3, 4e6, 0.5]);
    for (const t of [y, whole, ...views]) t.dispose();
  });
});

describe('fill, zeros, ones, fromScalar, arange', () => {
  it('fill writes the value in every dtype (f16 packed two per word, odd counts too)', async () => {
    const types: DType[] = hasF16() ? ['f32', 'i32', 'u32', 'f16'] : ['f32', 'i32', 'u32'];
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 3, extra: [0] }), fc.constantFrom(...types), fc.constantFrom(0, 1, 7, 1000, -2.5, 65504), async (shape, dtype, value) => {
        if ((dtype === 'i32' || dtype === 'u32') && (!Number.isInteger(value) || value < 0)) return;
        await expectEqual(fill(shape, value, dtype), ref.fill(shape, value, dtype), `fill [${shape}] ${value} ${dtype}`);
      }),
      RUNS,
    );
  });

  it('zeros, ones, fromScalar', async () => {
    await expectEqual(zeros([3, 57]), ref.zeros([3, 57]));
    await expectEqual(ones([7], 'i32'), ref.ones([7]));
    const s = fromScalar(-2.5);
    expect(s.shape).toEqual([]);
    await expectEqual(s, ref.fromScalar(-2.5));
    expect(() => fill([2], 1.5, 'i32')).toThrow('fill: 1.5 is not a i32 value');
  });

  it('arange counts from 0 in i32, u32 and f32', async () => {
    for (const n of [0, ...SIZES]) {
      for (const dtype of ['i32', 'u32', 'f32'] as const) {
        const t = arange(n, dtype);
        expect(t.dtype).toBe(dtype);
        await expectEqual(t, ref.arange(n), `arange ${n} ${dtype}`);
      }
    }
  });
});
