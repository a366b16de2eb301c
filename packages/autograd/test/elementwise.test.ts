// Gradient properties of the elementwise family: analytic vs finite differences (float64), GPU vs CPU (float32).
import { describe, it, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose } from '@dawngrad/tensor';
import { ADD, SUB, MUL, DIV, NEG, EXP, LOG, SQRT, RSQRT, POW, SIGMOID, SILU, SCALE } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const DIMS = [1, 3, 7, 56, 57];
const dim = fc.constantFrom(...DIMS);
// a shape and a second shape that broadcasts against it (dims dropped from the left or set to 1)
const broadcastPair = fc
  .tuple(fc.array(dim, { minLength: 1, maxLength: 3 }), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), fc.nat(2), fc.integer())
  .filter(([s]) => s.reduce((a, b) => a * b, 1) <= 4000)
  .map(([s, ones, drop, seed]) => {
    const t = s.map((d, i) => (ones[i] ? 1 : d)).slice(Math.min(drop, s.length - 1));
    return { a: s, b: t, seed };
  });

describe('binary ops with broadcasting', () => {
  for (const [def, positiveB] of [[ADD, false], [SUB, false], [MUL, false], [DIV, true]] as const) {
    it(`gradient of ${def.name}`, async () => {
      await fc.assert(
        fc.asyncProperty(broadcastPair, fc.boolean(), async ({ a, b, seed }, swap) => {
          const r = rng(seed);
          const [sa, sb] = swap ? [b, a] : [a, b];
          const x = randomF64(sa, r);
          const y = positiveB ? randomF64(sb, r, 0.5, 2) : randomF64(sb, r);
          await checkOp(def, [x, y], null, { seed });
        }),
        { numRuns: 12 },
      );
    });
  }
});

describe('unary ops', () => {
  const cases = [
    [NEG, -3, 3, 0],
    [EXP, -3, 3, 0],
    [LOG, 0.2, 5, 0],
    [SQRT, 0.2, 5, 0],
    [RSQRT, 0.2, 5, 0],
    [POW, 0.2, 3, 2.5],
    [POW, -2, 2, 3],
    [SIGMOID, -6, 6, 0],
    [SILU, -6, 6, 0],
    [SCALE, -3, 3, -0.7],
  ] as const;
  for (const [def, lo, hi, c] of cases) {
    it(`gradient of ${def.name}${c ? ` (c=${c})` : ''}`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(dim, { minLength: 1, maxLength: 3 }), fc.integer(), async (shape, seed) => {
          const n = shape.reduce((a, b) => a * b, 1);
          fc.pre(n <= 4000);
          await checkOp(def, [randomF64(shape, rng(seed), lo, hi)], c, { seed, fdTol: 1e-5 });
        }),
        { numRuns: 10 },
      );
    });
  }
});
