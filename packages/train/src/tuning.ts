// Before a GPU trains: its matmul tiles, measured once per adapter. The table of the fastest tile per shape class
// (tuneMatmul in @dawngrad/tensor) is kept in a cache file per adapter, so a second run — or several runs started side by
// side after one that tuned — measures nothing. CPU adapters have no tiles: nothing happens there.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { rt, kernelPolicy, tuneMatmul, tunedTable, loadTuned, shapeClass, dawnToggles, setDawnToggles, type TuneResult } from '@dawngrad/tensor';
import { stepMatmulShapes, type ModelConfig } from '@dawngrad/model';
import { writeFileAtomic } from './svg.ts';
import { GPU_TOGGLES } from './gpu-facts.ts';

export interface PrepareKernelsOptions {
  /** row counts of the step's products (B·T, and the shared prefix's length when there is one) */
  rows: number[];
  /** rows of the head (answer positions a batch) */
  headRows: number;
  /** f16 weights (--precision mixed): their products are tuned, tensor-core tilings included */
  f16: boolean;
  log?: (line: string) => void;
  /** where the per-adapter tables live; default $DAWNGRAD_TUNE_DIR or ~/.cache/dawngrad */
  cacheDir?: string;
}

/**
 * Before init(): --precision mixed needs shader-f16, which Dawn offers on NVIDIA only with GPU_TOGGLES — turn them on
 * unless the user chose toggles (DAWNGRAD_DAWN_TOGGLES or setDawnToggles).
 */
export function dawnTogglesFor(precision: 'f32' | 'mixed'): void {
  if (precision === 'mixed' && dawnToggles().length === 0) setDawnToggles(GPU_TOGGLES.split(','));
}

/**
 * The row counts (M) of a run's products, one in every shape class it meets: training batches from the shortest to
 * the longest (and the powers of two between), evaluation's prefill and decode, and the shared prompt prefix.
 */
export function runRows(o: { batchSize: number; evalBatchSize: number }, trainLengths: number[], evalLengths: number[], prefixLength: number): number[] {
  const [lo, hi] = [o.batchSize * Math.min(...trainLengths), o.batchSize * Math.max(...trainLengths)];
  const rows = [lo, hi, o.evalBatchSize * Math.max(1, ...evalLengths), o.evalBatchSize, prefixLength];
  for (let p = 2 ** Math.ceil(Math.log2(Math.max(lo, 1))); p < hi; p *= 2) rows.push(p);
  return rows;
}

/** The cache file of this adapter: its vendor, device and driver description in the name. */
export function tuneCachePath(dir = process.env.DAWNGRAD_TUNE_DIR ?? join(homedir(), '.cache', 'dawngrad')): string {
  const i = rt().ctx.info;
  const slug = `${i.vendor}-${i.architecture}-${i.device}-${i.description}`.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-|-$/g, '');
  return join(dir, `matmul-tiles-${slug || 'adapter'}.json`);
}

/** Load this adapter's measured tiles, measure the classes the model's step still lacks, save. Returns what it measured. */
export async function prepareKernels(cfg: ModelConfig, o: PrepareKernelsOptions): Promise<TuneResult[]> {
  if (kernelPolicy().matmul !== 'tiled') return [];
  const file = tuneCachePath(o.cacheDir);
  if (existsSync(file)) {
    try {
      loadTuned(JSON.parse(readFileSync(file, 'utf8')).tiles ?? {});
    } catch {
      o.log?.(`tune: ${file} is unreadable: measuring again`);
    }
  }
  const before = Object.keys(tunedTable()).length;
  const t0 = performance.now();
  const results = await tuneMatmul(
    stepMatmulShapes(cfg, o.rows, o.headRows, o.f16).filter((s) => !(shapeClass(s.M, s.N, s.K, 1, !!s.transA, !!s.transB, !!s.f16B) in tunedTable())),
    {},
  );
  if (results.length) {
    o.log?.(`tuned ${results.length} matmul shape classes on this GPU in ${((performance.now() - t0) / 1000).toFixed(1)} s (${before} known before); table in ${file}`);
    // whole or not at all (runs started side by side may read it); the table is a cache, so a failed write only costs
    // the next run the same measurement
    await writeFileAtomic(file, JSON.stringify({ adapter: rt().ctx.info, tiles: tunedTable() }, null, 1)).catch((e: Error) =>
      o.log?.(`tune: ${e.message}; measured again next run`),
    );
  }
  return results;
}

