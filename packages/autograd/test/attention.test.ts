// Fused causal attention with grouped KV heads and a padding mask:
//  - gradient properties (finite differences on the float64 twin, GPU vs twin) over random shapes and masks,
//  - the GPU forward against an independent float64 composition (repeat_kv, scores matrix, −∞ mask, softmax, P·V),
//    with and without Mistral's sliding window,
//  - exact zeros where the mask says padding, and only the gradients that are asked for,
// each for both kernel families (4×4 blocks, subgroup tiles: the policy picks one per adapter, the tests force each).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, rt, scope, Tensor, type DType } from '@dawngrad/tensor';
import { ATTENTION, attention, setAttentionKernels, param, constant, backward, noGrad, type F64 } from '../src/index.ts';
import { checkOp, randomF64, rng, expectClose } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

type MaskKind = 'right' | 'left' | 'mixed' | 'none';

/** mask: [B, T] with at least one real token per batch row. */
function makeMask(B: number, T: number, kind: MaskKind, rand: () => number): F64 {
  const data = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    const n = 1 + Math.floor(rand() * T); // real tokens in this row
    for (let t = 0; t < T; t++) {
      if (kind === 'none') data[b * T + t] = 1;
      else if (kind === 'right') data[b * T + t] = t < n ? 1 : 0;
      else if (kind === 'left') data[b * T + t] = t >= T - n ? 1 : 0;
      else data[b * T + t] = rand() < 0.6 ? 1 : 0;
    }
    if (kind === 'mixed') data[b * T + Math.floor(rand() * T)] = 1;
  }
  return { shape: [B, T], data };
}

/** Does some query row have at least two allowed keys (so that dQ and dK are not identically zero)? */
function twoKeysSomewhere(mask: F64, window = Infinity): boolean {
  const [B, T] = mask.shape as [number, number];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      let seen = 0;
      for (let j = Math.max(0, i - window + 1); j <= i; j++) if (mask.data[b * T + j] !== 0) seen++;
      if (seen >= 2) return true;
    }
  }
  return false;
}

const HEADS = [[1, 1], [2, 1], [4, 2]] as const;
const caseArb = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  T: fc.integer({ min: 1, max: 9 }),
  heads: fc.constantFrom(...HEADS),
  D: fc.constantFrom(2, 4, 28),
  kind: fc.constantFrom<MaskKind>('right', 'left', 'mixed', 'none'),
  scaled: fc.boolean(),
  window: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }), // Mistral's sliding window, or none
  seed: fc.integer(),
});

function inputs({ B, T, heads: [H, KV], D, kind, seed }: { B: number; T: number; heads: readonly [number, number]; D: number; kind: MaskKind; seed: number }) {
  const r = rng(seed);
  // a spread of ±2 makes the softmax far from uniform
  return [randomF64([B, T, H, D], r, -2, 2), randomF64([B, T, KV, D], r, -2, 2), randomF64([B, T, KV, D], r, -2, 2), makeMask(B, T, kind, r)];
}

for (const kernels of ['blocked', 'subgroup'] as const) describe(`attention (${kernels} kernels)`, () => {
  beforeAll(() => setAttentionKernels(kernels));
  afterAll(() => setAttentionKernels(null));

  it('gradient of attention (fd on the float64 twin; GPU vs twin)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const xs = inputs(c);
        // When no query row sees two keys (T = 1, or one real token), every softmax is the constant 1 and dQ = dK = 0
        // exactly; the GPU's f32 rounding (~1e-8) cannot meet a tolerance relative to zero, so only dV is compared then.
        const onlyV = { frozen: [true, true, false, true], dtypes: ['f32', 'f32', 'f32', 'i32'] as DType[] };
        // dK (and dQ) = Σ P·(dP − Σ P·dP)·q subtracts near-equal f32 terms of size ~|dO|·|V|·D ≈ 1e2, so when the softmax
        // is nearly saturated the result can be ~1e-3 while its f32 error is ~1e-6: an absolute floor of 1e-5 covers that
        // (a wrong rule is off by the gradient's own size, far above it).
        const attrs = { ...(c.scaled ? { scale: 0.3 } : {}), window: c.window };
        await checkOp(ATTENTION, xs, attrs, { seed: c.seed, gpuAtol: 1e-5, ...(twoKeysSomewhere(xs[3]!, c.window) ? {} : onlyV) });
      }),
      { numRuns: 40 },
    );
  });

  it('gradient at lengths past one subgroup tile (8 queries × 32 keys), with padding and a window', async () => {
    const cases = [
      { B: 2, T: 37, heads: [4, 2] as const, D: 28, kind: 'left' as MaskKind, window: undefined },
      { B: 1, T: 41, heads: [2, 1] as const, D: 8, kind: 'mixed' as MaskKind, window: 19 },
      { B: 1, T: 34, heads: [2, 2] as const, D: 12, kind: 'right' as MaskKind, window: undefined },
    ];
    for (const [n, c] of cases.entries()) {
      const xs = inputs({ ...c, seed: 300 + n });
      await checkOp(ATTENTION, xs, { window: c.window }, { seed: n, gpuAtol: 1e-5, maxFdPoints: 12 });
    }
  });

  // Independent of the twin: HF's eager path written as whole-matrix steps in float64.
  function composed([q, k, v, mask]: F64[], scale: number, window = Infinity): { out: F64; emptyRow: boolean[] } {
    const [B, T, H, D] = q!.shape as [number, number, number, number];
    const KV = k!.shape[2]!;
    const out = ref.zeros([B, T, H, D]);
    const emptyRow: boolean[] = [];
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV)); // repeat_kv
        // scores: [T, T] = scale · Q_h · K_gᵀ, then −∞ where j > i, j ≤ i − W (outside the window) or mask[b, j] = 0
        const scores = ref.zeros([T, T]);
        for (let i = 0; i < T; i++) {
          for (let j = 0; j < T; j++) {
            let s = 0;
            for (let c = 0; c < D; c++) s += q!.data[((b * T + i) * H + h) * D + c]! * k!.data[((b * T + j) * KV + g) * D + c]!;
            scores.data[i * T + j] = j > i || j <= i - window || mask!.data[b * T + j] === 0 ? -Infinity : scale * s;
          }
        }
        const P = ref.softmax(scores); // rows of all −∞ come out NaN: those are the empty rows
        for (let i = 0; i < T; i++) {
          const empty = Number.isNaN(P.data[i * T]!);
          emptyRow[(b * T + i) * H + h] = empty;
          if (empty) continue;
          for (let j = 0; j < T; j++) {
            for (let c = 0; c < D; c++) out.data[((b * T + i) * H + h) * D + c] += P.data[i * T + j]! * v!.data[((b * T + j) * KV + g) * D + c]!;
          }
        }
      }
    }
    return { out, emptyRow };
  }

  it('forward matches a float64 composition (scores, −∞ mask, softmax, P·V); empty rows are zero', async () => {
    const shapes: { B: number; T: number; heads: readonly [number, number]; D: number; kind: MaskKind; window?: number }[] = [
      { B: 2, T: 9, heads: [4, 2], D: 28, kind: 'right' },
      { B: 2, T: 9, heads: [4, 2], D: 28, kind: 'left' },
      { B: 2, T: 7, heads: [2, 1], D: 4, kind: 'mixed' },
      { B: 1, T: 20, heads: [4, 2], D: 56, kind: 'left' },
      { B: 2, T: 17, heads: [3, 3], D: 3, kind: 'right' },
      // the sliding window: inside one 4×4 block, across blocks, of 1 (each query sees only itself), and with holes
      { B: 2, T: 20, heads: [4, 2], D: 28, kind: 'none', window: 3 },
      { B: 2, T: 19, heads: [2, 1], D: 8, kind: 'right', window: 6 },
      { B: 1, T: 9, heads: [2, 2], D: 4, kind: 'none', window: 1 },
      { B: 2, T: 13, heads: [4, 2], D: 28, kind: 'mixed', window: 4 },
      // past one subgroup tile: two key panels of 32, queries in 5-6 tiles of 8
      { B: 2, T: 40, heads: [4, 2], D: 56, kind: 'left' },
      { B: 1, T: 45, heads: [4, 1], D: 16, kind: 'mixed', window: 33 },
    ];
    let empties = 0;
    for (const [n, s] of shapes.entries()) {
      const xs = inputs({ ...s, seed: 100 + n });
      const scale = 1 / Math.sqrt(s.D);
      const want = composed(xs, scale, s.window);
      const y = noGrad(() => attention(constant(ref.toTensor(xs[0]!)), constant(ref.toTensor(xs[1]!)), constant(ref.toTensor(xs[2]!)),
        ref.toTensor(xs[3]!, 'i32'), { window: s.window }));
      const got = await ref.fromTensor(y.data);
      const D = s.D;
      want.emptyRow.forEach((e, r) => {
        if (!e) return;
        empties++;
        for (let c = 0; c < D; c++) expect(Math.abs(got.data[r * D + c]!), `empty row ${r}`).toBe(0);
      });
      expectClose(`composition ${JSON.stringify(s)}`, got, want.out, 2e-5);
    }
    expect(empties, 'the left-padded cases have empty rows').toBeGreaterThan(0);
  });

  it('padding keys get exactly zero dK and dV; only the gradients asked for are made', async () => {
    const B = 2, T = 9, H = 4, KV = 2, D = 28;
    const xs = inputs({ B, T, heads: [H, KV], D, kind: 'mixed', seed: 7 });
    const mask = xs[3]!;
    mask.data[3] = 0; // make sure both batch rows have padding keys
    mask.data[T + 8] = 0;
    const q = param(ref.toTensor(xs[0]!));
    const k = param(ref.toTensor(xs[1]!));
    const v = param(ref.toTensor(xs[2]!));
    const y = attention(q, k, v, ref.toTensor(mask, 'i32'));
    backward(y, { seed: ref.toTensor(randomF64([B, T, H, D], rng(3))) });
    const dk = await ref.fromTensor(k.grad!);
    const dv = await ref.fromTensor(v.grad!);
    let zeros = 0;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < T; j++) {
        if (mask.data[b * T + j] !== 0) continue;
        for (let x = 0; x < KV * D; x++) {
          const at = (b * T + j) * KV * D + x;
          expect(Math.abs(dk.data[at]!), `dK [${b}, ${j}]`).toBe(0);
          expect(Math.abs(dv.data[at]!), `dV [${b}, ${j}]`).toBe(0);
          zeros++;
        }
      }
    }
    expect(zeros).toBeGreaterThan(0);
    // a real key does get a gradient
    expect(dv.data.some((x) => x !== 0)).toBe(true);

    // frozen q and v: only dK is computed, and it equals the full backward's
    const k2 = param(ref.toTensor(xs[1]!));
    const y2 = attention(constant(q.data), k2, constant(v.data), ref.toTensor(mask, 'i32'));
    backward(y2, { seed: ref.toTensor(randomF64([B, T, H, D], rng(3))) });
    expectClose('dK alone', await ref.fromTensor(k2.grad!), dk, 1e-6);
    // and dV alone (a kernel variant without dS)
    const v3 = param(ref.toTensor(xs[2]!));
    const y3 = attention(constant(q.data), constant(k.data), v3, ref.toTensor(mask, 'i32'));
    backward(y3, { seed: ref.toTensor(randomF64([B, T, H, D], rng(3))) });
    expectClose('dV alone', await ref.fromTensor(v3.grad!), dv, 1e-6);
  });

  it('keeps no GPU memory: the saved logsumexp goes with the backward, or at once when no gradient can follow', async () => {
    const B = 2, T = 6, H = 2, KV = 1, D = 4;
    const xs = inputs({ B, T, heads: [H, KV], D, kind: 'right', seed: 11 });
    const [q, k, v] = xs.slice(0, 3).map((x) => param(ref.toTensor(x)));
    const mask = ref.toTensor(xs[3]!, 'i32');
    const g = ref.toTensor(randomF64([B, T, H, D], rng(2)));
    const live = () => rt().pool.stats.bytesLive;
    await rt().sync();
    const base = live();
    scope(() => {
      const y = attention(q!, k!, v!, mask);
      backward(y, { seed: g });
    });
    for (const p of [q!, k!, v!]) p.zeroGrad();
    expect(live(), 'after a scoped forward + backward').toBe(base);
    // nothing requires grad: only the output stays, and disposing it frees everything
    const y = attention(constant(q!.data), constant(k!.data), constant(v!.data), mask);
    y.data.dispose();
    expect(live(), 'after a forward without gradients').toBe(base);
    noGrad(() => attention(q!, k!, v!, mask)).data.dispose();
    expect(live(), 'after a noGrad forward').toBe(base);
  });

  it('rejects mismatched shapes with one clear line', () => {
    const t = (s: number[]) => constant(Tensor.empty(s));
    const m = Tensor.empty([1, 4], 'i32');
    expect(() => attention(t([1, 4, 3, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), m)).toThrow(/multiple of KV heads/);
    expect(() => attention(t([1, 4, 2, 8]), t([1, 4, 1, 4]), t([1, 4, 1, 4]), m)).toThrow(/k must be/);
    expect(() => attention(t([1, 4, 2, 8]), t([1, 4, 1, 8]), t([1, 4, 1, 8]), Tensor.empty([1, 5], 'i32'))).toThrow(/mask must be \[B, T\]/);
    expect(() => attention(t([1, 4, 2, 8]), t([1, 4, 1, 8]), t([1, 4, 1, 8]), Tensor.empty([1, 4]))).toThrow(/mask must be i32/);
    expect(() => attention(t([1, 4, 2, 8]), t([1, 4, 1, 8]), t([1, 4, 1, 8]), m, { window: 0 })).toThrow(/window must be a positive integer/);
  });

  // Timings, not assertions: DAWNGRAD_ATTN_BENCH=1 pnpm exec vitest run packages/autograd/test/attention.test.ts
  it.runIf(process.env.DAWNGRAD_ATTN_BENCH)('timings at the training shapes', async () => {
    for (const [H, KV] of [[4, 2], [16, 8]] as const) {
      const B = 16, T = 80, D = 56;
      const xs = inputs({ B, T, heads: [H, KV], D, kind: 'right', seed: 5 });
      const mask = ref.toTensor(xs[3]!, 'i32');
      const [q, k, v] = [param(ref.toTensor(xs[0]!)), param(ref.toTensor(xs[1]!)), param(ref.toTensor(xs[2]!))];
      const seed = ref.toTensor(randomF64([B, T, H, D], rng(1)));
      const time = async (f: () => void, reps: number) => {
        f();
        await rt().sync(); // warm-up: pipeline compiles
        const ms: number[] = [];
        for (let n = 0; n < reps; n++) {
          const t0 = performance.now();
          f();
          await rt().sync();
          ms.push(performance.now() - t0);
        }
        return Math.min(...ms);
      };
      const fwd = await time(() => noGrad(() => attention(q, k, v, mask)).data.dispose(), 7);
      const both = await time(() => {
        const y = attention(q, k, v, mask);
        backward(y, { seed });
        y.data.dispose();
        for (const p of [q, k, v]) p.zeroGrad();
      }, 7);
      console.log(`attention B${B} T${T} H${H} KV${KV} D${D}: forward ${fwd.toFixed(1)} ms, backward ${(both - fwd).toFixed(1)} ms (min of 7)`);
      expect(fwd).toBeGreaterThan(0);
    }
  });
});
