// One policy for kernel variants: the adapter's class and features decide which kernel family every op uses, so the
// choice lives here and nowhere else. `dawngrad info` and the benches print it.
//
//   'cpu' adapters (lavapipe, llvmpipe, SwiftShader): subgroup-broadcast matmuls and attention products (no shared
//          memory: barriers switch coroutines there), 64 KiB uniform windows on lavapipe; reductions one row per invocation.
//   GPUs (discrete, integrated, unknown): register-blocked shared-memory gemm tiles sized per shape class (measured by
//          tuneMatmul, else a rule of thumb), thin kernels for LoRA's rank-r sides, split-K for small grids.
import { rt } from './runtime.ts';
import type { GemmTile } from './kernels/matmul-gpu.ts';
import { defaultTcTile, type TcTile } from './kernels/matmul-tc.ts';
import type { AdapterClass, SubgroupMatrixConfig } from './device.ts';

export type MatmulPath = 'uniform' | 'subgroup' | 'tiled';

/** Attention's products: 4×4 register blocks per invocation, or subgroup-broadcast tiles (as the CPU matmuls). */
export type AttentionKernels = 'blocked' | 'subgroup';

/**
 * How a gemm runs: a SIMT tile, optionally split into K slices (tuned; else chosen by the grid's size) — or, for an f16
 * weight on an adapter with matrix units, a subgroup-matrix tiling.
 */
export type GemmChoice = (GemmTile & { splits?: number }) | TcTile;

export interface KernelPolicy {
  adapterClass: AdapterClass;
  /** the matmul family */
  matmul: MatmulPath;
  /** attention's score and mixing products (head sizes that are not a multiple of 4 always take 'blocked') */
  attention: AttentionKernels;
  /** the one fixed subgroup size when the adapter has it and the device enabled subgroups, else 0 */
  subgroupSize: number;
  /** about one wave of workgroups: below half of it, long-K products split K across workgroups */
  targetWorkgroups: number;
  /** gemm tiles measured on this adapter, by shape class (see shapeClass) */
  tuned: Record<string, GemmChoice>;
  /** the f16→f32 subgroup-matrix fragment for mixed-precision products (tensor cores), when the adapter offers one */
  tensorCores: SubgroupMatrixConfig | null;
  /** the adapter's largest subgroup (a subgroup-matrix workgroup's width is a multiple of it) */
  maxSubgroupSize: number;
  /** a subgroup-matrix kernel has compiled and matched the SIMT kernel here (tuneMatmul sets it): only then is it the
   * default for shapes nobody tuned — a driver that miscompiles it then costs speed, never correctness */
  tensorCoresVerified: boolean;
}

/** The tiles a GPU gemm may use: the autotuner tries each; `gemmTileFor` falls back on a rule of thumb over them. */
export const GEMM_TILES: Record<string, GemmTile> = {
  '128x128': { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
  '128x128k16': { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  '128x64': { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
  '64x128': { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8 },
  '64x64': { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  '32x64': { BM: 32, BN: 64, BK: 16, TM: 4, TN: 4 },
};

let cached: { device: GPUDevice; policy: KernelPolicy } | null = null;

/** The policy for the current device (computed once per device). */
export function kernelPolicy(): KernelPolicy {
  const { device } = rt().ctx;
  if (cached?.device !== device) cached = { device, policy: choose() };
  return cached.policy;
}

function choose(): KernelPolicy {
  const { ctx } = rt();
  const subgroupSize = fixedSubgroupSize(ctx.device, ctx.adapter);
  const cpu = ctx.adapterClass === 'cpu';
  const info = ctx.adapter.info as GPUAdapterInfo & { subgroupMaxSize?: number };
  return {
    adapterClass: ctx.adapterClass,
    matmul: cpu && subgroupSize ? 'uniform' : 'tiled',
    attention: cpu && subgroupSize ? 'subgroup' : 'blocked',
    subgroupSize,
    targetWorkgroups: cpu ? 1 : 264,
    tuned: {},
    tensorCores: cpu || !ctx.hasF16 ? null : pickFragment(ctx.subgroupMatrixConfigs),
    maxSubgroupSize: info.subgroupMaxSize ?? 32,
    tensorCoresVerified: false,
  };
}

/** f16 inputs with f32 results, the squarest and largest fragment first (16×16×16 on NVIDIA). */
function pickFragment(configs: SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  const ok = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M % 4 === 0 && c.N % 4 === 0 && c.K % 4 === 0);
  return ok.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K)[0] ?? null;
}

function fixedSubgroupSize(device: GPUDevice, adapter: GPUAdapter): number {
  if (!device.features.has('subgroups')) return 0;
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const s = info.subgroupMinSize ?? 0;
  return s === info.subgroupMaxSize && s >= 4 && s <= 64 && (s & (s - 1)) === 0 ? s : 0;
}

/** The shape class a gemm's tile is tuned for: the layout, M rounded up to a power of two, N and K as they are. */
export function shapeClass(M: number, N: number, K: number, nb: number, tA: boolean, tB: boolean, f16B = false): string {
  return `${+tA}${+tB}${f16B ? 'h' : ''}:${nb > 1 ? `${nb}×` : ''}${2 ** Math.ceil(Math.log2(Math.max(M, 1)))}x${N}x${K}`;
}

/** Record a measured tile for a shape class (tuneMatmul does this). */
export function setTunedTile(cls: string, tile: GemmChoice): void {
  kernelPolicy().tuned[cls] = tile;
}

/** The gemm tile for a product: the measured one for its shape class, else big tiles when they fill the GPU. */
export function gemmTileFor(M: number, N: number, K: number, nb: number, tA = false, tB = false, f16B = false): GemmChoice {
  const pol = kernelPolicy();
  const tuned = pol.tuned[shapeClass(M, N, K, nb, tA, tB, f16B)];
  if (tuned) return tuned;
  if (f16B && pol.tensorCores && pol.tensorCoresVerified && tensorCoreLayout(M, N, K, tA, tB)) return defaultTcTile(pol.tensorCores);
  const waves = (t: GemmTile) => Math.ceil(M / t.BM) * Math.ceil(N / t.BN) * nb;
  if (waves(GEMM_TILES['128x128']!) >= pol.targetWorkgroups / 2) return GEMM_TILES['128x128']!;
  if (M <= 32) return GEMM_TILES['32x64']!;
  return GEMM_TILES['64x64']!;
}

/** Whether a 2-D product can take the subgroup-matrix kernel: vec4 loads along both operands' contiguous dims. */
export function tensorCoreLayout(M: number, N: number, K: number, tA: boolean, tB: boolean): boolean {
  return (tA ? M : K) % 4 === 0 && (tB ? K : N) % 4 === 0;
}

/** A line per choice, for `dawngrad info` and the bench headers. */
export function describePolicy(): Record<string, string> {
  const p = kernelPolicy();
  return {
    adapterClass: p.adapterClass,
    matmul: p.matmul === 'tiled' ? 'tiled (register-blocked gemm tiles, thin rank-r kernels, split-K)' : `${p.matmul} (subgroup broadcast, subgroups of ${p.subgroupSize})`,
    attention: p.attention === 'subgroup' ? `subgroup (broadcast tiles, subgroups of ${p.subgroupSize})` : 'blocked (4×4 register blocks)',
    tensorCores: p.tensorCores ? `f16 ${p.tensorCores.M}×${p.tensorCores.N}×${p.tensorCores.K} → f32 subgroup matrices (for --precision mixed)` : 'none',
    tunedShapes: String(Object.keys(p.tuned).length),
  };
}
