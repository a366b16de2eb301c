// Dropout: the gradient property, the mask statistics (a binomial tolerance), determinism by seed, the mask regenerated
// in backward, and the GPU hash against its CPU twin bit for bit.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { DROPOUT, dropout, dropoutKeeps, param, backward } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const N = 20000;
const ones = () => param(Tensor.fromArray(new Float32Array(N).fill(1), [100, 200]));

describe('dropout', () => {
  it('gradient of dropout', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(1, 3, 7, 56, 57), { minLength: 1, maxLength: 3 }),
        fc.constantFrom(0.1, 0.5, 0.9),
        fc.nat(),
        async (shape, p, seed) => {
          fc.pre(shape.reduce<number>((a, b) => a * b, 1) <= 4000);
          await checkOp(DROPOUT, [randomF64(shape, rng(seed))], { p, seed }, { seed });
        },
      ),
      { numRuns: 12 },
    );
  });

  for (const p of [0.1, 0.5, 0.9]) {
    it(`keeps a fraction within 5 binomial standard deviations of 1 − p (p = ${p}), and scales kept values by 1/(1−p)`, async () => {
      const y = await dropout(ones(), p, { seed: 1234 }).data.toArray();
      const kept = y.filter((v) => v !== 0).length;
      const scaled = new Set(y.filter((v) => v !== 0));
      expect([...scaled]).toEqual([Math.fround(1 / (1 - p))]);
      const sd = Math.sqrt(N * p * (1 - p));
      expect(Math.abs(kept - N * (1 - p))).toBeLessThan(5 * sd);
    });
  }

  it('the same seed gives the same mask, another seed another; the GPU mask is the CPU hash', async () => {
    const p = 0.3;
    const a = await dropout(ones(), p, { seed: 7 }).data.toArray();
    const b = await dropout(ones(), p, { seed: 7 }).data.toArray();
    const c = await dropout(ones(), p, { seed: 8 }).data.toArray();
    expect(b).toEqual(a);
    let differ = 0;
    const mismatches: number[] = [];
    for (let i = 0; i < N; i++) {
      if ((a[i] !== 0) !== (c[i] !== 0)) differ++;
      if ((a[i] !== 0) !== dropoutKeeps(i, 7, p)) mismatches.push(i);
    }
    expect(mismatches, 'elements where the GPU mask differs from the CPU hash').toEqual([]);
    // independent masks disagree on 2·p·(1−p) of the elements
    expect(Math.abs(differ - N * 2 * p * (1 - p))).toBeLessThan(5 * Math.sqrt(N * 0.42 * 0.58));
  });

  it('the gradient is mask/(1 − p): the backward regenerates the forward mask', async () => {
    const p = 0.25;
    const x = ones();
    const y = dropout(x, p, { seed: 99 });
    const fwd = await y.data.toArray(); // x = 1, so y = mask/(1 − p)
    backward(y, { seed: Tensor.fromArray(new Float32Array(N).fill(1), [100, 200]) });
    expect(await x.grad!.toArray()).toEqual(fwd);
  });

  it('is the identity when not training or when p = 0, and rejects p outside [0, 1)', () => {
    const x = ones();
    expect(dropout(x, 0.5, { seed: 1, training: false })).toBe(x);
    expect(dropout(x, 0, { seed: 1 })).toBe(x);
    expect(() => dropout(x, 1, { seed: 1 })).toThrow(/dropout: p must be in \[0, 1\), got 1/);
    expect(() => dropout(x, 0.5, { seed: 1.5 })).toThrow(/seed must be an integer/);
  });
});
