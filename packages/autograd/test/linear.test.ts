// linearLowRank (LoRA's y = x·Wᵀ + s·(x'·Aᵀ)·Bᵀ as one op): gradients against finite differences and the GPU against the
// float64 twin, with and without the dropout input, frozen base; on this adapter's kernels and on the GPU kernels
// forced onto it; and the fused op against the same function built from plain matmul, scale and add.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, setMatmulPath, Tensor, fill } from '@dawngrad/tensor';
import { LINEAR_LOW_RANK, linearLowRank, matmul, scale, add, param, constant, backward, sum } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => {
  setMatmulPath(null);
  dispose();
});

// few distinct r: each is a kernel to compile, seconds apiece on lavapipe
const dims = fc.record({ N: fc.constantFrom(1, 5, 12), inF: fc.constantFrom(4, 7, 16), outF: fc.constantFrom(3, 8, 12), r: fc.constantFrom(2, 8), seed: fc.integer() });

function inputs({ N, inF, outF, r, seed }: { N: number; inF: number; outF: number; r: number; seed: number }, dropped: boolean) {
  const rand = rng(seed);
  const xs = [randomF64([N, inF], rand), randomF64([outF, inF], rand), randomF64([r, inF], rand), randomF64([outF, r], rand)];
  if (dropped) xs.push(randomF64([N, inF], rand));
  return xs;
}

describe('linearLowRank', () => {
  for (const path of [null, 'tiled'] as const) {
    it(`gradient of every input, with and without a dropout input (${path ?? 'adapter default'} kernels)`, async () => {
      setMatmulPath(path);
      try {
        await fc.assert(
          fc.asyncProperty(dims, fc.boolean(), async (d, dropped) => {
            await checkOp(LINEAR_LOW_RANK, inputs(d, dropped), { scale: 1.5 }, { seed: d.seed });
          }),
          { numRuns: 8 },
        );
      } finally {
        setMatmulPath(null);
      }
    });
  }

  it('LoRA as trained: W frozen, gradients only for x, A and B', async () => {
    const d = { N: 12, inF: 16, outF: 8, r: 8, seed: 5 };
    await checkOp(LINEAR_LOW_RANK, inputs(d, false), { scale: 2 }, { seed: 5, frozen: [false, true, false, false], dtypes: ['f32', 'f32', 'f32', 'f32'] });
  });

  it('equals x·Wᵀ + s·(x·Aᵀ)·Bᵀ built from matmul, scale and add, forward and every gradient', async () => {
    const rand = rng(9);
    const mk = (s: number[]) => Tensor.fromArray(Float32Array.from(randomF64(s, rand).data), s);
    const [x, W, A, B] = [mk([10, 16]), mk([12, 16]), mk([4, 16]), mk([12, 4])];
    const run = (fused: boolean) => {
      const [vx, vW, vA, vB] = [param(x), constant(W), param(A), param(B)];
      const y = fused ? linearLowRank(vx, vW, vA, vB, 0.5) : add(matmul(vx, vW, { transB: true }), matmul(scale(matmul(vx, vA, { transB: true }), 0.5), vB, { transB: true }));
      backward(sum(y));
      return [y.data, vx.grad!, vA.grad!, vB.grad!];
    };
    const [a, b] = [run(true), run(false)];
    for (let i = 0; i < a.length; i++) {
      const [p, q] = [await a[i]!.toArray(), await b[i]!.toArray()];
      for (let j = 0; j < p.length; j++) expect(Math.abs(p[j]! - q[j]!)).toBeLessThan(1e-4 * (1 + Math.abs(q[j]!)));
    }
  });

  it('accumulates the factors\' gradients into existing .grad tensors in place (no add afterwards)', async () => {
    const rand = rng(3);
    const mk = (s: number[]) => Tensor.fromArray(Float32Array.from(randomF64(s, rand).data), s);
    const [vx, vW, vA, vB] = [constant(mk([6, 8])), constant(mk([4, 8])), param(mk([2, 8])), param(mk([4, 2]))];
    vA.grad = fill([2, 8], 0);
    vB.grad = fill([4, 2], 0);
    const [gA, gB] = [vA.grad, vB.grad];
    backward(sum(linearLowRank(vx, vW, vA, vB, 1)));
    const once = [await gA.toArray(), await gB.toArray()];
    backward(sum(linearLowRank(vx, vW, vA, vB, 1)));
    expect(vA.grad).toBe(gA);
    expect(vB.grad).toBe(gB);
    const twice = [await gA.toArray(), await gB.toArray()];
    for (let i = 0; i < 2; i++) for (let j = 0; j < once[i]!.length; j++) expect(twice[i]![j]!).toBeCloseTo(2 * once[i]![j]!, 4);
  });

  it('rejects factors that do not fit in one line', () => {
    const v = (s: number[]) => constant(Tensor.empty(s));
    expect(() => linearLowRank(v([2, 4]), v([3, 4]), v([2, 5]), v([3, 2]), 1)).toThrow(/linearLowRank: x \[2, 4\], W \[3, 4\], A \[2, 5\]/);
  });
});
