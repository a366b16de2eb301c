// Gradient properties of softmax and log-softmax over the last axis: short rows (one invocation per row) and long
// rows (a workgroup per row, 64 or 256 threads), against finite differences and the float64 twins.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { SOFTMAX, LOG_SOFTMAX, softmax, param, backward, sum, type F64 } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

// last dims cover both kernels: <= 32 (per row), 33..256 (64 threads), > 256 (256 threads)
const lead = fc.array(fc.constantFrom(1, 3, 7, 56, 57), { minLength: 0, maxLength: 2 });
const last = fc.constantFrom(1, 3, 7, 32, 33, 56, 57, 300);

describe('softmax family', () => {
  const property = (check: (x: F64, seed: number) => Promise<void>) =>
    fc.assert(
      fc.asyncProperty(lead, last, fc.integer(), (pre, C, seed) => {
        const shape = [...pre, C];
        fc.pre(shape.reduce<number>((a, b) => a * b, 1) <= 6000);
        return check(randomF64(shape, rng(seed), -4, 4), seed);
      }),
      { numRuns: 10 },
    );
  it('gradient of softmax', () => property((x, seed) => checkOp(SOFTMAX, [x], null, { seed })));
  it('gradient of logSoftmax', () => property((x, seed) => checkOp(LOG_SOFTMAX, [x], null, { seed })));

  it('the gradient of Σ softmax is zero (each row sums to one)', async () => {
    const x = param(Tensor.fromArray(Float32Array.from({ length: 3 * 40 }, (_, i) => Math.sin(i)), [3, 40]));
    backward(sum(softmax(x)));
    for (const v of await x.grad!.toArray()) expect(Math.abs(v)).toBeLessThan(1e-6);
  });
});
