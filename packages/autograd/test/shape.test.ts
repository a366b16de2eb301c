// Gradient properties of the shape ops: reshape (a view), permute/transpose, slice, concat, expand, and take (row gather).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { RESHAPE, PERMUTE, SLICE, CONCAT, EXPAND, TAKE, param, constant, transpose, take, backward, reshape, slice, expand } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const DIMS = [1, 3, 7, 56, 57];
const dim = fc.constantFrom(...DIMS);
const smallShape = (maxRank = 3) =>
  fc.array(dim, { minLength: 1, maxLength: maxRank }).filter((s) => s.reduce<number>((a, b) => a * b, 1) <= 4000);

describe('shape ops', () => {
  it('gradient of reshape (to a random refactoring, sometimes with -1)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer(), fc.boolean(), async (shape, seed, hole) => {
        // regroup the same elements: split the flat size into its own factors in another order
        const n = shape.reduce<number>((a, b) => a * b, 1);
        const to = [...shape].reverse();
        if (to.length > 1) to.splice(0, 2, to[0]! * to[1]!);
        if (hole) to[0] = -1;
        if (to.length === 0) to.push(n);
        await checkOp(RESHAPE, [randomF64(shape, rng(seed))], { shape: to }, { seed });
      }),
      { numRuns: 10 },
    );
  });

  it('gradient of permute (random permutations, negative axes)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer(), async (shape, seed) => {
        const r = rng(seed);
        const dims = shape.map((_, i) => i).sort(() => r() - 0.5).map((d) => (r() < 0.3 ? d - shape.length : d));
        await checkOp(PERMUTE, [randomF64(shape, r)], { dims }, { seed });
      }),
      { numRuns: 10 },
    );
  });

  it('gradient of slice (random bounds, some negative, some axes left whole)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer(), async (shape, seed) => {
        const r = rng(seed);
        const axes = 1 + Math.floor(r() * shape.length); // bounds for the leading axes only; the rest whole
        const starts: number[] = [];
        const ends: number[] = [];
        for (let i = 0; i < axes; i++) {
          const d = shape[i]!;
          const lo = Math.floor(r() * d);
          const hi = lo + 1 + Math.floor(r() * (d - lo));
          starts.push(r() < 0.3 ? lo - d : lo);
          ends.push(r() < 0.3 && hi < d ? hi - d : hi);
        }
        await checkOp(SLICE, [randomF64(shape, r)], { starts, ends }, { seed });
      }),
      { numRuns: 12 },
    );
  });

  it('gradient of concat (2 or 3 inputs along a random axis)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer(), fc.integer({ min: 2, max: 3 }), async (shape, seed, k) => {
        const r = rng(seed);
        const axis = Math.floor(r() * shape.length);
        const inputs = Array.from({ length: k }, () => {
          const s = [...shape];
          s[axis] = DIMS[Math.floor(r() * 3)]!; // 1, 3 or 7 along the axis
          return randomF64(s, r);
        });
        await checkOp(CONCAT, inputs, { axis: r() < 0.5 ? axis : axis - shape.length }, { seed });
      }),
      { numRuns: 10 },
    );
  });

  it('gradient of expand (random axes broadcast from 1, sometimes new leading axes)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer(), async (shape, seed) => {
        const r = rng(seed);
        // x keeps a random suffix of the target's axes, some of them squeezed to 1
        const lead = Math.floor(r() * shape.length);
        const from = shape.slice(lead).map((d) => (r() < 0.5 ? 1 : d));
        await checkOp(EXPAND, [randomF64(from, r)], { shape }, { seed });
      }),
      { numRuns: 12 },
    );
  });

  it('expand copies a prefix row to every batch row and sums their gradients back; a bad shape is refused', async () => {
    // x: [1, 2] -> [3, 2]; the seed's three rows add up in dx
    const x = param(Tensor.fromArray([1, 2], [1, 2]));
    const y = expand(x, [3, 2]);
    expect(Array.from(await y.data.toArray())).toEqual([1, 2, 1, 2, 1, 2]);
    backward(y, { seed: Tensor.fromArray([1, 2, 3, 4, 5, 6], [3, 2]) });
    expect(Array.from(await x.grad!.toArray())).toEqual([1 + 3 + 5, 2 + 4 + 6]);
    expect(() => expand(x, [3, 3])).toThrow(/broadcastTo: \[1, 2\] does not broadcast to \[3, 3\]/);
  });

  it('gradient of take (repeated and out-of-range indices)', async () => {
    await fc.assert(
      fc.asyncProperty(smallShape(), fc.integer({ min: 1, max: 20 }), fc.integer(), async (shape, M, seed) => {
        const r = rng(seed);
        const N = shape[0]!;
        // mostly in range (N·1.1 lets a few fall past the end, which must read zeros and get no gradient)
        const idx = { shape: [M], data: Float64Array.from({ length: M }, () => Math.floor(r() * N * 1.1)) };
        if (M > 2) idx.data[1] = idx.data[0]!; // at least one repeat, whose gradients must add
        await checkOp(TAKE, [randomF64(shape, r), idx], null, { seed });
      }),
      { numRuns: 12 },
    );
  });

  it('take picks the answer rows out of [B*T, C] and accumulates repeated rows', async () => {
    // x: [4, 2]; rows 3, 1, 3 -> the two row-3 gradients add
    const x = param(Tensor.fromArray([0, 1, 2, 3, 4, 5, 6, 7], [4, 2]));
    const idx = constant(Tensor.fromArray(new Int32Array([3, 1, 3])));
    const y = take(x, idx);
    expect(Array.from(await y.data.toArray())).toEqual([6, 7, 2, 3, 6, 7]);
    backward(y, { seed: Tensor.fromArray([1, 2, 3, 4, 5, 6], [3, 2]) });
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 0, 3, 4, 0, 0, 1 + 5, 2 + 6]);
  });

  it('transpose swaps two axes; reshape is a view (no copy) and slice validates its bounds', async () => {
    const x = param(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
    const t = transpose(x);
    expect(t.shape).toEqual([3, 2]);
    expect(Array.from(await t.data.toArray())).toEqual([1, 4, 2, 5, 3, 6]);
    const v = reshape(x, [3, -1]);
    expect(v.data.buffer).toBe(x.data.buffer);
    expect(() => reshape(x, [4, 2])).toThrow(/reshape: \[2, 3\] cannot become \[4, 2\]/);
    expect(() => slice(x, [0, 2], [2, 5])).toThrow(/slice: bounds \[2, 5\) out of range on axis 1/);
  });
});
