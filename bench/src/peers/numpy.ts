// Peer: numpy in a python3 subprocess (bench/peers/numpy_ops.py): OpenBLAS sgemm and numpy ufuncs on the CPU.
import { spawnSync } from 'node:child_process';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../peers/numpy_ops.py');

export type NumpyCase =
  | { op: 'matmul'; M: number; N: number; K: number; transA?: boolean; transB?: boolean }
  | { op: 'softmax' | 'sum_rows'; rows: number; cols: number }
  | { op: 'sum_all'; n: number };

export interface NumpyRun {
  numpy: string;
  blas: string;
  threads: unknown;
  results: { p50_ms: number; min_ms: number; cpu_ms: number; samples: number }[];
}

/** Time every case in one python3 process, or null (with the reason logged) when numpy is not importable. */
export function runNumpy(cases: NumpyCase[], budgetMs: number, log: (line: string) => void): NumpyRun | null {
  const env = { ...process.env };
  // set on this machine for other work; they can make OpenBLAS pick slow kernels, so the peer runs without them
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync('python3', [SCRIPT], { input: JSON.stringify({ budget_ms: budgetMs, min_iters: 3, cases }), env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.error || r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim().split('\n').pop() || `exit ${r.status}`);
    log(`numpy peer unavailable: ${why}`);
    return null;
  }
  const out = JSON.parse(r.stdout) as NumpyRun;
  log(`numpy ${out.numpy}, BLAS: ${out.blas}; ${JSON.stringify(out.threads)}`);
  return out;
}
