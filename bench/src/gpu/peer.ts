// The PyTorch peer of the GPU benches (bench/peers/torch_cuda.py) as a subprocess, and GPU timing by repeated calls.
import { spawnSync } from 'node:child_process';
import { peerScript, torchPython } from './env.ts';

export interface PeerRun<T> {
  out: T | null;
  /** why there is no result (no torch, no CUDA, a crash), printed by the bench; null when out is there */
  skipped: string | null;
}

/**
 * torch_cuda.py with `args` (+ --device: DAWNGRAD_TORCH_DEVICE or cuda). Its progress lines are logged; its last stdout
 * line is the JSON result, or {"skipped": why} when torch has no CUDA device.
 */
export function torchPeer<T>(args: string[], log: (l: string) => void, timeoutMs: number): PeerRun<T> {
  const py = torchPython();
  if (!py.python) return { out: null, skipped: py.why };
  const device = process.env.DAWNGRAD_TORCH_DEVICE ?? 'cuda';
  const r = spawnSync(py.python, [peerScript('torch_cuda.py'), ...args, '--device', device], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 26 });
  for (const l of r.stderr.trim().split('\n').filter(Boolean)) log(`  torch: ${l}`);
  if (r.error || r.status !== 0) {
    const why = r.error ? `${r.error.message}${r.signal ? ` (${r.signal} after ${timeoutMs / 1000} s)` : ''}` : `exit ${r.status}`;
    return { out: null, skipped: `torch_cuda.py ${args[0]} failed: ${why}` };
  }
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let out: T & { skipped?: string };
  try {
    out = JSON.parse(last);
  } catch {
    return { out: null, skipped: `torch_cuda.py ${args[0]} printed no JSON result (last line: ${last.slice(0, 200)})` };
  }
  return out.skipped ? { out: null, skipped: out.skipped } : { out, skipped: null };
}

/**
 * Median ms per call of `run`: after a first call (compiles), samples of `reps` back-to-back calls and one `sync`, reps
 * sized so that a sample lasts ≥ 2 ms (a wait for the GPU costs tens of µs: one per call would swamp small matmuls).
 * At least 3 samples, more while `budgetMs` lasts. The PyTorch peer times the same way.
 */
export async function timeReps(run: () => void, sync: () => Promise<void>, budgetMs: number): Promise<{ ms: number; reps: number; samples: number }> {
  run();
  await sync();
  let t0 = performance.now();
  run();
  await sync();
  const one = Math.max(performance.now() - t0, 1e-4);
  const reps = Math.max(1, Math.min(256, Math.ceil(2 / one)));
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while (samples.length < 3 || performance.now() < end) {
    t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    await sync();
    samples.push((performance.now() - t0) / reps);
  }
  samples.sort((a, b) => a - b);
  const m = samples.length;
  return { ms: m % 2 ? samples[(m - 1) / 2]! : (samples[m / 2 - 1]! + samples[m / 2]!) / 2, reps, samples: m };
}
