// The GPU matmul family (matmul-gpu.ts) forced onto this adapter: every gemm tile and layout, split-K, the low-rank
// epilogue and the thin rank-r kernels, each against the float64 twin at small, odd and aligned shapes.
import { describe, it, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, matmul, setMatmulPath, GEMM_TILES, type GemmTile } from '../src/index.ts';
import { uniform, pair, expectClose } from './helpers.ts';

beforeAll(async () => {
  await init();
  setMatmulPath('tiled');
});
afterAll(() => {
  setMatmulPath(null);
  dispose();
});

// |got − want| ≤ 2^-20·K·max|a|·max|b|·|alpha|: f32 rounding of K products (generous: sums here are short)
const tol = (a: Float32Array, b: Float32Array, K: number, alpha = 1) =>
  2 ** -20 * Math.max(K, 1) * Math.abs(alpha) * a.reduce((m, x) => Math.max(m, Math.abs(x)), 0) * b.reduce((m, x) => Math.max(m, Math.abs(x)), 0) + 1e-6;

interface Case {
  M: number; N: number; K: number; tA: boolean; tB: boolean; batch: number; acc: boolean; alpha: number;
  tile?: GemmTile; splits?: number; lowRank?: { r: number; tE: boolean };
  seed: number;
}

async function check(c: Case): Promise<void> {
  const bt = c.batch > 1 ? [c.batch] : [];
  const aShape = [...bt, ...(c.tA ? [c.K, c.M] : [c.M, c.K])];
  const bShape = c.tB ? [c.N, c.K] : [c.K, c.N]; // a shared weight when batched
  const outShape = [...bt, c.M, c.N];
  const av = uniform(ref.size(aShape), c.seed, -1, 1);
  const bv = uniform(ref.size(bShape), c.seed + 1, -1, 1);
  const [a, ar] = pair(av, aShape);
  const [b, br] = pair(bv, bShape);
  const [c0, c0r] = pair(uniform(ref.size(outShape), c.seed + 2, -1, 1), outShape);
  const opts = { transA: c.tA, transB: c.tB, alpha: c.alpha };
  let want = ref.matmul(ar, br, { ...opts, accumulate: c.acc ? c0r : undefined });
  let lowRank;
  const extra = [];
  if (c.lowRank) {
    const { r, tE } = c.lowRank;
    const [h, hr] = pair(uniform(c.M * r, c.seed + 3, -1, 1), [c.M, r]);
    const [e, er] = pair(uniform(r * c.N, c.seed + 4, -1, 1), tE ? [c.N, r] : [r, c.N]);
    lowRank = { h, e, transE: tE, scale: 0.75 };
    want = ref.matmul(hr, er, { transB: tE, alpha: 0.75, accumulate: want });
    extra.push(h, e);
  }
  const out = matmul(a, b, { ...opts, accumulate: c.acc ? c0 : undefined, tile: c.tile, splits: c.splits, lowRank });
  const what = `[${aShape}]${c.tA ? 'ᵀ' : ''}·[${bShape}]${c.tB ? 'ᵀ' : ''} tile ${JSON.stringify(c.tile)} splits ${c.splits} lowRank ${JSON.stringify(c.lowRank)}`;
  await expectClose(out, want, { atol: tol(av, bv, c.K + (c.lowRank?.r ?? 0), c.alpha) + (c.acc ? 1e-6 : 0) }, what);
  for (const t of [a, b, c0, out, ...extra]) if (!t.disposed) t.dispose();
}

const DIMS = [1, 3, 8, 13, 56, 130];
const flags = fc.record({ tA: fc.boolean(), tB: fc.boolean(), acc: fc.boolean(), alpha: fc.constantFrom(1, -0.5), seed: fc.nat() });

describe('GPU matmul kernels (forced onto this adapter)', () => {
  for (const [name, tile] of Object.entries(GEMM_TILES)) {
    it(`gemm tile ${name}: every layout, odd and aligned dims, batched with a shared weight`, async () => {
      const arb = fc.record({ M: fc.constantFrom(...DIMS), N: fc.constantFrom(...DIMS), K: fc.constantFrom(...DIMS), batch: fc.constantFrom(1, 2), f: flags });
      await fc.assert(fc.asyncProperty(arb, ({ f, ...d }) => check({ ...d, ...f, tile })), { numRuns: 6 });
    });
  }

  it('split-K: K slices summed by the reduce pass, alpha and accumulate applied once', async () => {
    const arb = fc.record({ M: fc.constantFrom(3, 56), N: fc.constantFrom(8, 57), K: fc.constantFrom(130, 300), splits: fc.constantFrom(2, 3, 7), f: flags });
    await fc.assert(fc.asyncProperty(arb, ({ f, ...d }) => check({ ...d, ...f, tA: false, batch: 1, tile: GEMM_TILES['64x64'] })), { numRuns: 6 });
  });

  it('the low-rank epilogue: C += s·H·E and s·H·Eᵀ in the same pass', async () => {
    const arb = fc.record({ M: fc.constantFrom(5, 56), N: fc.constantFrom(13, 64), K: fc.constantFrom(8, 57), r: fc.constantFrom(1, 8), tE: fc.boolean(), f: flags });
    await fc.assert(fc.asyncProperty(arb, ({ f, r, tE, ...d }) => check({ ...d, ...f, batch: 1, tile: GEMM_TILES['64x64'], lowRank: { r, tE } })), { numRuns: 8 });
  });

  it("the thin kernels at LoRA's shapes: x·Aᵀ, g·B (N = r), Hᵀ·x (M = r), gᵀ·h (N = r, transposed A)", async () => {
    const rows = 37;
    for (const r of [3, 8]) {
      for (const [M, N, K, tA, tB] of [
        [rows, r, 224, false, true], [rows, r, 96, false, false], // thinN
        [r, 224, rows, true, false], // thinM
        [224, r, rows, true, false], // thinM, transposed output
      ] as [number, number, number, boolean, boolean][]) {
        await check({ M, N, K, tA, tB, batch: 1, acc: r % 8 === 0, alpha: 0.5, seed: M + N + K });
      }
    }
  });
});
