// What `dawngrad info`, the `auto` recipe and the benches say about the adapter, from what @dawngrad/tensor's device
// and kernel policy report: its name and class (a discrete GPU, an integrated one, software — 'cpu' — or unknown),
// the subgroup-matrix configurations the device enabled, the features that Dawn's toggles unlock (and how to ask for
// them), and the kernel variant each op family chose.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterClass, GpuContext, SubgroupMatrixConfig } from '@dawngrad/tensor';
import { autoRecipe } from './options.ts';

export interface AdapterFacts {
  /** vendor / description, the way the logs name the adapter */
  name: string;
  adapterClass: AdapterClass;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

/** The toggles that make Dawn offer shader-f16 and subgroup matrices on NVIDIA's Vulkan driver (issue 15). */
export const GPU_TOGGLES = 'allow_unsafe_apis,vulkan_enable_f16_on_nvidia';
/** Features that Dawn hides unless it starts with GPU_TOGGLES (on NVIDIA; lavapipe offers shader-f16 as is). */
export const TOGGLED_FEATURES = ['shader-f16', 'chromium-experimental-subgroup-matrix'] as const;

/** The adapter's name, class and subgroup-matrix configurations. */
export function adapterFacts(ctx: Pick<GpuContext, 'info' | 'adapterClass' | 'subgroupMatrixConfigs'>): AdapterFacts {
  const i = ctx.info;
  const name = [i.vendor, i.description || i.device].filter(Boolean).join(' / ') || 'unknown adapter';
  return { name, adapterClass: ctx.adapterClass, subgroupMatrixConfigs: ctx.subgroupMatrixConfigs };
}

/** "f16→f32 16×16×16" for each configuration. */
export function formatSubgroupMatrixConfigs(configs: readonly SubgroupMatrixConfig[]): string[] {
  return configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`);
}

export interface ToggledFeature {
  feature: (typeof TOGGLED_FEATURES)[number];
  available: boolean;
  /** how to get it when it is missing; null when available */
  howTo: string | null;
}

/** For each feature the GPU toggles unlock: offered now, or how to ask Dawn for it (given the toggles in force). */
export function toggledFeatures(features: readonly string[], toggles: readonly string[]): ToggledFeature[] {
  const missing = GPU_TOGGLES.split(',').filter((t) => !toggles.includes(t));
  return TOGGLED_FEATURES.map((feature) => {
    const available = features.includes(feature);
    const howTo = available ? null
      : missing.length ? `start with DAWNGRAD_DAWN_TOGGLES=${[...toggles, ...missing].join(',')}`
      : 'not offered by this adapter, even with the toggles';
    return { feature, available, howTo };
  });
}

/** The kernel variant each op family chose on this adapter (the tensor package's one policy). Needs `await init()`. */
export async function kernelVariants(): Promise<Record<string, string>> {
  const { describePolicy } = await import('@dawngrad/tensor');
  return describePolicy();
}

/**
 * Whether Dawn could find a GPU here at all: on Linux, only with an NVIDIA GPU in sight (`nvidiaVisible`: device node,
 * nvidia-smi, ICD file) or a DRM render or card node (/dev/dri: AMD, Intel, …); without either, Vulkan has only
 * software drivers. Elsewhere (macOS, Windows) always. `root` prefixes /dev (tests build fake machines).
 */
export function gpuMayBeVisible(nvidiaVisible: () => boolean, platform: string = process.platform, root = '/'): boolean {
  if (platform !== 'linux') return true;
  let dri: string[] = [];
  try {
    dri = readdirSync(join(root, 'dev/dri'));
  } catch {
    // no /dev/dri
  }
  return dri.some((f) => /^(renderD|card)\d+$/.test(f)) || nvidiaVisible();
}

/**
 * The recipe `auto` stands for here, and why. A machine with no GPU device runs a software adapter whatever Dawn does:
 * `quick`, decided without starting Dawn — so that the trainer's promise holds, every bad input refused before the
 * GPU is touched. Otherwise the adapter Dawn picks decides (autoRecipe); there Dawn starts before the inputs are
 * checked (an explicit --recipe keeps every refusal ahead of it).
 */
export async function pickAutoRecipe(): Promise<{ recipe: 'full' | 'quick'; reason: string }> {
  const { init, nvidiaGpuVisible } = await import('@dawngrad/tensor');
  if (!gpuMayBeVisible(nvidiaGpuVisible)) {
    return { recipe: 'quick', reason: 'no GPU on this machine (no NVIDIA GPU, no /dev/dri): it runs on a software adapter, and the quick recipe is sized for ≤ 15 minutes on a 2-core CPU' };
  }
  return autoRecipe(adapterFacts((await init()).ctx));
}
