// The thin runtime: one command encoder for the current step, a pipeline cache keyed by specialisation,
// a uniform arena for kernel parameters, and readback. Ops encode; only flush() and readback submit.
import { getGpu, gpuSync, destroyGpu, throwGpuErrors, onDeviceLost, type GpuContext } from './device.ts';
import { BufferPool } from './pool.ts';

/** A kernel: WGSL made from a template, cached by key (name + everything the template specialises on). */
export interface Kernel {
  key: string;
  wgsl: () => string;
  /**
   * The access of each buffer binding from @binding(1) on, when the kernel declares them (defineKernel does): its
   * pipeline then gets an explicit layout with the uniform parameters at a dynamic offset, so a dispatch over the same
   * buffers as an earlier one reuses that dispatch's bind group instead of creating one.
   */
  bindings?: readonly ('read' | 'rw' | 'uniform')[];
  /** whether @binding(0) holds the uniform parameters (with `bindings`) */
  hasParams?: boolean;
}

/** One dispatch. Bindings: @binding(0) the uniform params (when given), then `buffers` in order from @binding(1). */
export interface Dispatch {
  kernel: Kernel;
  /** whole buffers, or a window of one ({ buffer, offset, size }: e.g. a 64 KiB uniform-buffer slice) */
  buffers: (GPUBuffer | GPUBufferBinding)[];
  /** parameters, 4 bytes each; `types` says u32 (u), i32 (i) or f32 (f) per entry, default all u32 */
  params?: number[];
  types?: string;
  workgroups: [number, number?, number?];
}

const SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we know
const ARENA_SLOTS = 2048;
const BIND_GROUP_CACHE = 8192;
const MAX_WG = 65535;

export interface RuntimeStats {
  dispatches: number;
  submits: number;
  pipelines: number;
  readbacks: number;
}

/**
 * Watches every dispatch, copy and submit: the per-kernel profiler (profile.ts) plugs in here. Null by default, so a
 * normal run pays one null check per dispatch.
 */
export interface RuntimeObserver {
  /** no room for another timed dispatch in this encoder: the runtime flushes first */
  full(): boolean;
  /** timestamp writes for the pass that will hold this one dispatch of `key` (undefined: untimed) */
  timestamps(key: string): GPUComputePassTimestampWrites | undefined;
  /** CPU time spent encoding one dispatch (uniforms, bind group, pass), pipeline compiles excluded */
  encoded(d: Dispatch, cpuMs: number): void;
  compiled(key: string, cpuMs: number): void;
  copied(bytes: number): void;
  /** the encoder is about to be finished: resolve its queries into it */
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): void;
  destroyed(): void;
}

export class Runtime {
  readonly pool: BufferPool;
  readonly stats: RuntimeStats = { dispatches: 0, submits: 0, pipelines: 0, readbacks: 0 };
  /** set by startProfile(); see RuntimeObserver */
  observer: RuntimeObserver | null = null;
  private pipelines = new Map<string, GPUComputePipeline>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  /** bind groups of declared kernels by (pipeline, buffers): steady-state training reuses the same pooled buffers */
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: GPUBuffer;
  private arenaData = new ArrayBuffer(SLOT * ARENA_SLOTS);
  private arenaView = new DataView(this.arenaData);
  private arenaUsed = 0;
  private staging: GPUBuffer[] = [];

  constructor(readonly ctx: GpuContext) {
    this.pool = new BufferPool(ctx.device, ctx.limits.maxBufferSize, ctx.limits.maxStorageBufferBindingSize);
    this.arena = ctx.device.createBuffer({ size: SLOT * ARENA_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  get device(): GPUDevice {
    return this.ctx.device;
  }

  pipeline(k: Kernel): GPUComputePipeline {
    let p = this.pipelines.get(k.key);
    if (!p) {
      const t0 = this.observer ? performance.now() : 0;
      const module = this.device.createShaderModule({ code: k.wgsl(), label: k.key });
      const layout = k.bindings ? this.device.createPipelineLayout({ bindGroupLayouts: [this.layoutOf(k)] }) : 'auto';
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: 'main' }, label: k.key });
      this.pipelines.set(k.key, p);
      this.stats.pipelines++;
      this.observer?.compiled(k.key, performance.now() - t0);
    }
    return p;
  }

  /** The explicit bind group layout of a declared kernel: params at a dynamic offset, then its buffers. */
  private layoutOf(k: Kernel): GPUBindGroupLayout {
    const sig = `${k.hasParams ? 'p' : ''}:${k.bindings!.join(',')}`;
    let l = this.layouts.get(sig);
    if (!l) {
      const C = GPUShaderStage.COMPUTE;
      const entries: GPUBindGroupLayoutEntry[] = k.hasParams ? [{ binding: 0, visibility: C, buffer: { type: 'uniform', hasDynamicOffset: true } }] : [];
      k.bindings!.forEach((a, i) =>
        entries.push({ binding: i + 1, visibility: C, buffer: { type: a === 'uniform' ? 'uniform' : a === 'rw' ? 'storage' : 'read-only-storage' } }),
      );
      this.layouts.set(sig, (l = this.device.createBindGroupLayout({ entries, label: sig })));
    }
    return l;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  /** A declared kernel's bind group for these buffers, made once (uniforms bound at offset 0, moved per dispatch). */
  private cachedBindGroup(k: Kernel, pipeline: GPUComputePipeline, buffers: (GPUBuffer | GPUBufferBinding)[]): GPUBindGroup {
    let key = k.key;
    for (const b of buffers) key += 'buffer' in b ? `|${this.bufferId(b.buffer)}@${b.offset ?? 0}+${b.size ?? ''}` : `|${this.bufferId(b)}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear(); // a crude bound: steady state refills it at once
      const entries: GPUBindGroupEntry[] = k.hasParams ? [{ binding: 0, resource: { buffer: this.arena, offset: 0, size: SLOT } }] : [];
      buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: 'buffer' in b ? b : { buffer: b } }));
      this.bindGroups.set(key, (bg = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries })));
    }
    return bg;
  }

  private computePass(): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.pass?.end();
    this.pass = null;
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  dispatch(d: Dispatch): void {
    const [x, y = 1, z = 1] = d.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    if (x > MAX_WG || y > MAX_WG || z > MAX_WG) throw new Error(`${d.kernel.key}: grid ${x}x${y}x${z} exceeds ${MAX_WG}`);
    const obs = this.observer;
    if (obs?.full()) this.flush();
    const pipeline = this.pipeline(d.kernel);
    const t0 = obs ? performance.now() : 0;
    let base = 0;
    if (d.params) {
      if (this.arenaUsed === ARENA_SLOTS) this.flush();
      base = this.arenaUsed * SLOT;
      d.params.forEach((v, i) => {
        const t = d.types?.[i] ?? 'u';
        if (t === 'f') this.arenaView.setFloat32(base + 4 * i, v, true);
        else if (t === 'i') this.arenaView.setInt32(base + 4 * i, v, true);
        else this.arenaView.setUint32(base + 4 * i, v, true);
      });
      this.arenaUsed++;
    }
    let bindGroup: GPUBindGroup;
    let offsets: number[] = [];
    if (d.kernel.bindings) {
      bindGroup = this.cachedBindGroup(d.kernel, pipeline, d.buffers);
      if (d.kernel.hasParams) offsets = [base];
    } else {
      const entries: GPUBindGroupEntry[] = [];
      if (d.params) entries.push({ binding: 0, resource: { buffer: this.arena, offset: base, size: Math.max(16, Math.ceil(d.params.length / 4) * 16) } });
      d.buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: 'buffer' in b ? b : { buffer: b } }));
      bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    }
    const pass = obs ? this.timedPass(obs.timestamps(d.kernel.key)) : this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup, offsets);
    pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
    if (obs) obs.encoded(d, performance.now() - t0);
  }

  /** Profiling: every dispatch gets a pass of its own, whose begin and end the GPU timestamps. */
  private timedPass(timestampWrites: GPUComputePassTimestampWrites | undefined): GPUComputePassEncoder {
    this.pass?.end();
    this.encoder ??= this.device.createCommandEncoder();
    this.pass = this.encoder.beginComputePass(timestampWrites ? { timestampWrites } : {});
    return this.pass;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes <= 0) return;
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.observer?.copied(bytes);
  }

  /** Zero `bytes` of a buffer from `offset` (both multiples of 4), in order with the encoded dispatches. */
  clear(buffer: GPUBuffer, offset: number, bytes: number): void {
    if (bytes <= 0) return;
    this.commandEncoder().clearBuffer(buffer, offset, Math.ceil(bytes / 4) * 4);
  }

  /** Submit everything encoded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.pass = null;
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.arenaUsed * SLOT);
    this.observer?.beforeSubmit(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.arenaUsed = 0;
    this.stats.submits++;
    this.observer?.afterSubmit();
  }

  /** Upload host data. Pending commands may still read a recycled buffer, so they go first. */
  write(buffer: GPUBuffer, data: ArrayBufferView, offsetBytes = 0): void {
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    this.device.queue.writeBuffer(buffer, offsetBytes, padded as Uint8Array<ArrayBuffer>); // (the DOM's BufferSource type, for the browser demo's typecheck)
  }

  /** Read `bytes` from a buffer: flush, copy into a mappable staging buffer, wait. */
  async read(buffer: GPUBuffer, bytes: number, offsetBytes = 0): Promise<ArrayBuffer> {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const idx = this.staging.findIndex((s) => s.size >= size);
    const staging =
      idx >= 0 ? this.staging.splice(idx, 1)[0]! : this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(buffer, offsetBytes, staging, 0, size);
    this.flush();
    this.stats.readbacks++;
    await staging.mapAsync(GPUMapMode.READ, 0, size).catch((e: unknown) => {
      throw lostReason ? lostError() : e; // a device lost mid-read rejects the map: say why
    });
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.staging.push(staging);
    throwGpuErrors();
    return out;
  }

  /** Wait for the queue to drain (timings, tests). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    throwGpuErrors();
  }

  destroy(): void {
    this.observer?.destroyed();
    this.observer = null;
    this.pass = null;
    this.encoder = null;
    this.bindGroups.clear();
    this.pool.trim();
    for (const s of this.staging) s.destroy();
    this.staging = [];
    this.arena.destroy();
    this.pipelines.clear();
  }
}

function padTo4(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
  out.set(b);
  return out;
}

let runtime: Runtime | null = null;

// A lost device (driver reset, GPU out of memory, an external destroy()) would otherwise make every later op a silent
// no-op and every read garbage: remember Dawn's reason and throw it from the next op instead.
let lostReason: string | null = null;
onDeviceLost((reason) => {
  if (runtime) lostReason = reason;
});

function lostError(): Error {
  return new Error(`${lostReason}; the GPU state is gone: dispose() and init() again (or restart the process)`);
}

/** Acquire the device (once) and the runtime. Every op needs this first. */
export async function init(): Promise<Runtime> {
  if (runtime) return runtime;
  const ctx = await getGpu();
  if (runtime) return runtime;
  runtime = new Runtime(ctx);
  // DAWNGRAD_PROFILE=1: profile the whole process and print the table at dispose() (loaded only then: no cycle)
  if (globalThis.process?.env.DAWNGRAD_PROFILE === '1') (await import('./profile.ts')).startProfile({ report: 'stderr' });
  return runtime;
}

/** The runtime, for synchronous op code. */
export function rt(): Runtime {
  if (lostReason) throw lostError();
  if (!runtime) {
    gpuSync(); // throws the "call init()" error
    throw new Error('dawngrad: runtime not initialised');
  }
  return runtime;
}

/** Release every GPU resource and the device so node can exit. */
export function dispose(): void {
  runtime?.destroy();
  runtime = null;
  lostReason = null;
  destroyGpu();
}

/** Split a 1-D count of workgroups into a grid whose x fits the 65,535 limit. Kernels rebuild the index with `nx`. */
export function grid(workgroups: number): [number, number] {
  if (workgroups <= MAX_WG) return [Math.max(1, workgroups), 1];
  const y = Math.ceil(workgroups / MAX_WG);
  return [Math.ceil(workgroups / y), y];
}
