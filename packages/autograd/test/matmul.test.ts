// Gradient properties of matmul: every transpose combination, batched, and a batch-free weight shared across a batch.
import { describe, it, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose } from '@dawngrad/tensor';
import { MATMUL } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const dim = fc.constantFrom(1, 3, 7, 8, 13);

describe('matmul gradients', () => {
  it('gradient of matmul for all transposes, batched and shared-weight', async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, fc.boolean(), fc.boolean(), fc.constantFrom('none', 'both', 'a-only'), fc.integer(), async (M, K, N, transA, transB, batching, seed) => {
        const r = rng(seed);
        const batch = batching === 'none' ? [] : [2];
        const aShape = [...batch, ...(transA ? [K, M] : [M, K])];
        const bShape = [...(batching === 'both' ? batch : []), ...(transB ? [N, K] : [K, N])];
        await checkOp(MATMUL, [randomF64(aShape, r), randomF64(bShape, r)], { transA, transB }, { seed });
      }),
      { numRuns: 24 },
    );
  });
});
