// Mixed precision: matmul of f32 rows by an f16 weight is f16(A)·B summed in f32 — against the float64 product of the
// f16-rounded operands, on this adapter's kernel family and on the GPU family forced onto it (the SIMT f16 gemm, with
// the low-rank epilogue and split-K). The subgroup-matrix (tensor-core) kernel needs an adapter with subgroup matrices
// and is checked on such a GPU by tuneMatmul against the SIMT kernel; CPU adapters offer none.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, ref, matmul, setMatmulPath, GEMM_TILES, Tensor, type GemmChoice } from '../src/index.ts';
import { toF16Bits, roundF16 } from '../src/cpu/half.ts';
import { uniform } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => {
  setMatmulPath(null);
  dispose();
});

interface Case { M: number; N: number; K: number; tA: boolean; tB: boolean; tile?: GemmChoice; splits?: number; lowRank?: boolean; batch?: number }

async function check(path: 'tiled' | null, c: Case): Promise<void> {
  setMatmulPath(path);
  const nb = c.batch ?? 1;
  const av = uniform(nb * c.M * c.K, c.M + c.K, -1, 1);
  const bv = uniform(c.K * c.N, c.N + 7, -1, 1);
  const aShape = [...(nb > 1 ? [nb] : []), ...(c.tA ? [c.K, c.M] : [c.M, c.K])];
  const a = Tensor.fromArray(av, aShape);
  const b = Tensor.fromArray(toF16Bits(bv), c.tB ? [c.N, c.K] : [c.K, c.N], 'f16');
  let want = ref.matmul(ref.array(Array.from(av, roundF16), aShape), ref.array(Array.from(bv, roundF16), b.shape), { transA: c.tA, transB: c.tB, alpha: 0.5 });
  const extra: Tensor[] = [];
  let lowRank;
  if (c.lowRank) {
    const [hv, ev] = [uniform(c.M * 4, 3), uniform(4 * c.N, 4)];
    lowRank = { h: Tensor.fromArray(hv, [c.M, 4]), e: Tensor.fromArray(ev, [4, c.N]), scale: 2 };
    want = ref.matmul(ref.array(hv, [c.M, 4]), ref.array(ev, [4, c.N]), { alpha: 2, accumulate: want });
    extra.push(lowRank.h, lowRank.e);
  }
  const out = matmul(a, b, { transA: c.tA, transB: c.tB, alpha: 0.5, tile: c.tile, splits: c.splits, lowRank });
  expect(out.dtype).toBe('f32');
  const got = await out.toArray();
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want.data[i]!));
  // f32 sums of K exact f16·f16 products: rounding only, ~2^-24·K
  expect(worst, `${path ?? 'default'} ${JSON.stringify(c)}`).toBeLessThan(1e-6 * c.K + 1e-6);
  for (const t of [a, b, out, ...extra]) t.dispose();
  setMatmulPath(null);
}

describe('matmul with an f16 weight (mixed precision)', () => {
  it("this adapter's kernels: x·Wᵀ, g·W, Hᵀ·W, a batch of rows", async () => {
    await check(null, { M: 37, N: 56, K: 64, tA: false, tB: true });
    await check(null, { M: 37, N: 56, K: 64, tA: false, tB: false });
    await check(null, { M: 24, N: 56, K: 40, tA: true, tB: false });
    await check(null, { M: 5, N: 12, K: 16, tA: false, tB: true, batch: 3 });
  });

  it('a batch of rows into a recycled buffer: the product replaces what the pool buffer held', async () => {
    // a buffer of the output's size, filled and returned to the pool: the next [3, 5, 12] f32 result may get it
    const stale = Tensor.fromArray(new Float32Array(3 * 5 * 12).fill(1e3), [3, 5, 12]);
    stale.dispose();
    await check(null, { M: 5, N: 12, K: 16, tA: false, tB: true, batch: 3 });
    await check('tiled', { M: 5, N: 12, K: 16, tA: false, tB: true, batch: 3 });
  });

  it('the SIMT gemm of the GPU family, with the low-rank epilogue and split-K', async () => {
    await check('tiled', { M: 37, N: 56, K: 64, tA: false, tB: true, tile: GEMM_TILES['64x64'] });
    await check('tiled', { M: 37, N: 56, K: 64, tA: false, tB: false, tile: GEMM_TILES['64x64'], lowRank: true });
    await check('tiled', { M: 24, N: 20, K: 300, tA: false, tB: true, tile: GEMM_TILES['64x64'], splits: 3 });
  });

  it('refuses an f16 A or a batched f16 weight in one line', () => {
    const h = Tensor.fromArray(toF16Bits([1, 2, 3, 4]), [2, 2], 'f16');
    const f = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
    expect(() => matmul(h, f)).toThrow(/needs f32 operands \(or an f16 B\)/);
    expect(() => matmul(f, h.reshape([1, 2, 2]))).toThrow(/an f16 operand must be a 2-D weight/);
  });
});
