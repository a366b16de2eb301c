// Gradient properties of the reductions (sum, mean, max over any axes, keepdim or not), and max's tie rule.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, Tensor } from '@dawngrad/tensor';
import { SUM, MEAN, MAX, max, sum, param, backward, type F64, type ReduceAttrs } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const DIMS = [1, 3, 7, 56, 57];
const dim = fc.constantFrom(...DIMS);

// a shape (rank 1..3, at most 4000 elements) and a choice of axes: all (undefined), or a subset written either way
const shapeAndAxes = fc
  .tuple(fc.array(dim, { minLength: 1, maxLength: 3 }), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), fc.boolean(), fc.boolean())
  .filter(([s]) => s.reduce<number>((a, b) => a * b, 1) <= 4000)
  .map(([shape, pick, all, negative]) => {
    const axes = shape.map((_, i) => i).filter((i) => pick[i]).map((a) => (negative ? a - shape.length : a));
    return { shape, axes: all ? undefined : axes };
  });

describe('reductions', () => {
  // one property per op, each a direct checkOp(OP, ...) call (the registry test looks for exactly that)
  const property = (check: (x: F64, attrs: ReduceAttrs, seed: number) => Promise<void>) =>
    fc.assert(
      fc.asyncProperty(shapeAndAxes, fc.boolean(), fc.integer(), ({ shape, axes }, keepdim, seed) =>
        check(randomF64(shape, rng(seed)), { axes, keepdim }, seed),
      ),
      { numRuns: 14 },
    );
  // A sum of up to 4000 values of either sign can cancel to far less than the values summed: its f32 error scales with
  // Σ|x|, not with the result, so the GPU tolerance (relative to the largest result) is 1e-3 instead of 1e-4.
  it('gradient of sum over random axes', () => property((x, a, seed) => checkOp(SUM, [x], a, { seed, gpuTol: 1e-3 })));
  it('gradient of mean over random axes', () => property((x, a, seed) => checkOp(MEAN, [x], a, { seed, gpuTol: 1e-3 })));
  it('gradient of max over random axes', () => property((x, a, seed) => checkOp(MAX, [x], a, { seed })));

  it('max sends the gradient to the first maximal element on ties', async () => {
    // rows with tied maxima: [1, 3, 3] -> index 1; [2, 2, 0] -> index 0; [5, 5, 5] -> index 0
    const x = param(Tensor.fromArray([1, 3, 3, 2, 2, 0, 5, 5, 5], [3, 3]));
    const g = [0.5, -2, 7];
    backward(max(x, 1), { seed: Tensor.fromArray(g, [3]) });
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 0.5, 0, -2, 0, 0, 7, 0, 0]);
    // the CPU twin says the same
    const cx = ref.array([1, 3, 3, 2, 2, 0, 5, 5, 5], [3, 3]);
    const cpu = MAX.cpu.backward(ref.array(g), { inputs: [cx], out: ref.max(cx, 1), attrs: { axes: 1 } });
    expect(Array.from(cpu[0]!.data)).toEqual([0, 0.5, 0, -2, 0, 0, 7, 0, 0]);
    // over two non-adjacent axes, "first" is row-major first within the group
    const y = param(Tensor.fromArray([4, 1, 0, 4, 4, 2, 3, 4], [2, 2, 2]));
    backward(max(y, [0, 2]), { seed: Tensor.fromArray([1, 10], [2]) });
    expect(Array.from(await y.grad!.toArray())).toEqual([1, 0, 0, 10, 0, 0, 0, 0]);
  });

  it('rejects a bad axis with a clear error', () => {
    const x = param(Tensor.fromArray([1, 2, 3, 4], [2, 2]));
    expect(() => sum(x, 2)).toThrow(/axis 2 out of range for rank 2/);
    expect(() => max(x, [0, 0])).toThrow(/repeated axis/);
  });
});
