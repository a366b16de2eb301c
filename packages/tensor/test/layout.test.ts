// slice / concat / permute / transpose / broadcastTo / copy vs the float64 reference: copies must be exact.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, rt, Tensor, ref, slice, concat, permute, transpose, broadcastTo, copy, startProfile, stopProfile, type DType } from '../src/index.ts';
import { SIZES, shapeArb, broadcastPairArb, uniform, expectEqual, RUNS } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

/** A tensor of `dtype` with distinct-ish values, and its reference (rounded to the dtype). */
function make(shape: number[], dtype: DType, seed: number): [Tensor, ref.F64] {
  const r = ref.cast(ref.array(uniform(ref.size(shape), seed, -1000, 1000), shape), dtype);
  return [ref.toTensor(r, dtype), r];
}

const dtypeArb = () => fc.constantFrom<DType>(...((rt().ctx.hasF16 ? ['f32', 'i32', 'f16'] : ['f32', 'i32']) as DType[]));

describe('slice', () => {
  it('copies any box, with negative and partial bounds (contiguous boxes take the buffer-copy path)', async () => {
    const boundsArb = shapeArb({ maxRank: 4 }).chain((shape) =>
      fc.tuple(
        fc.constant(shape),
        fc.tuple(...shape.map((d) => fc.tuple(fc.integer({ min: 0, max: d }), fc.integer({ min: 0, max: d }), fc.boolean()))),
        fc.integer({ min: 0, max: shape.length }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(boundsArb, dtypeArb(), fc.nat(), async ([shape, bounds, given], dtype, seed) => {
        // bounds as (lo, hi) sorted; `neg` writes them from the end; only the first `given` axes get bounds
        const lo = bounds.map(([a, b]) => Math.min(a, b));
        const hi = bounds.map(([a, b]) => Math.max(a, b));
        const fromEnd = (v: number, i: number) => (bounds[i]![2] && v > 0 && v < shape[i]! ? v - shape[i]! : v);
        const starts = lo.slice(0, given).map(fromEnd);
        const ends = hi.slice(0, given).map(fromEnd);
        const [x, xr] = make(shape, dtype, seed);
        await expectEqual(slice(x, starts, ends), ref.slice(xr, starts, ends), `slice [${shape}] ${dtype} [${starts}]..[${ends}]`);
        x.dispose();
      }),
      RUNS,
    );
  });

  it('rejects bounds outside the axis', () => {
    const x = Tensor.empty([4, 5]);
    expect(() => slice(x, [0, 3], [4, 6])).toThrow('slice: bounds [3, 6) out of range on axis 1 of size 5');
    expect(() => slice(x, [0, 0, 0], [1, 1, 1])).toThrow('slice: more bounds than the 2 axes of [4, 5]');
  });
});

describe('concat', () => {
  it('joins pieces of any size (including empty) along any axis', async () => {
    const caseArb = shapeArb({ maxRank: 3, maxNumel: 15_000 }).chain((shape) =>
      fc.tuple(fc.constant(shape), fc.nat({ max: shape.length - 1 }), fc.array(fc.constantFrom(0, ...SIZES), { minLength: 1, maxLength: 4 })),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, dtypeArb(), fc.nat(), async ([shape, axis, sizes], dtype, seed) => {
        const pieces = sizes.map((n, k) => make(shape.map((d, i) => (i === axis ? n : d)), dtype, seed + k));
        if (pieces.reduce((a, [t]) => a + t.size, 0) > 60_000) return;
        const got = concat(pieces.map(([t]) => t), axis - shape.length);
        await expectEqual(got, ref.concat(pieces.map(([, r]) => r), axis), `concat [${shape}] axis ${axis} sizes [${sizes}] ${dtype}`);
        for (const [t] of pieces) t.dispose();
      }),
      RUNS,
    );
  });

  it('moves rows of whole aligned vec4s 4 values at a time, and everything else one at a time', async () => {
    const cases: { what: string; run: () => [Tensor, ref.F64]; kernel: string }[] = [];
    const [a, ar] = make([3, 5, 8], 'f32', 1);
    const [b, br] = make([3, 2, 8], 'f32', 2);
    const [c, cr] = make([3, 3, 6], 'i32', 3);
    const [d, dr] = make([3, 1, 6], 'i32', 4);
    const [e, er] = make([1, 12], 'f32', 5);
    cases.push({ what: 'concat of rows of 40 and 16', run: () => [concat([a, b], 1), ref.concat([ar, br], 1)], kernel: 'stridedCopy:vec4:r2' });
    cases.push({ what: 'slice at column 4 of 8', run: () => [slice(a, [0, 0, 4], [3, 5, 8]), ref.slice(ar, [0, 0, 4], [3, 5, 8])], kernel: 'stridedCopy:vec4:r2' });
    cases.push({ what: 'broadcast of one row', run: () => [broadcastTo(e, [5, 12]), ref.broadcastTo(er, [5, 12])], kernel: 'stridedCopy:vec4:r2' });
    cases.push({ what: 'concat of rows of 18 and 6', run: () => [concat([c, d], 1), ref.concat([cr, dr], 1)], kernel: 'stridedCopy:u32:r2' });
    cases.push({ what: 'slice at column 2', run: () => [slice(a, [0, 0, 2], [3, 5, 6]), ref.slice(ar, [0, 0, 2], [3, 5, 6])], kernel: 'stridedCopy:u32:r2' });
    for (const { what, run, kernel } of cases) {
      startProfile();
      const [got, want] = run();
      const keys = (await stopProfile()).kernels.map((k) => k.key);
      expect(keys, what).toEqual([kernel]);
      await expectEqual(got, want, what);
    }
  });

  it('rejects mismatched pieces', () => {
    expect(() => concat([Tensor.empty([2, 3]), Tensor.empty([2, 4])], 0)).toThrow('concat: [2, 4] does not match [2, 3] off axis 0');
    expect(() => concat([], 0)).toThrow('concat: needs at least one tensor');
  });
});

describe('permute and transpose', () => {
  it('permute reorders axes like the reference', async () => {
    const caseArb = shapeArb({ maxRank: 4 }).chain((shape) => fc.tuple(fc.constant(shape), fc.shuffledSubarray([...shape.keys()], { minLength: shape.length })));
    await fc.assert(
      fc.asyncProperty(caseArb, dtypeArb(), fc.nat(), async ([shape, dims], dtype, seed) => {
        const [x, xr] = make(shape, dtype, seed);
        await expectEqual(permute(x, dims), ref.permute(xr, dims), `permute [${shape}] by [${dims}] ${dtype}`);
        x.dispose();
      }),
      RUNS,
    );
  });

  it('transpose swaps two axes (negative axes allowed)', async () => {
    const [x, xr] = make([3, 57, 7], 'f32', 5);
    await expectEqual(transpose(x, -1, 0), ref.transpose(xr, 2, 0));
    await expectEqual(transpose(x, 1, 2), ref.permute(xr, [0, 2, 1]));
    expect(() => permute(x, [0, 0, 1])).toThrow('permute: [0, 0, 1] is not a permutation of 3 axes');
  });
});

describe('broadcastTo and copy', () => {
  it('broadcastTo materialises a broadcast', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPairArb({ maxRank: 4 }), fc.nat(), async ([a, b], seed) => {
        const [small, full] = ref.size(a) <= ref.size(b) ? [a, ref.broadcastShape(a, b)] : [b, ref.broadcastShape(a, b)];
        const [x, xr] = make(small, 'f32', seed);
        await expectEqual(broadcastTo(x, full), ref.broadcastTo(xr, full), `broadcastTo [${small}] -> [${full}]`);
        x.dispose();
      }),
      RUNS,
    );
    expect(() => broadcastTo(Tensor.empty([3]), [2, 4])).toThrow('broadcastTo: [3] does not broadcast to [2, 4]');
  });

  it('copies and slices packed views (each at its offset in one buffer), by buffer copy and by kernel', async () => {
    const { views, whole } = Tensor.packed([[3, 8], [2, 8]]);
    const [a, b] = views as [Tensor, Tensor];
    b.write(Float32Array.from({ length: 16 }, (_, i) => i + 1));
    expect(Array.from(await copy(b).toArray())).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(Array.from(await slice(b, [1], [2]).toArray())).toEqual(Array.from({ length: 8 }, (_, i) => i + 9));
    expect(Array.from(await slice(b, [0, 2], [2, 3]).toArray())).toEqual([3, 11]);
    expect(Array.from(await copy(a).toArray())).toEqual(new Array(24).fill(0));
    for (const t of [a, b, whole]) t.dispose();
  });

  it('copy is a new tensor with the same contents', async () => {
    const [x, xr] = make([57, 3], 'i32', 8);
    const y = copy(x);
    x.dispose();
    await expectEqual(y, xr);
  });
});
