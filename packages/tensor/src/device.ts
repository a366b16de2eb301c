// The WebGPU device: which adapter (a discrete GPU before a software one), the limits and features we ask for, and a
// dispose() that lets node exit. Where the GPU object comes from differs by platform, and only that part does:
// `#platform` (package.json "imports") is device-node.ts in Node (Dawn from the npm `webgpu` package, Vulkan ICD
// discovery, Dawn toggles) and device-browser.ts under a bundler's "browser" condition (navigator.gpu). This file
// imports neither Node nor Dawn, so a browser build of tensor (and of the packages above it) never sees `node:`.
import { platform, nodeApi } from '#platform';

/**
 * Node's own modules, for the packages above that read and write files in Node (model, lora): they take them from
 * here instead of importing `node:` themselves. In a browser build every function of them throws a one-line error
 * that says to load from a URL or picked files instead.
 */
export interface NodeApi {
  fs: typeof import('node:fs');
  fsp: typeof import('node:fs/promises');
  path: typeof import('node:path');
  os: typeof import('node:os');
  crypto: typeof import('node:crypto');
}
export { nodeApi };

export interface DeviceInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isSoftware: boolean;
}

/** What kind of processor runs the kernels: software adapters (lavapipe, SwiftShader, WARP) are 'cpu'. */
export type AdapterClass = 'cpu' | 'discrete' | 'integrated' | 'unknown';

/** One subgroup-matrix shape the adapter offers (Dawn's chromium-experimental-subgroup-matrix; e.g. f16 8×8×8). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface GpuContext {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: DeviceInfo;
  /** 'cpu' for software adapters; what kernel variants and default recipes are chosen by */
  adapterClass: AdapterClass;
  /** where the GPU object came from: Dawn through node, or a browser's navigator.gpu */
  platform: 'node' | 'browser';
  limits: GPUSupportedLimits;
  /** the adapter's features, sorted */
  features: string[];
  hasF16: boolean;
  /** the adapter's subgroup-matrix shapes when the device enabled chromium-experimental-subgroup-matrix, else [] */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  /** the Dawn toggles the instance was created with (Node; DAWNGRAD_DAWN_TOGGLES or setDawnToggles) */
  toggles: string[];
  /** why this adapter may not be the one wanted (a software adapter while a GPU is visible), with the fix; else null */
  warning: string | null;
}

/** Where the WebGPU entry point comes from: Node (Dawn) or a browser. device-node.ts and device-browser.ts export one. */
export interface Platform {
  readonly kind: 'node' | 'browser';
  /** The GPU object, created with these Dawn toggles (ignored in a browser). */
  gpu(toggles: readonly string[]): GPU;
  /** An environment variable (always undefined in a browser). */
  env(name: string): string | undefined;
  /** Whether an NVIDIA GPU looks present (driver tools, device nodes or an ICD file); false in a browser. */
  nvidiaVisible(): boolean;
  /** The first message to show when requestAdapter found nothing. */
  noAdapterHint: string;
}

let ctx: GpuContext | null = null;
const gpuErrors: string[] = [];

/** Throw the first WebGPU error raised since the last check (validation errors, WGSL that fails to compile). */
export function throwGpuErrors(): void {
  if (gpuErrors.length === 0) return;
  const first = gpuErrors[0]!.split('\n').slice(0, 6).join(' | ');
  const more = gpuErrors.length > 1 ? ` (and ${gpuErrors.length - 1} more)` : '';
  gpuErrors.length = 0;
  throw new Error(`WebGPU error: ${first}${more}`);
}
let pending: Promise<GpuContext> | null = null;
const lostHandlers: ((reason: string) => void)[] = [];

// ---- Dawn toggles ----

let programmaticToggles: string[] | null = null;

/** Split `a,b , c` into toggle names; refuses anything that is not a Dawn toggle name (lower-case words and `_`). */
export function parseToggles(text: string | undefined, source = 'DAWNGRAD_DAWN_TOGGLES'): string[] {
  const out: string[] = [];
  for (const t of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!/^[a-z0-9_]+$/.test(t)) throw new Error(`${source}: ${JSON.stringify(t)} is not a Dawn toggle name (e.g. allow_unsafe_apis,vulkan_enable_f16_on_nvidia)`);
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

/**
 * Dawn toggles for the next device (e.g. `['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia']`, which on NVIDIA
 * unlock shader-f16 and subgroup matrices). Overrides DAWNGRAD_DAWN_TOGGLES; null goes back to the variable. Dawn
 * reads toggles when the instance is created, so this must come before init() (or after dispose()).
 */
export function setDawnToggles(toggles: readonly string[] | null): void {
  if (ctx || pending) throw new Error('setDawnToggles: the device exists already; call it before init() (or dispose() first)');
  programmaticToggles = toggles === null ? null : parseToggles(toggles.join(','), 'setDawnToggles');
}

/** The toggles the next device gets: setDawnToggles' list, else DAWNGRAD_DAWN_TOGGLES. */
export function dawnToggles(env: (name: string) => string | undefined = platform.env): string[] {
  return programmaticToggles ?? parseToggles(env('DAWNGRAD_DAWN_TOGGLES'));
}

// ---- adapter description and preference ----

type Info = GPUAdapterInfo & { backendType?: string; description?: string; isFallbackAdapter?: boolean; subgroupMatrixConfigs?: unknown };

export function describe(adapter: Pick<GPUAdapter, 'info'>): DeviceInfo {
  const i = adapter.info as Info;
  const name = `${i.vendor ?? ''} ${i.architecture ?? ''} ${i.device ?? ''} ${i.description ?? ''}`.toLowerCase();
  return {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    backend: i.backendType ?? '',
    isSoftware: i.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|software|cpu|microsoft basic render|warp/.test(name),
  };
}

/** Discrete, integrated or cpu from what the adapter says (WebGPU does not expose the type; vendor is the best hint). */
export function classifyAdapter(adapter: Pick<GPUAdapter, 'info'>): AdapterClass {
  const d = describe(adapter);
  if (d.isSoftware) return 'cpu';
  const vendor = d.vendor.toLowerCase();
  const name = `${d.architecture} ${d.device} ${d.description}`.toLowerCase();
  if (vendor.includes('nvidia') || name.includes('nvidia')) return 'discrete';
  if (vendor.includes('intel')) return /\barc\b/.test(name) ? 'discrete' : 'integrated';
  if (vendor.includes('apple') || vendor.includes('qualcomm') || vendor.includes('arm')) return 'integrated';
  if (vendor.includes('amd') || vendor.includes('ati')) return /radeon\(tm\) graphics|radeon graphics|vega \d+ graphics/.test(name) ? 'integrated' : 'discrete';
  return 'unknown';
}

const RANK: Record<AdapterClass, number> = { discrete: 3, integrated: 2, unknown: 1, cpu: 0 };
const nameOf = (a: Pick<GPUAdapter, 'info'>) => describe(a).description || describe(a).device || describe(a).vendor || 'an adapter';

export const SOFTWARE_WHILE_GPU_FIX =
  'Dawn sees no Vulkan driver for the GPU: install the Vulkan loader (libvulkan1) and point VK_DRIVER_FILES at ' +
  "the driver's nvidia_icd.json (scripts/bootstrap.sh does both), or pick an adapter with DAWNGRAD_ADAPTER";

/**
 * The adapter to use: the high-performance one, unless that is a software adapter and a low-power request finds a
 * real GPU. When a software adapter is all there is while a GPU looks present, `warning` says so with the fix.
 */
export async function pickAdapter(gpu: Pick<GPU, 'requestAdapter'>, gpuVisible: () => boolean): Promise<{ adapter: GPUAdapter | null; warning: string | null }> {
  const first = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!first || classifyAdapter(first) !== 'cpu') return { adapter: first, warning: null };
  const other = await gpu.requestAdapter({ powerPreference: 'low-power' }).catch(() => null);
  if (other && RANK[classifyAdapter(other)] > RANK.cpu) {
    return { adapter: other, warning: `the high-performance request returned the software adapter ${nameOf(first)}; using ${nameOf(other)}` };
  }
  const warning = gpuVisible() ? `software adapter ${nameOf(first)} while a GPU is visible: ${SOFTWARE_WHILE_GPU_FIX}` : null;
  return { adapter: first, warning };
}

/** The features we ask the device for, of those the adapter offers. */
export function wantedFeatures(offered: ReadonlySet<string>): GPUFeatureName[] {
  const want = [
    'shader-f16', // f16 tensors
    'timestamp-query', // the profiler's GPU clock
    'subgroups', // the matmul's subgroup-broadcast kernels (lavapipe)
    'chromium-experimental-subgroup-matrix', // Dawn's cooperative matrices (NVIDIA with allow_unsafe_apis)
  ];
  return want.filter((f) => offered.has(f)) as GPUFeatureName[];
}

function subgroupMatrixConfigs(adapter: GPUAdapter, enabled: boolean): SubgroupMatrixConfig[] {
  const raw = (adapter.info as Info).subgroupMatrixConfigs;
  if (!enabled || !raw || typeof (raw as Iterable<unknown>)[Symbol.iterator] !== 'function') return [];
  return [...(raw as Iterable<Record<string, unknown>>)].map((c) => ({
    componentType: String(c.componentType),
    resultComponentType: String(c.resultComponentType),
    M: Number(c.M),
    N: Number(c.N),
    K: Number(c.K),
  }));
}

async function acquire(): Promise<GpuContext> {
  const toggles = platform.kind === 'node' ? dawnToggles() : [];
  let adapter: GPUAdapter | null;
  let warning: string | null;
  let gpu: GPU;
  try {
    gpu = platform.gpu(toggles);
    ({ adapter, warning } = await pickAdapter(gpu, () => platform.nvidiaVisible()));
  } catch (e) {
    // Dawn refuses a DAWNGRAD_BACKEND / DAWNGRAD_ADAPTER that matches nothing with a multi-line list: name the cause
    const chosen = ['DAWNGRAD_BACKEND', 'DAWNGRAD_ADAPTER'].filter((k) => platform.env(k)).map((k) => `${k}=${platform.env(k)}`);
    const why = (e as Error).message.trim().replace(/\s*\n\s*/g, ' ');
    throw new Error(`no WebGPU adapter${chosen.length ? ` for ${chosen.join(' ')}` : ''}: ${why}`);
  }
  if (!adapter) throw new Error(platform.noAdapterHint);
  if (describe(adapter).device === 'null-backend') {
    // Dawn's null backend accepts every call and runs nothing: reads return garbage, so refuse it by name
    throw new Error(`DAWNGRAD_BACKEND=${platform.env('DAWNGRAD_BACKEND') ?? 'null'} selects Dawn's null backend, which runs no kernels; unset it (or pick vulkan)`);
  }
  const al = adapter.limits;
  // Ask for everything the adapter offers on the limits that bound tensor size and kernel shape.
  const requiredLimits: Record<string, number> = {
    maxBufferSize: al.maxBufferSize,
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
  };
  const requiredFeatures = wantedFeatures(adapter.features as ReadonlySet<string>);
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.lost.then((info) => {
    if (ctx?.device !== device) return; // we destroyed it ourselves
    const reason = `WebGPU device lost (${info.reason}): ${info.message}`;
    for (const h of lostHandlers) h(reason);
  });
  device.addEventListener('uncapturederror', (ev) => {
    // a broken kernel would otherwise show up as zeros: keep the error for the next readback to throw
    gpuErrors.push((ev as GPUUncapturedErrorEvent).error.message);
  });
  return {
    gpu,
    adapter,
    device,
    info: describe(adapter),
    adapterClass: classifyAdapter(adapter),
    platform: platform.kind,
    limits: device.limits,
    features: [...adapter.features].map(String).sort(),
    hasF16: device.features.has('shader-f16'),
    subgroupMatrixConfigs: subgroupMatrixConfigs(adapter, device.features.has('chromium-experimental-subgroup-matrix')),
    toggles,
    warning,
  };
}

/** Whether an NVIDIA GPU looks present to this process (Node: nvidia-smi on PATH, /dev/nvidia0, an nvidia_icd.json). */
export function nvidiaGpuVisible(): boolean {
  return platform.nvidiaVisible();
}

/** The process-wide GPU context, acquired once. */
export async function getGpu(): Promise<GpuContext> {
  if (ctx) return ctx;
  pending ??= acquire().then((c) => (ctx = c));
  try {
    return await pending;
  } finally {
    pending = null;
  }
}

/** The context if it was acquired already, else a clear error (ops are synchronous, so init() must come first). */
export function gpuSync(): GpuContext {
  if (!ctx) throw new Error('dawngrad: no device yet: call `await init()` from @dawngrad/tensor first');
  return ctx;
}

export function onDeviceLost(handler: (reason: string) => void): void {
  lostHandlers.push(handler);
}

/** Destroy the device and drop every reference so node can exit. */
export function destroyGpu(): void {
  if (!ctx) return;
  const d = ctx.device;
  ctx = null;
  d.destroy();
}
