// softmax / logSoftmax over the last axis vs the float64 reference, including huge and -Infinity logits.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor, ref, softmax, logSoftmax } from '../src/index.ts';
import { shapeArb, uniform, pair, expectClose, RUNS, strategyArb, withRows } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

// softmax: each output is exp(x - max) / Σ: exp within a few ulp plus a sum of C terms in f32 -> relative 1e-5 of the
// value, and 1e-7 absolute for the tiny probabilities. logSoftmax: x - max is exact or within half an ulp of |x - max|,
// log(Σ) within 2^-21 -> 1e-6 relative to |value| plus 1e-6 absolute.
const SOFTMAX_TOL = { rtol: 1e-5, atol: 1e-7 };
const LOG_TOL = { rtol: 1e-6, atol: 1e-6 };

describe('softmax and logSoftmax', () => {
  it('match the reference for logits from 1 up to 1e30 in scale (no overflow: the max is subtracted first)', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 3 }), fc.constantFrom(1, 10, 1e4, 1e10, 1e30), strategyArb, fc.nat(), async (shape, scale, strategy, seed) => {
        const [x, xr] = pair(uniform(ref.size(shape), seed, -scale, scale), shape);
        await withRows(strategy, async () => {
          const what = `[${shape}] scale ${scale} rows ${strategy}`;
          await expectClose(softmax(x), ref.softmax(xr), SOFTMAX_TOL, `softmax ${what}`);
          await expectClose(logSoftmax(x), ref.logSoftmax(xr), LOG_TOL, `logSoftmax ${what}`);
        });
        x.dispose();
      }),
      RUNS,
    );
  });

  it('treats -Infinity (masked) logits as probability 0, and rows sum to 1', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 2 }), strategyArb, fc.nat(), async (shape, strategy, seed) => {
        const v = uniform(ref.size(shape), seed, -5, 5);
        const C = shape[shape.length - 1]!;
        // mask every other element but keep each row's first one finite
        for (let i = 0; i < v.length; i++) if (i % C !== 0 && (i * 7 + seed) % 3 === 0) v[i] = -Infinity;
        const [x, xr] = pair(v, shape);
        const p = await withRows(strategy, async () => {
          const p = softmax(x);
          await expectClose(p, ref.softmax(xr), SOFTMAX_TOL, `masked softmax [${shape}] rows ${strategy}`);
          await expectClose(logSoftmax(x), ref.logSoftmax(xr), LOG_TOL, `masked logSoftmax [${shape}] rows ${strategy}`);
          return p;
        });
        const rows = ref.sum(await ref.fromTensor(p), -1);
        for (const s of rows.data) expect(Math.abs(s - 1)).toBeLessThan(1e-5);
        x.dispose();
      }),
      RUNS,
    );
  });

  it('handles one-element rows, empty tensors and rejects scalars', async () => {
    const [x, xr] = pair(uniform(5, 9, -3, 3), [5, 1]);
    await expectClose(softmax(x), ref.softmax(xr), SOFTMAX_TOL);
    await expectClose(logSoftmax(x), ref.logSoftmax(xr), LOG_TOL);
    expect(softmax(Tensor.empty([0, 4])).shape).toEqual([0, 4]);
    expect(softmax(Tensor.empty([4, 0])).shape).toEqual([4, 0]);
    expect(() => softmax(Tensor.fromArray([1], []))).toThrow('softmax: needs at least one axis, got a scalar');
    expect(() => logSoftmax(Tensor.empty([2], 'i32'))).toThrow('logSoftmax: needs f32, got i32');
  });
});
