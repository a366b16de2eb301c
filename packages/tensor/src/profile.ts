// A per-kernel GPU profiler. While it runs, every dispatch gets a compute pass of its own whose beginning and end the
// GPU timestamps (the 'timestamp-query' feature); at each flush the timestamps are resolved into a buffer and read
// back without blocking. stopProfile() waits for the last of them and returns, per kernel key, how many dispatches
// ran and how much GPU time they took, next to what the CPU spent encoding them and compiling pipelines.
//
// Where the adapter has no timestamp queries the profiler still counts dispatches and CPU encode time (mode 'cpu-only').
//
//   startProfile();            // or DAWNGRAD_PROFILE=1 for a whole process (the table goes to stderr at dispose())
//   ...one training step...
//   console.log(formatProfile(await stopProfile()));
import { rt, type Dispatch, type Runtime, type RuntimeObserver, type RuntimeStats } from './runtime.ts';

/** One kernel key's totals. */
export interface KernelProfile {
  key: string;
  count: number;
  /** GPU time between the begin and end timestamps of its passes */
  gpuMs: number;
  /** gpuMs as a percentage of all kernels' GPU time */
  share: number;
  /** CPU time in rt().dispatch for this key: uniforms, bind group, pass encoding (pipeline compiles excluded) */
  encodeMs: number;
}

export interface ProfileReport {
  mode: 'timestamp' | 'cpu-only';
  /** sorted by gpuMs (by encodeMs in cpu-only mode), largest first */
  kernels: KernelProfile[];
  /** Σ kernel GPU time */
  gpuMs: number;
  /** Σ over submits of (last end − first begin): kernels plus the gaps between them (barriers, copies, launch) */
  gpuSpanMs: number;
  /** CPU time inside rt().dispatch, all kernels */
  encodeMs: number;
  /** CPU time compiling pipelines (createShaderModule + createComputePipeline) */
  compileMs: number;
  /** each pipeline compiled while profiling, slowest first */
  compiles: { key: string; ms: number }[];
  /** host wall time from start to stop */
  wallMs: number;
  dispatches: number;
  submits: number;
  pipelines: number;
  readbacks: number;
  copies: number;
  copyBytes: number;
}

export interface ProfileOptions {
  /**
   * Rows of the table: 'key' (default) one per kernel key; 'grid' per key and grid size (`matmul:... [7,142,1]`);
   * 'params' per key and its first three uniforms (`matmul:... (1136,224,896)`: M, N, K) to tell call sites apart.
   */
  by?: 'key' | 'grid' | 'params';
  /** print the table to stderr when the runtime is disposed (what DAWNGRAD_PROFILE=1 uses) */
  report?: 'stderr';
}

const QUERIES = 4096; // the WebGPU cap on a query set: 2 timestamps per dispatch, so 2,048 dispatches per flush

interface Slot {
  querySet: GPUQuerySet;
  resolve: GPUBuffer; // QUERY_RESOLVE | COPY_SRC
  read: GPUBuffer; // MAP_READ | COPY_DST
}

interface Totals {
  count: number;
  gpuNs: number;
  encodeMs: number;
}

class Profiler implements RuntimeObserver {
  readonly timed: boolean;
  private totals = new Map<string, Totals>();
  private free: Slot[] = [];
  private slot: Slot | null = null;
  private keys: string[] = []; // the timed dispatches of the current encoder, in order
  private pending: Promise<void>[] = [];
  private gpuSpanNs = 0;
  private compiles: { key: string; ms: number }[] = [];
  private copies = 0;
  private copyBytes = 0;
  private readonly t0 = performance.now();
  private readonly stats0: RuntimeStats;

  constructor(
    private readonly runtime: Runtime,
    private readonly opts: ProfileOptions,
  ) {
    this.timed = runtime.device.features.has('timestamp-query');
    this.stats0 = { ...runtime.stats };
  }

  private entry(key: string): Totals {
    let t = this.totals.get(key);
    if (!t) this.totals.set(key, (t = { count: 0, gpuNs: 0, encodeMs: 0 }));
    return t;
  }

  private label(d: Dispatch): string {
    const [x, y = 1, z = 1] = d.workgroups;
    if (this.opts.by === 'grid') return `${d.kernel.key} [${x},${y},${z}]`;
    if (this.opts.by === 'params') return `${d.kernel.key} (${(d.params ?? []).slice(0, 3).join(',')})`;
    return d.kernel.key;
  }

  full(): boolean {
    return this.timed && this.keys.length * 2 >= QUERIES;
  }

  // In cpu-only mode each dispatch still gets a pass of its own, untimed.
  timestamps(key: string): GPUComputePassTimestampWrites | undefined {
    if (!this.timed) return undefined;
    this.slot ??= this.free.pop() ?? this.newSlot();
    const i = this.keys.length;
    this.keys.push(key);
    return { querySet: this.slot.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  encoded(d: Dispatch, cpuMs: number): void {
    const label = this.label(d);
    if (label !== d.kernel.key && this.timed) this.keys[this.keys.length - 1] = label;
    const t = this.entry(label);
    t.encodeMs += cpuMs;
    if (!this.timed) t.count++;
  }

  compiled(key: string, cpuMs: number): void {
    this.compiles.push({ key, ms: cpuMs });
  }

  copied(bytes: number): void {
    this.copies++;
    this.copyBytes += bytes;
  }

  beforeSubmit(encoder: GPUCommandEncoder): void {
    if (!this.slot || this.keys.length === 0) return;
    const n = this.keys.length * 2;
    encoder.resolveQuerySet(this.slot.querySet, 0, n, this.slot.resolve, 0);
    encoder.copyBufferToBuffer(this.slot.resolve, 0, this.slot.read, 0, n * 8);
  }

  afterSubmit(): void {
    const slot = this.slot;
    const keys = this.keys;
    this.slot = null;
    this.keys = [];
    if (!slot || keys.length === 0) {
      if (slot) this.free.push(slot);
      return;
    }
    const n = keys.length * 2;
    this.pending.push(
      slot.read.mapAsync(GPUMapMode.READ, 0, n * 8).then(() => {
        const ts = new BigUint64Array(slot.read.getMappedRange(0, n * 8));
        let first = ts[0]!;
        let last = ts[1]!;
        keys.forEach((key, i) => {
          const b = ts[2 * i]!;
          const e = ts[2 * i + 1]!;
          const t = this.entry(key);
          t.count++;
          t.gpuNs += e > b ? Number(e - b) : 0;
          if (b < first) first = b;
          if (e > last) last = e;
        });
        this.gpuSpanNs += last > first ? Number(last - first) : 0;
        slot.read.unmap();
        this.free.push(slot);
      }, () => undefined), // the device went away first (dispose() while profiling): nothing left to count
    );
  }

  private newSlot(): Slot {
    const d = this.runtime.device;
    return {
      querySet: d.createQuerySet({ type: 'timestamp', count: QUERIES }),
      resolve: d.createBuffer({ size: QUERIES * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      read: d.createBuffer({ size: QUERIES * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };
  }

  /** Wait for every resolved timestamp buffer. */
  async settle(): Promise<void> {
    while (this.pending.length) await Promise.all(this.pending.splice(0));
  }

  report(): ProfileReport {
    const s = this.runtime.stats;
    const kernels = [...this.totals.entries()].map(([key, t]) => ({ key, count: t.count, gpuMs: t.gpuNs / 1e6, share: 0, encodeMs: t.encodeMs }));
    const gpuMs = kernels.reduce((a, k) => a + k.gpuMs, 0);
    for (const k of kernels) k.share = gpuMs > 0 ? (100 * k.gpuMs) / gpuMs : 0;
    kernels.sort((a, b) => b.gpuMs - a.gpuMs || b.encodeMs - a.encodeMs);
    return {
      mode: this.timed ? 'timestamp' : 'cpu-only',
      kernels,
      gpuMs,
      gpuSpanMs: this.gpuSpanNs / 1e6,
      encodeMs: kernels.reduce((a, k) => a + k.encodeMs, 0),
      compileMs: this.compiles.reduce((a, c) => a + c.ms, 0),
      compiles: [...this.compiles].sort((x, y) => y.ms - x.ms),
      wallMs: performance.now() - this.t0,
      dispatches: s.dispatches - this.stats0.dispatches,
      submits: s.submits - this.stats0.submits,
      pipelines: s.pipelines - this.stats0.pipelines,
      readbacks: s.readbacks - this.stats0.readbacks,
      copies: this.copies,
      copyBytes: this.copyBytes,
    };
  }

  /** The runtime is being destroyed: print what has resolved so far if asked to, then free the query sets. */
  destroyed(): void {
    if (this.opts.report === 'stderr') process.stderr.write(`\n${formatProfile(this.report())}\n`);
    this.release();
    if (active === this) active = null;
  }

  release(): void {
    for (const s of [...this.free, ...(this.slot ? [this.slot] : [])]) {
      s.querySet.destroy();
      s.resolve.destroy();
      s.read.destroy();
    }
    this.free = [];
    this.slot = null;
  }
}

let active: Profiler | null = null;

/** Start profiling every dispatch (after flushing what was encoded before, so it is not counted). */
export function startProfile(opts: ProfileOptions = {}): void {
  const r = rt();
  if (active) throw new Error('startProfile: a profile is already running (call stopProfile() first)');
  r.flush();
  active = new Profiler(r, opts);
  r.observer = active;
}

/** Whether a profile is running. */
export function profiling(): boolean {
  return active !== null;
}

/** Stop profiling: wait for the GPU, then return per-kernel totals sorted by GPU time. */
export async function stopProfile(): Promise<ProfileReport> {
  const p = active;
  if (!p) throw new Error('stopProfile: no profile is running (call startProfile() first)');
  const r = rt();
  await r.sync(); // the open pass and its timestamps go out with this flush, still observed
  r.observer = null;
  active = null;
  await p.settle();
  p.release();
  return p.report();
}

/** Profile one async function: start, run, stop. */
export async function profile<T>(fn: () => Promise<T> | T, opts: ProfileOptions = {}): Promise<{ result: T; report: ProfileReport }> {
  startProfile(opts);
  try {
    const result = await fn();
    return { result, report: await stopProfile() };
  } catch (e) {
    if (active) await stopProfile().catch(() => undefined);
    throw e;
  }
}

const ms = (v: number) => v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);

/** A plain-text table of the top `top` kernels and the totals. */
export function formatProfile(r: ProfileReport, top = 15): string {
  const rows = r.kernels.slice(0, top);
  const w = Math.max(6, ...rows.map((k) => k.key.length));
  const lines = [
    `${'kernel'.padEnd(w)}  ${'count'.padStart(6)}  ${'GPU ms'.padStart(9)}  ${'share'.padStart(6)}  ${'ms/call'.padStart(8)}  ${'encode ms'.padStart(9)}`,
    ...rows.map(
      (k) =>
        `${k.key.padEnd(w)}  ${String(k.count).padStart(6)}  ${ms(k.gpuMs).padStart(9)}  ${(k.share.toFixed(1) + '%').padStart(6)}  ` +
        `${ms(k.count ? k.gpuMs / k.count : 0).padStart(8)}  ${ms(k.encodeMs).padStart(9)}`,
    ),
  ];
  const rest = r.kernels.slice(top);
  if (rest.length) {
    const g = rest.reduce((a, k) => a + k.gpuMs, 0);
    lines.push(`${`(${rest.length} more)`.padEnd(w)}  ${String(rest.reduce((a, k) => a + k.count, 0)).padStart(6)}  ${ms(g).padStart(9)}  ` +
      `${((r.gpuMs ? (100 * g) / r.gpuMs : 0).toFixed(1) + '%').padStart(6)}`);
  }
  lines.push(
    `mode ${r.mode}: GPU ${ms(r.gpuMs)} ms in kernels, ${ms(r.gpuSpanMs)} ms first-to-last per submit; ` +
      `CPU ${ms(r.encodeMs)} ms encoding dispatches, ${ms(r.compileMs)} ms compiling; wall ${ms(r.wallMs)} ms`,
    `${r.dispatches} dispatches, ${r.submits} submits, ${r.pipelines} pipelines compiled, ${r.copies} copies (${(r.copyBytes / 1e6).toFixed(1)} MB), ` +
      `${r.readbacks} readbacks`,
  );
  if (r.compiles.length) {
    lines.push(`slowest compiles: ${r.compiles.slice(0, 5).map((c) => `${c.key} ${ms(c.ms)} ms`).join(', ')}`);
  }
  return lines.join('\n');
}
