// gatherRows / take / scatterAddRows vs the float64 reference; scatterAddRows is also checked for determinism and
// for bit-equality with a sequential f32 loop over positions (its documented summation order).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, rt, Tensor, ref, gatherRows, take, scatterAddRows, type DType } from '../src/index.ts';
import { SIZES, shapeArb, uniform, ints, pair, expectClose, expectEqual, RUNS } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

/** ids for a table of V rows: mostly in range, with repeats; `wild` adds out-of-range ids (-1, V, V + 5). */
function makeIds(n: number, V: number, seed: number, wild: boolean): Int32Array {
  const ids = ints(n, seed, 0, Math.max(0, V - 1));
  if (wild) for (let i = 0; i < n; i += 7) ids[i] = [-1, V, V + 5][i % 3]!;
  return ids;
}

describe('gatherRows', () => {
  it('looks up rows of any width and dtype; out-of-range ids give zero rows', async () => {
    const dtypes: DType[] = rt().ctx.hasF16 ? ['f32', 'i32', 'f16'] : ['f32', 'i32'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...SIZES), fc.constantFrom(...SIZES, 2), shapeArb({ maxRank: 2, maxNumel: 2000 }), fc.constantFrom(...dtypes), fc.boolean(), fc.nat(),
        async (V, C, idShape, dtype, wild, seed) => {
          if (V * C > 60_000 || ref.size(idShape) * C > 60_000) return;
          const values = dtype === 'i32' ? ints(V * C, seed, -1e6, 1e6) : uniform(V * C, seed, -10, 10);
          const tr = ref.cast(ref.array(values, [V, C]), dtype); // f16 tables hold f16-rounded values
          const table = ref.toTensor(tr, dtype);
          const [ids, idsR] = pair(makeIds(ref.size(idShape), V, seed + 1, wild), idShape);
          await expectEqual(gatherRows(table, ids), ref.gatherRows(tr, idsR), `gatherRows [${V}, ${C}] ${dtype} ids [${idShape}]`);
          table.dispose();
          ids.dispose();
        }),
      RUNS,
    );
  });

  it('rejects a table that is not 2-D and float ids', () => {
    expect(() => gatherRows(Tensor.empty([4]), Tensor.empty([2], 'i32'))).toThrow('gatherRows: table must be [V, C], got [4]');
    expect(() => gatherRows(Tensor.empty([4, 2]), Tensor.empty([2]))).toThrow('take: indices must be i32 or u32, got f32');
  });
});

describe('take', () => {
  it('picks entries along any axis by an index tensor (numpy.take)', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ maxRank: 3, maxNumel: 20_000 }).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }))),
        shapeArb({ maxRank: 2, maxNumel: 300 }), fc.boolean(), fc.nat(),
        async ([shape, axis], idShape, wild, seed) => {
          const N = shape[axis < 0 ? axis + shape.length : axis]!;
          const [x, xr] = pair(uniform(ref.size(shape), seed), shape);
          const [idx, idxR] = pair(makeIds(ref.size(idShape), N, seed + 1, wild), idShape);
          if (ref.size(shape) / N * ref.size(idShape) > 200_000) return;
          await expectEqual(take(x, idx, axis), ref.take(xr, idxR, axis), `take [${shape}] axis ${axis} idx [${idShape}]`);
          x.dispose();
          idx.dispose();
        }),
      RUNS,
    );
  });

  it('picks answer rows out of [B*T, C] (the training use)', async () => {
    const [h, hr] = pair(uniform(6 * 57, 4), [6, 57]);
    const [pos, posR] = pair(new Int32Array([5, 0, 3]), [3]);
    await expectEqual(take(h, pos), ref.take(hr, posR), 'take rows');
  });
});

describe('scatterAddRows', () => {
  it('sums grad rows into their ids, skipping out-of-range ids', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...SIZES), fc.constantFrom(...SIZES), shapeArb({ maxRank: 2, maxNumel: 1000 }), fc.boolean(), fc.boolean(), fc.nat(),
        async (V, C, idShape, fewIds, wild, seed) => {
          if (V * C > 60_000 || ref.size(idShape) * C > 60_000) return;
          // fewIds: every id drawn from a handful, so long same-id chains occur
          const ids0 = makeIds(ref.size(idShape), fewIds ? Math.min(V, 3) : V, seed, wild);
          const [ids, idsR] = pair(ids0, idShape);
          const [g, gr] = pair(uniform(ref.size(idShape) * C, seed + 1), [...idShape, C]);
          const scale = ref.scatterAddRows(ref.unary('abs', gr), idsR, V);
          await expectClose(scatterAddRows(g, ids, V), ref.scatterAddRows(gr, idsR, V), { rtol: 1e-6, scale }, `scatterAddRows V ${V} C ${C} ids [${idShape}]`);
          g.dispose();
          ids.dispose();
        }),
      RUNS,
    );
  });

  it('is deterministic: equal bit for bit across runs and to an f32 loop over positions in order', async () => {
    const V = 7;
    const N = 1000;
    for (const C of [57, 56]) {
      // C = 56 takes the vec4 path, C = 57 the scalar one
      const idsHost = ints(N, 11, 0, V - 1);
      const gHost = uniform(N * C, 12, -1, 1);
      // the documented order: for each id, grad rows added in increasing position, in f32
      const want = new Float32Array(V * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) want[idsHost[n]! * C + c] = Math.fround(want[idsHost[n]! * C + c]! + gHost[n * C + c]!);
      const ids = Tensor.fromArray(idsHost, [N]);
      const g = Tensor.fromArray(gHost, [N, C]);
      const a = await scatterAddRows(g, ids, V).toArray();
      const b = await scatterAddRows(g, ids, V).toArray();
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      expect(Array.from(a)).toEqual(Array.from(want));
    }
  });

  it('handles empty ids and rejects mismatched shapes', async () => {
    await expectEqual(scatterAddRows(Tensor.empty([0, 3]), Tensor.empty([0], 'i32'), 4), ref.zeros([4, 3]), 'no ids');
    expect(() => scatterAddRows(Tensor.empty([5, 3]), Tensor.empty([4], 'i32'), 4)).toThrow(
      'scatterAddRows: grad [5, 3] must be ids [4] plus a column axis',
    );
  });
});
