// Measure, don't guess: time every gemm tile (and split-K depth) on this adapter for the shapes a model will run, keep
// the fastest per shape class (policy.ts reads it), and check on the way that every candidate computes the same product
// as the others — a kernel the driver miscompiles is dropped, not chosen.
//
// The table is plain JSON (tunedTable / loadTuned), so a caller with a file system can keep it per adapter and skip the
// measuring next time. On a CPU adapter there is nothing to tune: its matmul family has no tiles.
import { rt } from './runtime.ts';
import { Tensor } from './tensor.ts';
import { matmul, matmulPath } from './kernels/matmul.ts';
import { GEMM_TILES, kernelPolicy, setTunedTile, shapeClass, tensorCoreLayout, type GemmChoice } from './policy.ts';
import { tcTileShape, type TcTile } from './kernels/matmul-tc.ts';
import { gemmThreads } from './kernels/matmul-gpu.ts';
import * as ref from './cpu/index.ts';
import { mulberry32 } from './random.ts';

export interface TuneShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** B is an f16 weight (mixed precision): subgroup-matrix tilings compete too, where the adapter has them */
  f16B?: boolean;
}

export interface TuneResult {
  shapeClass: string;
  best: string;
  /** median ms per product of each candidate; NaN: it failed to compile or disagreed with the others */
  ms: Record<string, number>;
}

/** Subgroup-matrix tilings (subgroups × fragments per subgroup, along M and N) tried for f16 weights. */
const TC_TILINGS: [number, number, number, number][] = [
  [2, 2, 2, 2],
  [2, 4, 2, 2],
  [4, 2, 2, 2],
  [2, 2, 4, 2],
  [2, 2, 2, 4],
  [4, 4, 1, 1],
  [2, 2, 1, 1],
];

/** The candidates: every tile, split-K depths of the 64×64 tile where the grid is small, and for f16 weights the
 * subgroup-matrix tilings that fit the adapter. */
function candidates(s: TuneShape): Record<string, GemmChoice> {
  const out: Record<string, GemmChoice> = {};
  const maxThreads = rt().ctx.limits.maxComputeInvocationsPerWorkgroup;
  const maxShared = rt().ctx.limits.maxComputeWorkgroupStorageSize;
  const pol = kernelPolicy();
  if (s.f16B && pol.tensorCores && tensorCoreLayout(s.M, s.N, s.K, !!s.transA, !!s.transB)) {
    const f = pol.tensorCores;
    for (const BK of [f.K * 2, f.K * 4]) {
      for (const [SGM, SGN, FM, FN] of TC_TILINGS) {
        const t: TcTile = { SM: f.M, SN: f.N, SK: f.K, SGM, SGN, FM, FN, BK };
        const { BM, BN, threads } = tcTileShape(t);
        if (threads(pol.maxSubgroupSize) > maxThreads || 4 * BM * BN + 2 * BK * (BM + BN) > maxShared) continue;
        out[`tc${BM}x${BN}k${BK}/${SGM}x${SGN}`] = t;
      }
    }
  }
  for (const [name, t] of Object.entries(GEMM_TILES)) {
    if (gemmThreads(t) > maxThreads || 4 * t.BK * (t.BM + t.BN) > maxShared) continue;
    out[name] = { ...t, splits: 1 };
  }
  const grid64 = Math.ceil(s.M / 64) * Math.ceil(s.N / 64);
  if (grid64 * 2 <= kernelPolicy().targetWorkgroups && s.K >= 512) {
    for (const splits of [2, 4, 8, 16]) if (s.K / splits >= 64) out[`64x64/split${splits}`] = { ...GEMM_TILES['64x64']!, splits };
  }
  return out;
}

/** Time the candidates for each shape (deduplicated by shape class) and record the fastest. */
export async function tuneMatmul(shapes: TuneShape[], opts: { reps?: number; log?: (line: string) => void } = {}): Promise<TuneResult[]> {
  if (matmulPath() !== 'tiled') return [];
  const seen = new Set<string>();
  const results: TuneResult[] = [];
  for (const s of shapes) {
    const cls = shapeClass(s.M, s.N, s.K, 1, !!s.transA, !!s.transB, !!s.f16B);
    if (seen.has(cls)) continue;
    seen.add(cls);
    results.push(await tuneOne(s, cls, opts.reps));
    opts.log?.(`tune ${cls}: ${results[results.length - 1]!.best}`);
  }
  return results;
}

async function tuneOne(s: TuneShape, cls: string, reps?: number): Promise<TuneResult> {
  const rand = mulberry32(s.M * 31 + s.N * 7 + s.K);
  const random = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
  const a = Tensor.fromArray(random(s.M * s.K), s.transA ? [s.K, s.M] : [s.M, s.K]);
  const bShape = s.transB ? [s.N, s.K] : [s.K, s.N];
  const b = s.f16B ? Tensor.fromArray(ref.toF16Bits(random(s.K * s.N)), bShape, 'f16') : Tensor.fromArray(random(s.K * s.N), bShape);
  const ms: Record<string, number> = {};
  // the reference: the SIMT 64×64 tile, the one the CPU-adapter tests check against the float64 twin
  const first = matmul(a, b, { transA: s.transA, transB: s.transB, tile: GEMM_TILES['64x64']!, splits: 1 });
  const reference = (await first.toArray()) as Float32Array;
  first.dispose();
  // enough products per timing to dwarf the submit and wait (≈ 2 GFLOP, at least 3)
  const n = reps ?? Math.max(3, Math.min(200, Math.ceil(2e9 / (2 * s.M * s.N * s.K))));
  const product = (c: GemmChoice) => matmul(a, b, { transA: s.transA, transB: s.transB, tile: c, splits: 'splits' in c ? c.splits : undefined });
  const choices = candidates(s);
  for (const [name, choice] of Object.entries(choices)) {
    try {
      const out = product(choice); // compiles, and the result checked below
      const got = (await out.toArray()) as Float32Array;
      out.dispose();
      if (!agrees(got, reference, s.K)) {
        ms[name] = NaN;
        continue;
      }
      if ('SM' in choice) kernelPolicy().tensorCoresVerified = true;
      const times: number[] = [];
      for (let round = 0; round < 3; round++) {
        await rt().sync();
        const t0 = performance.now();
        for (let i = 0; i < n; i++) product(choice).dispose();
        await rt().sync();
        times.push((performance.now() - t0) / n);
      }
      ms[name] = times.sort((x, y) => x - y)[1]!;
    } catch {
      ms[name] = NaN; // did not compile or run here
    }
  }
  a.dispose();
  b.dispose();
  const ranked = Object.entries(ms).filter(([, t]) => Number.isFinite(t)).sort((x, y) => x[1] - y[1]);
  if (!ranked.length) throw new Error(`tuneMatmul: no gemm tile ran correctly for ${cls}`);
  const best = ranked[0]![0];
  setTunedTile(cls, choices[best]!);
  return { shapeClass: cls, best, ms };
}

/** f32 products of length K agree to ~1e-5 relative (f16-rounded operands: ~1e-3); a wrong kernel is off by O(1). */
function agrees(x: Float32Array, y: Float32Array, K: number): boolean {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return worst <= 2e-3 * Math.sqrt(K) * (scale + 1) / 8 && !Number.isNaN(worst);
}

/** The tuned choices, to keep (as JSON) per adapter. */
export function tunedTable(): Record<string, GemmChoice> {
  return { ...kernelPolicy().tuned };
}

/** Restore a table saved by tunedTable() (for the same adapter). */
export function loadTuned(table: Record<string, GemmChoice>): void {
  for (const [cls, choice] of Object.entries(table)) {
    setTunedTile(cls, choice);
    if ('SM' in choice) kernelPolicy().tensorCoresVerified = true; // it was measured, hence checked, on this adapter
  }
}
