// Gradient property of the embedding lookup: repeated ids accumulate, out-of-range ids read zeros and get nothing,
// and the scatter-add is deterministic (the same bits on every run).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { EMBEDDING, embedding, param, constant, backward } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

describe('embedding', () => {
  it('gradient of embedding (ids of rank 1 or 2, repeats, a few out of range)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 3, 7, 56, 57),
        fc.constantFrom(1, 3, 7, 56, 57),
        fc.array(fc.constantFrom(1, 2, 3, 7), { minLength: 1, maxLength: 2 }),
        fc.integer(),
        async (V, C, idShape, seed) => {
          const r = rng(seed);
          const n = idShape.reduce<number>((a, b) => a * b, 1);
          // ids in [-1, V]: the two ends are out of range; small V makes repeats certain
          const ids = { shape: idShape, data: Float64Array.from({ length: n }, () => Math.floor(r() * (V + 2)) - 1) };
          await checkOp(EMBEDDING, [randomF64([V, C], r), ids], null, { seed });
        },
      ),
      { numRuns: 14 },
    );
  });

  it('the table gradient is the same bits on every run', async () => {
    const V = 5;
    const C = 33;
    const ids = constant(Tensor.fromArray(new Int32Array(Array.from({ length: 200 }, (_, i) => (i * 7) % V))));
    const g = Tensor.fromArray(Float32Array.from({ length: 200 * C }, (_, i) => Math.sin(i * 1.3) * 1e3 + 1e-3 * i), [200, C]);
    const grads: Float32Array[] = [];
    for (let k = 0; k < 3; k++) {
      const table = param(Tensor.fromArray(new Float32Array(V * C), [V, C]));
      backward(embedding(table, ids), { seed: g });
      grads.push((await table.grad!.toArray()) as Float32Array);
    }
    expect(grads[1]).toEqual(grads[0]);
    expect(grads[2]).toEqual(grads[0]);
  });

  it('rejects non-i32 ids and a table that is not [V, C]', () => {
    const table = param(Tensor.fromArray(new Float32Array(6), [2, 3]));
    expect(() => embedding(table, constant(Tensor.fromArray(new Float32Array([0, 1]))))).toThrow(/ids must be i32, got f32/);
    expect(() => embedding(param(Tensor.fromArray(new Float32Array(6))), constant(Tensor.fromArray(new Int32Array([0]))))).toThrow(
      /table must be \[V, C\]/,
    );
  });
});
