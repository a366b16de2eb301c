// matmul vs the float64 reference: every transpose combination, batched and shared-weight (broadcast) batches, odd and
// aligned sizes, accumulate/alpha, every kernel the adapter can run (forced in turn), and the real shapes of a training
// step at a reduced row count.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, rt, ref, Tensor, matmul, matmulPath, setMatmulPath, startProfile, stopProfile, type MatmulPath } from '../src/index.ts';
import { uniform, pair, expectClose } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => {
  setMatmulPath(null);
  dispose();
});

// Tolerance. Each f32 add/fma rounds by at most 2^-24 of the running sum, whose size is about scale = √K·max|a|·max|b|
// for random signs; K roundings of random sign grow like √K. So |got - want| ≤ 2^-21·√K·scale (8× that estimate),
// plus 2^-22 of the output magnitude for the final alpha·acc + C0.
function tolerance(a: Float32Array, b: Float32Array, K: number, alpha: number): number {
  const max = (v: Float32Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const scale = Math.sqrt(K) * max(a) * max(b) * Math.abs(alpha);
  return 2 ** -21 * Math.sqrt(K) * scale + 2 ** -22 * (scale + 1);
}

/** Every kernel the adapter can run (the uniform and subgroup ones need fixed-size subgroups). */
function paths(): MatmulPath[] {
  try {
    setMatmulPath('subgroup');
    matmulPath();
    return ['uniform', 'subgroup', 'tiled'];
  } catch {
    return ['tiled'];
  } finally {
    setMatmulPath(null);
  }
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** batch dims of a and of b ([] = shared across the batch) */
  batchA: number[];
  batchB: number[];
  accumulate: boolean;
  alpha: number;
  path: MatmulPath;
  seed: number;
}

const wantCache = new Map<string, ref.F64>(); // the same case on another kernel reuses its float64 product

async function check(c: Case): Promise<void> {
  const aShape = [...c.batchA, ...(c.transA ? [c.K, c.M] : [c.M, c.K])];
  const bShape = [...c.batchB, ...(c.transB ? [c.N, c.K] : [c.K, c.N])];
  const outShape = [...(c.batchA.length ? c.batchA : c.batchB), c.M, c.N];
  const av = uniform(ref.size(aShape), c.seed, -1, 1);
  const bv = uniform(ref.size(bShape), c.seed + 1, -2, 2);
  const [a, ar] = pair(av, aShape);
  const [b, br] = pair(bv, bShape);
  const [c0, c0r] = pair(uniform(ref.size(outShape), c.seed + 2, -3, 3), outShape);
  const opts = { transA: c.transA, transB: c.transB, alpha: c.alpha };
  setMatmulPath(c.path);
  try {
    const out = matmul(a, b, { ...opts, accumulate: c.accumulate ? c0 : undefined });
    if (c.accumulate) expect(out).toBe(c0); // accumulates in place and returns that tensor
    const key = JSON.stringify({ ...c, path: undefined });
    const want = wantCache.get(key) ?? ref.matmul(ar, br, { ...opts, accumulate: c.accumulate ? c0r : undefined });
    wantCache.set(key, want);
    const what = `${c.path} [${aShape}]${c.transA ? 'ᵀ' : ''}·[${bShape}]${c.transB ? 'ᵀ' : ''} alpha ${c.alpha}${c.accumulate ? ' +C0' : ''}`;
    await expectClose(out, want, { atol: tolerance(av, bv, c.K, c.alpha) }, what);
    out.dispose();
  } finally {
    setMatmulPath(null);
    for (const t of [a, b, c0]) t.dispose();
  }
}

const DIMS = [1, 3, 7, 56, 57, 224, 1000];
const caseArb = (transA: boolean, transB: boolean) =>
  fc
    .record({
      M: fc.constantFrom(...DIMS),
      N: fc.constantFrom(...DIMS),
      K: fc.constantFrom(...DIMS),
      batch: fc.constantFrom<number[]>([], [2], [2, 3]),
      shared: fc.constantFrom('none', 'a', 'b'), // which operand (if any) drops its batch dims
      accumulate: fc.boolean(),
      alpha: fc.constantFrom(1, -0.5, 3),
      path: fc.constantFrom(...paths()),
      seed: fc.nat(),
    })
    // keep products small: the float64 reference is a triple loop
    .filter(({ M, N, K, batch }) => M * N * K * ref.size(batch) <= 400_000 && Math.max(M * K, K * N, M * N) * ref.size(batch) <= 120_000)
    .map(({ batch, shared, ...r }): Case => ({ ...r, transA, transB, batchA: shared === 'a' ? [] : batch, batchB: shared === 'b' ? [] : batch }));

describe('matmul', () => {
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    it(`matches the float64 reference: ${transA ? 'Aᵀ' : 'A'}·${transB ? 'Bᵀ' : 'B'}, batched and shared-weight, every kernel`, async () => {
      await fc.assert(fc.asyncProperty(caseArb(transA, transB), check), { numRuns: 12 });
    });
  }

  it('matches at the shapes of a training step (rows cut to 40) and of LoRA r = 8, on every kernel', async () => {
    const T = 40;
    // [M, N, K, transA, transB]: q/o-proj x·Wᵀ, up/gate, down, their dx = dy·W and dW = dyᵀ·x, lm_head (vocab cut to
    // 1024), LoRA x·Aᵀ and h·Bᵀ with r = 8, and the LoRA gradients dB = dyᵀ·h, dA = dhᵀ·x (the thin kernel's shapes)
    const shapes: [number, number, number, boolean, boolean][] = [
      [T, 224, 224, false, true], [T, 896, 224, false, true], [T, 224, 896, false, true],
      [T, 224, 896, false, false], [896, 224, T, true, false], [224, 896, T, true, false],
      [48, 1024, 224, false, true], [T, 8, 224, false, true], [T, 224, 8, false, true],
      [224, 8, T, true, false], [8, 224, T, true, false],
      // a thin side past one 64 KiB window of K (2,048 rows of 8), and one of 3 and 5 columns
      [T, 8, 2100, false, false], [5, 224, 2100, false, true], [T, 3, 300, true, false],
    ];
    for (const [i, [M, N, K, transA, transB]] of shapes.entries()) {
      for (const path of paths()) await check({ M, N, K, transA, transB, batchA: [], batchB: [], accumulate: false, alpha: 1, path, seed: i });
    }
    wantCache.clear();
  });

  it("the uniform-window kernel adds LoRA's s·h·op(e) in its last K chunk, in either orientation, without another pass", async () => {
    if (!paths().includes('uniform')) return;
    // [M, N, K]: C's rows in the kernel's rows (N wide), C computed transposed (M small), K over two chunks of 512
    for (const [M, N, K] of [[300, 40, 100], [40, 300, 100], [64, 96, 600]] as const) {
      for (const [tE, acc, alpha] of [[false, false, 1], [true, true, -0.5]] as const) {
        const seed = M + N + K + +tE;
        const av = uniform(M * K, seed, -1, 1);
        const bv = uniform(N * K, seed + 1, -1, 1);
        const [a, ar] = pair(av, [M, K]);
        const [b, br] = pair(bv, [N, K]);
        const [c0, c0r] = pair(uniform(M * N, seed + 2, -1, 1), [M, N]);
        const [h, hr] = pair(uniform(M * 8, seed + 3, -1, 1), [M, 8]);
        const [e, er] = pair(uniform(8 * N, seed + 4, -1, 1), tE ? [N, 8] : [8, N]);
        const base = ref.matmul(ar, br, { transB: true, alpha, accumulate: acc ? c0r : undefined });
        const want = ref.matmul(hr, er, { transB: tE, alpha: 0.75, accumulate: base });
        setMatmulPath('uniform');
        startProfile();
        const out = matmul(a, b, { transB: true, alpha, accumulate: acc ? c0 : undefined, lowRank: { h, e, transE: tE, scale: 0.75 } });
        const keys = (await stopProfile()).kernels.map((k) => k.key);
        setMatmulPath(null);
        const what = `[${M}, ${K}]·[${N}, ${K}]ᵀ + 0.75·h·e${tE ? 'ᵀ' : ''}${acc ? ' +C0' : ''}`;
        expect(keys.filter((k) => !k.startsWith('matmul:repack')).join(), what).toMatch(/^matmul:uniform\d+:R4:lr$/);
        await expectClose(out, want, { atol: tolerance(av, bv, K + 8, alpha) }, what);
        for (const t of [a, b, c0, h, e, out]) if (!t.disposed) t.dispose();
      }
    }
  });

  it('handles empty dims: K = 0 gives zeros (or C0 untouched), M = 0 an empty result', async () => {
    for (const path of paths()) {
      setMatmulPath(path);
      const z = matmul(Tensor.fromArray([], [3, 0]), Tensor.fromArray([], [0, 5]));
      expect(Array.from(await z.toArray())).toEqual(new Array(15).fill(0));
      const c0 = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
      matmul(Tensor.fromArray([], [2, 0]), Tensor.fromArray([], [0, 2]), { accumulate: c0, alpha: 5 });
      expect(Array.from(await c0.toArray())).toEqual([1, 2, 3, 4]);
      expect(matmul(Tensor.fromArray([], [0, 4]), Tensor.fromArray(new Float32Array(8), [4, 2])).shape).toEqual([0, 2]);
      setMatmulPath(null);
    }
  });

  it('reads transposed operands in place: as many dispatches as the plain layout (one, but for the uniform windows)', async () => {
    const at = Tensor.fromArray(uniform(56 * 224, 7), [224, 56]);
    const bt = Tensor.fromArray(uniform(224 * 32, 8), [32, 224]);
    const a = Tensor.fromArray(uniform(56 * 224, 7), [56, 224]);
    const b = Tensor.fromArray(uniform(224 * 32, 8), [224, 32]);
    for (const path of paths()) {
      setMatmulPath(path);
      const count = (f: () => Tensor) => {
        const before = rt().stats.dispatches;
        f().dispose();
        return rt().stats.dispatches - before;
      };
      const plain = count(() => matmul(a, b));
      expect(count(() => matmul(at, bt, { transA: true, transB: true })), path).toBe(plain);
      if (path !== 'uniform') expect(plain, path).toBe(1);
      setMatmulPath(null);
    }
    await rt().sync();
    for (const t of [a, b, at, bt]) t.dispose();
  });

  it('picks the uniform-window kernel on a CPU adapter with fixed-size subgroups, the tiled one otherwise', () => {
    const info = rt().ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    const fixed = rt().device.features.has('subgroups') && !!info.subgroupMinSize && info.subgroupMinSize === info.subgroupMaxSize;
    expect(matmulPath()).toBe(rt().ctx.info.isSoftware && fixed ? 'uniform' : 'tiled');
  });

  it('rejects bad shapes with one clear line', () => {
    const t = (shape: number[]) => Tensor.empty(shape);
    expect(() => matmul(t([2, 3]), t([4, 5]))).toThrow(/matmul: inner dims differ: \[2, 3\] · \[4, 5\]/);
    expect(() => matmul(t([2, 3]), t([5, 3]), { transB: false })).toThrow(/inner dims differ/);
    expect(() => matmul(t([2, 4, 3]), t([3, 3, 5]))).toThrow(/matmul: batch dims differ: \[2\] vs \[3\]/);
    expect(() => matmul(t([3]), t([3, 5]))).toThrow(/operands need rank ≥ 2/);
    expect(() => matmul(t([2, 3]), t([3, 5]), { accumulate: t([5, 2]) })).toThrow(/accumulate is \[5, 2\] f32, the product is \[2, 5\] f32/);
    expect(() => matmul(Tensor.empty([2, 3], 'i32'), t([3, 5]))).toThrow(/needs f32 operands/);
    expect(() => ref.matmul(ref.empty([2, 3]), ref.empty([4, 5]))).toThrow(/ref.matmul: inner dims differ/);
  });
});
