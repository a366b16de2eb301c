// GPU timing with tinybench: every sample is one call plus a wait for the device (a readback or queue drain), so it
// measures the GPU work, not just the encoding. The first call (pipeline compiles, uploads) is timed apart and left out.
import { Bench } from 'tinybench';

export interface Timing {
  /** median ms of the timed samples */
  p50: number;
  min: number;
  samples: number;
  /** ms of the first, untimed call (includes shader compiles) */
  firstMs: number;
  /** CPU ms of this process per call (JS, Dawn and lavapipe's threads), over the timed samples */
  cpuMs: number;
}

/**
 * Time `run` (which must not return before the device finished its work). At least `minIters` samples, or as many as
 * fit in `budgetMs`; a case whose first call already took longer than `budgetMs` gets `minIters` = 1 sample.
 */
export async function timeGpu(run: () => Promise<void>, budgetMs: number, minIters = 3): Promise<Timing> {
  const t0 = performance.now();
  await run();
  const firstMs = performance.now() - t0;
  // a second warm call: the first may include compiles, allocation and lazy uploads
  const t1 = performance.now();
  await run();
  const secondMs = performance.now() - t1;
  const iterations = secondMs > budgetMs ? 1 : minIters;
  const bench = new Bench({ time: budgetMs, iterations, warmup: false, throws: true });
  bench.add('case', run);
  const c0 = process.cpuUsage();
  await bench.run();
  const c = process.cpuUsage(c0);
  const r = bench.tasks[0]!.result;
  if (r.state !== 'completed') throw new Error(`timing: task ended in state ${r.state}`);
  const samples = r.latency.samplesCount;
  return { p50: r.latency.p50, min: r.latency.min, samples, firstMs, cpuMs: (c.user + c.system) / 1000 / samples };
}

/** Wall-clock p50 and CPU time per call, the two figures every bench reports. */
export interface Ms {
  wall: number;
  cpu: number;
}
export const ms = (t: Timing): Ms => ({ wall: t.p50, cpu: t.cpuMs });

export const gflops = (flops: number, ms: number) => flops / ms / 1e6;
export const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;

/**
 * Rows for one case from per-implementation times: the wall-clock row and the CPU row (CPU ms / cores, the time an
 * idle machine would need if the work spread over every core). `rate` turns ms into the unit (GFLOP/s, GB/s).
 */
export function rowsFor(name: string, unit: string, peers: string[], times: Record<string, Ms | null>, rate: (ms: number) => number, cores: number, notes: Record<string, unknown>) {
  const pick = (k: string, f: (m: Ms) => number) => (times[k] ? rate(f(times[k]!)) : null);
  const make = (f: (m: Ms) => number) => ({ case: name, unit, ours: pick('ours', f), peers: Object.fromEntries(peers.map((p) => [p, pick(p, f)])), notes: { ...notes, ms: times } });
  return { wall: make((m) => m.wall), cpu: make((m) => m.cpu / cores) };
}
