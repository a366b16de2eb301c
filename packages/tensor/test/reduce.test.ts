// Reductions vs the float64 reference: sum/mean/max over random axis sets, argmax (first index on ties), sumTo, sumAll.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor, ref, sum, mean, max, argmax, sumTo, sumAll } from '../src/index.ts';
import { shapeArb, broadcastPairArb, uniform, ints, pair, expectClose, expectEqual, RUNS, strategyArb, withRows } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

// f32 sums: each output adds K values in f32 (per-thread strided loops, then a tree); the worst-case bound is about
// K·2^-24·Σ|x|, the typical error √K times smaller. We check |got - want| <= 1e-5·Σ|x| over the reduced elements —
// loose enough never to flake at K <= 60,000, tight enough to catch a dropped or doubled element (error >= min|x|).
const SUM_RTOL = 1e-5;

/** A shape with a random subset of its axes (as positive or negative numbers) and a keepdim flag. */
const axesCase = shapeArb({ maxRank: 4 }).chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.subarray([...shape.keys()]).chain((axes) => fc.tuple(...axes.map((a) => fc.constantFrom(a, a - shape.length)))),
    fc.boolean(),
  ),
);

describe('sum, mean, max', () => {
  it('match the reference over any set of axes (row, column, split and multi-pass plans)', async () => {
    await fc.assert(
      fc.asyncProperty(axesCase, fc.constantFrom('sum', 'mean', 'max'), strategyArb, fc.nat(), async ([shape, axes, keepdim], op, strategy, seed) => {
        const [x, xr] = pair(uniform(ref.size(shape), seed, -1, 1), shape);
        const absR = ref.unary('abs', xr);
        const what = `${op}([${shape}], axes [${axes}], keepdim ${keepdim}, rows ${strategy})`;
        await withRows(strategy, async () => {
          if (op === 'max') await expectEqual(max(x, axes, keepdim), ref.max(xr, axes, keepdim), what);
          else if (op === 'sum') await expectClose(sum(x, axes, keepdim), ref.sum(xr, axes, keepdim), { rtol: SUM_RTOL, scale: ref.sum(absR, axes, keepdim) }, what);
          else await expectClose(mean(x, axes, keepdim), ref.mean(xr, axes, keepdim), { rtol: SUM_RTOL, scale: ref.mean(absR, axes, keepdim) }, what);
        });
        x.dispose();
      }),
      { numRuns: 40 },
    );
  });

  it('long rows and long columns take the split-K path and stay accurate', async () => {
    for (const shape of [[2, 100_000], [100_000, 2], [3, 20_000, 2], [200_000]]) {
      // positive values: no cancellation, so the error bound is relative to the sum itself
      const [x, xr] = pair(uniform(ref.size(shape), shape.length * 7 + shape[0]!, 0, 1), shape);
      const cases = [[shape.length - 1], [0]].map((axes) => ({ axes, sum: ref.sum(xr, axes), max: ref.max(xr, axes), argmax: ref.argmax(xr, axes[0]!) }));
      const total = ref.sumAll(xr);
      for (const strategy of ['workgroup', 'thread'] as const) {
        await withRows(strategy, async () => {
          for (const c of cases) {
            const what = `[${shape}] axes ${c.axes} rows ${strategy}`;
            await expectClose(sum(x, c.axes), c.sum, { rtol: SUM_RTOL, scale: c.sum }, `sum ${what}`);
            await expectEqual(max(x, c.axes), c.max, `max ${what}`);
            await expectEqual(argmax(x, c.axes[0]), c.argmax, `argmax ${what}`);
          }
          await expectClose(sumAll(x), total, { rtol: SUM_RTOL, scale: total }, `sumAll [${shape}] rows ${strategy}`);
        });
      }
      x.dispose();
    }
  });

  it('integer sum and max are exact', async () => {
    await fc.assert(
      fc.asyncProperty(axesCase, fc.constantFrom('sum', 'max'), strategyArb, fc.nat(), async ([shape, axes, keepdim], op, strategy, seed) => {
        const [x, xr] = pair(ints(ref.size(shape), seed, -1000, 1000), shape);
        await withRows(strategy, async () => {
          const got = op === 'sum' ? sum(x, axes, keepdim) : max(x, axes, keepdim);
          expect(got.dtype).toBe('i32');
          await expectEqual(got, op === 'sum' ? ref.sum(xr, axes, keepdim) : ref.max(xr, axes, keepdim), `${op} i32 [${shape}] axes [${axes}] rows ${strategy}`);
        });
        x.dispose();
      }),
      RUNS,
    );
  });

  it('handles empty axes, scalars and size-1 axes', async () => {
    const e = Tensor.empty([3, 0, 2]);
    await expectEqual(sum(e, 1), ref.zeros([3, 2]), 'sum over an empty axis');
    expect(Array.from(await mean(e, 1, true).toArray()).every(Number.isNaN)).toBe(true);
    expect(sum(e, 0).shape).toEqual([0, 2]);
    expect(() => max(e, 1)).toThrow('max: cannot reduce an empty axis of [3, 0, 2]');
    const [s, sr] = pair(new Float32Array([2.5]), []);
    await expectEqual(sum(s), sr, 'sum of a scalar');
    const [o, or] = pair(uniform(6, 1), [1, 6, 1]);
    await expectEqual(sum(o, [0, 2]), ref.sum(or, [0, 2]), 'sum over size-1 axes');
    await expectEqual(argmax(o, 0), ref.argmax(or, 0), 'argmax over a size-1 axis');
  });

  it('rejects bad axes with one clear line', () => {
    const x = Tensor.empty([2, 3]);
    expect(() => sum(x, 2)).toThrow('sum: axis 2 out of range for rank 2');
    expect(() => sum(x, [1, -1])).toThrow('sum: repeated axis');
    expect(() => mean(Tensor.empty([2], 'i32'))).toThrow('mean: needs f32, got i32');
  });
});

describe('argmax', () => {
  it('returns the first index of the maximum along any axis, as i32', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 3 }).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }))), fc.boolean(), fc.boolean(), strategyArb, fc.nat(),
        async ([shape, axis], keepdim, ties, strategy, seed) => {
          // small integers make ties common, so the first-index rule is exercised
          const v = ties ? Float32Array.from(ints(ref.size(shape), seed, 0, 3)) : uniform(ref.size(shape), seed);
          const [x, xr] = pair(v, shape);
          await withRows(strategy, async () => {
            const got = argmax(x, axis, keepdim);
            expect(got.dtype).toBe('i32');
            await expectEqual(got, ref.argmax(xr, axis, keepdim), `argmax([${shape}], ${axis}, ties ${ties}, rows ${strategy})`);
          });
          x.dispose();
        }),
      RUNS,
    );
  });
});

describe('sumTo', () => {
  it('undoes a broadcast: sums x back to any shape that broadcasts to it', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPairArb({ maxRank: 4 }), fc.nat(), async ([a, b], seed) => {
        const full = ref.broadcastShape(a, b);
        const target = ref.size(a) <= ref.size(b) ? a : b;
        const [x, xr] = pair(uniform(ref.size(full), seed), full);
        await expectClose(sumTo(x, target), ref.sumTo(xr, target), { rtol: SUM_RTOL, scale: ref.sumTo(ref.unary('abs', xr), target) }, `sumTo [${full}] -> [${target}]`);
        x.dispose();
      }),
      RUNS,
    );
  });

  it('returns the same shape when nothing was broadcast, and rejects shapes that do not broadcast', async () => {
    const [x, xr] = pair(uniform(12, 3), [3, 4]);
    await expectEqual(sumTo(x, [3, 4]), xr);
    expect(() => sumTo(x, [2, 4])).toThrow('sumTo: [2, 4] does not broadcast to [3, 4]');
  });
});
