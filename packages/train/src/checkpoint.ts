// Training checkpoints: the adapter, the optimiser's moments and the trainer's position (step, epoch, batch within
// the epoch, seed), written into a temporary directory and renamed into place — a run directory never holds a
// half-written checkpoint, and a kill at any moment leaves the previous one intact.
import { mkdir, rename, rm, writeFile, readFile, open } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { writeSafetensors, SafetensorsFile } from '@dawngrad/model';

export interface TrainerState {
  /** optimizer steps done */
  step: number;
  epoch: number;
  /** batches of `epoch` already consumed */
  batchInEpoch: number;
  seed: number;
  /** metrics history so far (to rebuild the loss curve after a resume) */
  history: { step: number; loss: number; lr: number; gradNorm: number }[];
  bestValF1: number | null;
}

export const CHECKPOINT_DIR = 'checkpoint';

/** Write a file and fsync it. */
export async function writeDurable(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data);
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace directory `dir` atomically with what `fill(tmp)` writes into a fresh sibling temp directory: rename the old
 * one aside, the new one in, then delete the old. A crash leaves either the old or the new, plus at most a stray temp.
 */
export async function replaceDirAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.${basename(dir)}.tmp-${process.pid}`);
  const old = join(parent, `.${basename(dir)}.old-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await fill(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}

export interface OptimizerMoments {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export async function saveCheckpoint(
  runDir: string,
  state: TrainerState,
  moments: OptimizerMoments,
  names: string[],
  saveAdapter: (dir: string) => Promise<void>,
): Promise<void> {
  await replaceDirAtomic(join(runDir, CHECKPOINT_DIR), async (tmp) => {
    await saveAdapter(join(tmp, 'adapter'));
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    names.forEach((n, i) => {
      tensors[`m.${n}`] = { dtype: 'F32', shape: [moments.m[i]!.length], data: moments.m[i]! };
      tensors[`v.${n}`] = { dtype: 'F32', shape: [moments.v[i]!.length], data: moments.v[i]! };
    });
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { step: String(moments.step) });
    await writeDurable(join(tmp, 'trainer_state.json'), JSON.stringify(state, null, 1));
  });
}

export async function loadCheckpoint(runDir: string, names: string[]): Promise<{ state: TrainerState; moments: OptimizerMoments; adapterDir: string }> {
  const dir = join(runDir, CHECKPOINT_DIR);
  if (!existsSync(join(dir, 'trainer_state.json'))) throw new Error(`--resume: no checkpoint in ${runDir} (expected ${dir}/trainer_state.json)`);
  const state = JSON.parse(await readFile(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;
  const f = await SafetensorsFile.open(join(dir, 'optimizer.safetensors'));
  try {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (const n of names) {
      if (!f.has(`m.${n}`)) throw new Error(`${dir}/optimizer.safetensors: no moments for ${n} (another adapter layout?)`);
      m.push((await f.readTensor(`m.${n}`)).data as Float32Array);
      v.push((await f.readTensor(`v.${n}`)).data as Float32Array);
    }
    return { state, moments: { step: Number(f.metadata.step ?? state.step), m, v }, adapterDir: join(dir, 'adapter') };
  } finally {
    await f.close();
  }
}
