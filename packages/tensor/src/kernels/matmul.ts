// Batched matmul C = alpha·op(A)·op(B) (+ C0) (+ s·H·op(E)). A transposed operand is a flag (other index math), never
// a copy.
//   a: [...batch, M, K] ([...batch, K, M] with transA), b: [...batch, K, N] ([...batch, N, K] with transB),
//   c: [...batch, M, N]; either operand may drop its batch dims (a shared weight).
//   lowRank (2-D only): h: [M, r], e: [r, N] ([N, r] with transE) — LoRA's s·(x·Aᵀ)·Bᵀ added in the same pass.
// The kernel family comes from the adapter's policy (policy.ts): on a CPU adapter the subgroup-broadcast kernels of
// matmul-lavapipe.ts, on a GPU the register-blocked tiles and thin kernels of matmul-gpu.ts. Every family computes the
// same function, and the tests force each one onto lavapipe against the float64 twin.
import { rt, grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG } from '../kernel.ts';
import { kernelPolicy, gemmTileFor, tensorCoreLayout, type MatmulPath, type GemmChoice } from '../policy.ts';
import { subgroupKernel, viaUniformWindows } from './matmul-lavapipe.ts';
import { gemmKernel, gemmThreads, thinMKernel, thinNKernel, SPLIT_REDUCE } from './matmul-gpu.ts';
import { tcKernel, tcTileShape, type TcTile } from './matmul-tc.ts';

export type { MatmulPath } from '../policy.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** out = accumulate + alpha·op(A)·op(B), written into (and returning) this tensor */
  accumulate?: Tensor;
  alpha?: number;
  /** also add scale·h·op(e): h [M, r], e [r, N] or [N, r] (transE); 2-D operands only */
  lowRank?: { h: Tensor; e: Tensor; transE?: boolean; scale: number };
  /** force a gemm tile (the autotuner and benches try each) */
  tile?: GemmChoice;
  /** force the number of K slices of a tiled gemm (tests; default: by the grid's size) */
  splits?: number;
}

let forcedPath: MatmulPath | null = null;

/** Force a kernel family ('uniform' and 'subgroup' need fixed-size subgroups), or null to follow the policy again. */
export function setMatmulPath(path: MatmulPath | null): void {
  forcedPath = path;
}

/** The kernel family matmul uses on this adapter. */
export function matmulPath(): MatmulPath {
  if (forcedPath && forcedPath !== 'tiled' && !kernelPolicy().subgroupSize) throw new Error(`matmul: the ${forcedPath} kernel needs a device with fixed-size subgroups`);
  return forcedPath ?? kernelPolicy().matmul;
}

/** The output shape of op(a)·op(b), or a clear error. */
export function matmulShape(a: readonly number[], b: readonly number[], o: MatmulOptions = {}): { M: number; N: number; K: number; batch: number[] } {
  if (a.length < 2 || b.length < 2) throw new Error(`matmul: operands need rank ≥ 2, got [${a.join(', ')}] and [${b.join(', ')}]`);
  const [ar, ac] = [a[a.length - 2]!, a[a.length - 1]!];
  const [br, bc] = [b[b.length - 2]!, b[b.length - 1]!];
  const [M, K] = o.transA ? [ac, ar] : [ar, ac];
  const [K2, N] = o.transB ? [bc, br] : [br, bc];
  if (K !== K2) throw new Error(`matmul: inner dims differ: [${a.join(', ')}]${o.transA ? 'ᵀ' : ''} · [${b.join(', ')}]${o.transB ? 'ᵀ' : ''}`);
  const ba = a.slice(0, -2);
  const bb = b.slice(0, -2);
  if (ba.length && bb.length && (ba.length !== bb.length || ba.some((d, i) => d !== bb[i]))) {
    throw new Error(`matmul: batch dims differ: [${ba.join(', ')}] vs [${bb.join(', ')}]`);
  }
  return { M, N, K, batch: ba.length ? ba : bb };
}

/** op(a)·op(b), batched; `matmul(x, W, { transB: true })` is x·Wᵀ for an HF-layout weight W: [out, in]. */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const mixed = b.dtype === 'f16'; // an f16 weight: mixed precision (f16·f16 products, f32 sums and output)
  if (a.dtype !== 'f32' || (b.dtype !== 'f32' && !mixed)) throw new Error(`matmul: needs f32 operands (or an f16 B), got ${a.dtype} and ${b.dtype}`);
  if (mixed && (b.rank !== 2 || (a.rank > 2 && o.transA))) throw new Error(`matmul: an f16 operand must be a 2-D weight B times rows of A, got [${a.shape}]${o.transA ? 'ᵀ' : ''} · [${b.shape}]`);
  const { M, N, K, batch } = matmulShape(a.shape, b.shape, o);
  const nb = batch.reduce((x, y) => x * y, 1);
  const outShape = [...batch, M, N];
  const acc = o.accumulate;
  if (acc && (acc.dtype !== 'f32' || acc.shape.length !== outShape.length || acc.shape.some((d, i) => d !== outShape[i]))) {
    throw new Error(`matmul: accumulate is [${acc.shape.join(', ')}] ${acc.dtype}, the product is [${outShape.join(', ')}] f32`);
  }
  if (o.lowRank) checkLowRank(o.lowRank, M, N, nb);
  if (nb > 65535) throw new Error(`matmul: ${nb} batches exceed the dispatch limit of 65535`);
  if (mixed && nb > 1) {
    // rows of a batched A against one weight: the batch folds into the rows (into C as given, or a new one)
    const a2 = a.reshape([nb * M, K]);
    const acc2 = acc?.reshape([nb * M, N]);
    const c2 = matmul(a2, b, { ...o, accumulate: acc2 });
    a2.dispose();
    const c = acc ?? c2.reshape(outShape);
    c2.dispose();
    return c;
  }
  const c = acc ?? Tensor.empty(outShape, 'f32');
  if (M === 0 || N === 0 || nb === 0) return c;
  const path = matmulPath();
  if (path === 'tiled') tiled(a, b, c, o, { M, N, K, nb });
  else {
    const fused = lavapipe(path, a, b, c, o, { M, N, K, nb });
    // only the uniform-window kernel has a low-rank epilogue: elsewhere its term is one more (thin) product into C
    if (o.lowRank && !fused) matmul(o.lowRank.h, o.lowRank.e, { transB: o.lowRank.transE, alpha: o.lowRank.scale, accumulate: c });
  }
  return c;
}

function checkLowRank(lr: NonNullable<MatmulOptions['lowRank']>, M: number, N: number, nb: number): void {
  const r = lr.h.shape[1] ?? 0;
  const eShape = lr.transE ? [N, r] : [r, N];
  const bad = nb !== 1 || lr.h.rank !== 2 || lr.h.shape[0] !== M || lr.e.rank !== 2 || lr.e.shape.some((d, i) => d !== eShape[i]);
  if (bad || lr.h.dtype !== 'f32' || lr.e.dtype !== 'f32') {
    throw new Error(`matmul: lowRank needs h [${M}, r] and e [${eShape.join(', ')}] f32 for a 2-D [${M}, ${N}] product, got [${lr.h.shape}] and [${lr.e.shape}]`);
  }
}

interface Dims {
  M: number;
  N: number;
  K: number;
  nb: number;
}

/** The CPU adapters' kernels; true when o.lowRank's term was added in the same kernel. */
function lavapipe(path: MatmulPath, a: Tensor, b: Tensor, c: Tensor, o: MatmulOptions, { M, N, K, nb }: Dims): boolean {
  const sg = kernelPolicy().subgroupSize;
  const mixed = b.dtype === 'f16';
  // a thin side (LoRA's rank) goes in the rows, where the subgroup kernel broadcasts it; its lanes then span the wide
  // side (a window per 32 columns would leave most lanes of a thin one idle: 3-4× slower measured)
  const thin = Math.min(M, N) <= THIN && Math.max(M, N) > THIN && K >= THIN;
  if (thin && N <= THIN && nb === 1 && a.rank === 2 && b.rank === 2 && !mixed) {
    thinColumns(a, b, c, o, { M, N, K, nb }, sg);
    return false;
  }
  if (path === 'uniform' && !mixed && !thin) {
    const done = viaUniformWindows(a, b, c, o, M * nb, N, K, forcedPath === 'uniform', sg);
    if (done) return done === 'fused';
  }
  // element strides of op(A)(m, k) and op(B)(k, n), and batch strides (0: the operand is shared by every batch)
  const [sAm, sAk] = o.transA ? [1, M] : [K, 1];
  const [sBk, sBn] = o.transB ? [1, K] : [N, 1];
  const params = { M, N, K, bA: a.rank > 2 ? M * K : 0, bB: b.rank > 2 ? K * N : 0, alpha: o.alpha ?? 1, acc: o.accumulate ? 1 : 0, sAm, sAk, sBk, sBn, tA: o.transA ? 1 : 0, tB: o.transB ? 1 : 0 };
  // vec4 loads need K and N to be multiples of 4 (true of every model shape); other shapes share one strided kernel
  const kernel = K % 4 === 0 && N % 4 === 0 ? subgroupKernel(sg, !!o.transA, !!o.transB, mixed) : subgroupKernel(sg, null, null, mixed);
  kernel.run({ A: a, B: b, C: c }, params, [Math.ceil(N / (4 * sg)), Math.ceil(M / sg), nb]);
  return false;
}

const THIN = 8;

// C [M, N ≤ 8] as Cᵀ = op(B)ᵀ·op(A)ᵀ: op(B)ᵀ's N rows broadcast, op(A)ᵀ's M columns across the lanes, stored transposed.
function thinColumns(a: Tensor, b: Tensor, c: Tensor, o: MatmulOptions, { M, N, K }: Dims, sg: number): void {
  const [sAm, sAk] = o.transA ? [1, M] : [K, 1];
  const [sBk, sBn] = o.transB ? [1, K] : [N, 1];
  // in the swapped product: "A" = op(B)ᵀ (element (n, k) at B[k·sBk + n·sBn]), "B" = op(A)ᵀ ((k, m) at A[m·sAm + k·sAk])
  const params = { M: N, N: M, K, bA: 0, bB: 0, alpha: o.alpha ?? 1, acc: o.accumulate ? 1 : 0, sAm: sBn, sAk: sBk, sBk: sAk, sBn: sAm, tA: o.transB ? 0 : 1, tB: o.transA ? 0 : 1 };
  const kernel = K % 4 === 0 && M % 4 === 0 ? subgroupKernel(sg, !o.transB, !o.transA, false, true) : subgroupKernel(sg, null, null, false, true);
  kernel.run({ A: b, B: a, C: c }, params, [Math.ceil(M / (4 * sg)), Math.ceil(N / sg), 1]);
}

// The GPU family: a thin kernel where one side is LoRA's rank r, else the gemm tile the policy picks for the shape.
function tiled(a: Tensor, b: Tensor, c: Tensor, o: MatmulOptions, d: Dims): void {
  const { M, N, K, nb } = d;
  const [tA, tB] = [!!o.transA, !!o.transB];
  const alpha = o.alpha ?? 1;
  const accFlag = o.accumulate ? 1 : 0;
  const mixed = b.dtype === 'f16';
  const tile = o.tile ?? gemmTileFor(M, N, K, nb, tA, tB, mixed);
  if ('SM' in tile) {
    if (!mixed || nb > 1 || !tensorCoreLayout(M, N, K, tA, tB)) throw new Error(`matmul: a subgroup-matrix tile takes a 2-D product with an f16 B and 4-aligned rows, got [${a.shape}]·[${b.shape}] ${b.dtype}`);
    tensorCores(a, b, c, o, d, tile);
    return;
  }
  if (!mixed && !o.lowRank && !o.tile && !o.splits && nb === 1 && a.rank === 2 && b.rank === 2) {
    if (N <= 16 && !tA && K % 4 === 0) {
      thinNKernel(N, tB).run({ A: a, [tB ? 'B4' : 'B']: b, C: c } as never, { M, K, alpha, acc: accFlag }, [Math.ceil(M / 8)]);
      return;
    }
    if (M <= 16 && tA && !tB && N % 4 === 0) {
      thinMKernel(M, false).run({ H: a, X: b, C: c }, { N, K, alpha, acc: accFlag }, [Math.ceil(N / 64)]);
      return;
    }
    if (N <= 16 && tA && !tB && M % 4 === 0) {
      // Cᵀ = op(B)ᵀ·op(A)ᵀ: b [K, N] is the thin side, a [K, M] the wide one
      thinMKernel(N, true).run({ H: b, X: a, C: c }, { N: M, K, alpha, acc: accFlag }, [Math.ceil(M / 64)]);
      return;
    }
  }
  const layout = {
    tA,
    tB,
    vA: (tA ? M : K) % 4 === 0,
    vB: (tB ? K : N) % 4 === 0,
    vC: N % 4 === 0,
    split: false,
    lowRank: o.lowRank ? { tE: !!o.lowRank.transE } : null,
    f16B: mixed,
  };
  const [gx, gy] = [Math.ceil(N / tile.BN), Math.ceil(M / tile.BM)];
  const params = { M, N, K, bA: a.rank > 2 ? M * K : 0, bB: b.rank > 2 ? K * N : 0, alpha, acc: accFlag, kSlice: K, r: 0, s: 0 };
  const splits = o.lowRank || nb > 1 ? 1 : (o.splits ?? tile.splits ?? splitCount(gx * gy * nb, K, tile.BK));
  if (splits > 1) {
    // a grid too small to fill the GPU with a long K: each slice of K sums into its own scratch plane, then one add
    const kSlice = Math.ceil(K / splits / tile.BK) * tile.BK;
    const n = Math.ceil(K / kSlice);
    const partial = Tensor.empty([n, M, N], 'f32');
    gemmKernel(tile, { ...layout, split: true, vC: N % 4 === 0 }).run({ A: a, B: b, C: partial }, { ...params, kSlice }, [gx, gy, n]);
    SPLIT_REDUCE.run({ P: partial, C: c }, { n: M * N, splits: n, alpha, acc: accFlag }, grid(Math.ceil((M * N) / WG)));
    partial.dispose(); // encoded work reads it first: the pool hands it out again only to later dispatches
    return;
  }
  const bufs: Record<string, Tensor> = { A: a, B: b, C: c };
  if (o.lowRank) Object.assign(bufs, { H: o.lowRank.h, E: o.lowRank.e }), Object.assign(params, { r: o.lowRank.h.shape[1]!, s: o.lowRank.scale });
  if (gemmThreads(tile) > rt().ctx.limits.maxComputeInvocationsPerWorkgroup) throw new Error(`matmul: tile ${JSON.stringify(tile)} needs more threads than the adapter allows`);
  gemmKernel(tile, layout).run(bufs as never, params, [gx, gy, nb]);
}

// Matrix units: the tile is a subgroup-matrix tiling (policy: only on adapters offering f16→f32 fragments, for 2-D
// products whose operands' contiguous dims are multiples of 4).
function tensorCores(a: Tensor, b: Tensor, c: Tensor, o: MatmulOptions, { M, N, K }: Dims, tile: TcTile): void {
  const sg = kernelPolicy().maxSubgroupSize;
  const { BM, BN } = tcTileShape(tile);
  const layout = { tA: !!o.transA, tB: !!o.transB, lowRank: o.lowRank ? { tE: !!o.lowRank.transE } : null };
  const bufs: Record<string, Tensor> = { A: a, B: b, C: c };
  const lr = o.lowRank;
  if (lr) Object.assign(bufs, { H: lr.h, E: lr.e });
  const params = { M, N, K, alpha: o.alpha ?? 1, acc: o.accumulate ? 1 : 0, r: lr ? lr.h.shape[1]! : 0, s: lr?.scale ?? 0 };
  tcKernel(tile, layout, sg).run(bufs as never, params, [Math.ceil(N / BN), Math.ceil(M / BM)]);
}

/** How many K slices: enough workgroups for about one wave of the GPU, each slice at least 256 deep. */
function splitCount(workgroups: number, K: number, BK: number): number {
  const target = kernelPolicy().targetWorkgroups;
  if (workgroups * 2 > target || K < 1024) return 1;
  return Math.max(1, Math.min(Math.floor(target / workgroups), Math.floor(K / 256), Math.ceil(K / BK)));
}
