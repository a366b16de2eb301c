// The Dawn device: adapter choice, the limits we ask for, and a dispose() that lets node exit.
import { create, globals } from 'webgpu';

export interface DeviceInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isSoftware: boolean;
}

export interface GpuContext {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: DeviceInfo;
  limits: GPUSupportedLimits;
  features: string[];
  hasF16: boolean;
}

const INSTALL_HINT =
  'no WebGPU adapter found. On Debian bookworm install Mesa lavapipe from backports: ' +
  'add the bookworm-backports suite, then `apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers` ' +
  '(or run scripts/bootstrap.sh as root)';

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

/** Dawn flags from the environment: DAWNGRAD_BACKEND=vulkan|..., DAWNGRAD_ADAPTER=<substring of the adapter name>. */
function dawnFlags(): string[] {
  // full-resolution GPU timestamps for the profiler (Dawn rounds them to ~65 µs by default, against timing attacks)
  const flags: string[] = ['disable-dawn-features=timestamp_quantization'];
  const backend = process.env.DAWNGRAD_BACKEND;
  if (backend) flags.push(`backend=${backend}`);
  const adapter = process.env.DAWNGRAD_ADAPTER;
  if (adapter) flags.push(`adapter=${adapter}`);
  return flags;
}

function describe(adapter: GPUAdapter): DeviceInfo {
  const i = adapter.info as GPUAdapterInfo & { backendType?: string; description?: string };
  const name = `${i.vendor ?? ''} ${i.architecture ?? ''} ${i.device ?? ''} ${i.description ?? ''}`.toLowerCase();
  return {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    backend: i.backendType ?? '',
    isSoftware: /llvmpipe|lavapipe|swiftshader|software|cpu/.test(name),
  };
}

async function acquire(): Promise<GpuContext> {
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = '/tmp';
  Object.assign(globalThis, globals);
  let gpu: GPU;
  let adapter: GPUAdapter | null;
  try {
    gpu = create(dawnFlags());
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    // Dawn refuses a DAWNGRAD_BACKEND / DAWNGRAD_ADAPTER that matches nothing with a multi-line list: name the cause
    const chosen = ['DAWNGRAD_BACKEND', 'DAWNGRAD_ADAPTER'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`);
    const why = (e as Error).message.trim().replace(/\s*\n\s*/g, ' ');
    throw new Error(`no WebGPU adapter${chosen.length ? ` for ${chosen.join(' ')}` : ''}: ${why}`);
  }
  if (!adapter) throw new Error(INSTALL_HINT);
  if (describe(adapter).device === 'null-backend') {
    // Dawn's null backend accepts every call and runs nothing: reads return garbage, so refuse it by name
    throw new Error(`DAWNGRAD_BACKEND=${process.env.DAWNGRAD_BACKEND ?? 'null'} selects Dawn's null backend, which runs no kernels; unset it (or pick vulkan)`);
  }
  const al = adapter.limits;
  const hasF16 = adapter.features.has('shader-f16');
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
  const requiredFeatures: GPUFeatureName[] = hasF16 ? ['shader-f16'] : [];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query'); // the profiler's GPU clock
  if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups'); // the matmul's subgroup-broadcast kernel (lavapipe)
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
    limits: device.limits,
    features: [...adapter.features].map(String).sort(),
    hasF16,
  };
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
