// Training checkpoints: the adapter, the optimiser's moments and the trainer's position (step, epoch, batch within
// the epoch, seed), written into a temporary directory and renamed into place — a run directory never holds a
// half-written checkpoint, and a kill at any moment leaves the previous one intact. A checkpoint also records the
// options that fix the run's trajectory and a fingerprint of the base model, so a --resume that would silently
// continue a different run is refused. The run directory itself (who may write it, and when) is run-dir.ts.
import { mkdir, rename, rm, writeFile, readFile, open } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname, basename, resolve } from 'node:path';
import { writeSafetensors, SafetensorsFile, modelFingerprint } from '@dawngrad/model';
import type { TrainOptions } from './options.ts';

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
  /** --calibrate validation: the best epoch's validation label prior (adapter-best/ is scored with it after a resume) */
  bestPrior?: number[] | null;
  /** the options that shape the trajectory (see trajectoryOptions); a resume with other values is refused */
  options?: Record<string, unknown>;
  /** the base model's fingerprint (modelFingerprint: file sizes, header and sampled-data hashes); a resume on other weights is refused */
  model?: Record<string, string>;
}

/** Options a resumed run must share with the run it continues: they fix the data order and the adapter's shape. */
const FIXED: readonly (keyof TrainOptions)[] = [
  'model', 'data', 'targets', 'r', 'alpha', 'epochs', 'batchSize', 'gradAccum', 'maxTrain', 'maxSteps', 'seed', 'system', 'bucketWindow',
  'balance', 'rslora', 'maxLength',
];
/** Optimiser settings a resume may change (e.g. a lower --lr after a divergence): recorded, and a change is reported. */
const TUNABLE: readonly (keyof TrainOptions)[] = ['lr', 'weightDecay', 'clip', 'schedule', 'warmup', 'dropout', 'labelSmoothing', 'calibrate', 'precision'];
/** The "off" value of an optional knob is recorded as null, like its absence (checkpoints from before the knob) */
const OFF: Partial<Record<keyof TrainOptions, unknown>> = { balance: 'none', rslora: false, labelSmoothing: 0, calibrate: 'none', precision: 'f32' };

export function trajectoryOptions(o: TrainOptions): Record<string, unknown> {
  return Object.fromEntries([...FIXED, ...TUNABLE].map((k) => [k, k === 'model' || k === 'data' ? resolve(o[k]) : o[k] === OFF[k] ? null : o[k] ?? null]));
}

/**
 * Refuse a --resume whose fixed options differ from the checkpoint's, naming the first difference. Returns a line per
 * optimiser setting that changed (the caller logs them).
 */
export function checkResumeOptions(o: TrainOptions, state: TrainerState, runDir: string): string[] {
  if (!state.options) return []; // a checkpoint from before options were recorded
  const now = trajectoryOptions(o);
  const was = (k: string) => JSON.stringify(state.options![k] ?? null);
  for (const k of FIXED) {
    if (was(k) !== JSON.stringify(now[k])) {
      throw new Error(`--resume: ${runDir} was trained with ${k} = ${was(k)}, this run has ${JSON.stringify(now[k])}; resume with the same value`);
    }
  }
  return TUNABLE.filter((k) => was(k) !== JSON.stringify(now[k])).map((k) => `resuming with ${k} = ${JSON.stringify(now[k])} (was ${was(k)})`);
}

/** Refuse a --resume whose base model is not the one the checkpoint was trained on (same path, other weights or config). */
export function checkResumeModel(modelDir: string, state: TrainerState, runDir: string): void {
  if (!state.model) return; // a checkpoint from before fingerprints were recorded
  const now = modelFingerprint(modelDir);
  const files = [...new Set([...Object.keys(state.model), ...Object.keys(now)])].sort();
  const changed = files.filter((f) => state.model![f] !== now[f]);
  if (changed.length > 0) {
    const what = changed.map((f) => (now[f] === undefined ? `${f} is gone` : state.model![f] === undefined ? `${f} is new` : `${f} differs`)).join(', ');
    throw new Error(`--resume: the base model ${modelDir} is not the one ${runDir} was trained on (${what}); resume with that model, or start a new run`);
  }
}

/** The trainer state of the checkpoint in `runDir` (after requireCheckpoint; read where recoverDir would put it back from). */
export async function readTrainerState(runDir: string): Promise<TrainerState> {
  const path = join(findCheckpoint(runDir) ?? join(runDir, CHECKPOINT_DIR), 'trainer_state.json');
  try {
    return JSON.parse(await readFile(path, 'utf8')) as TrainerState;
  } catch (e) {
    throw new Error(`--resume: ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
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
  await recoverDir(dir); // a run killed mid-replace left its temp or its old copy behind
  const tmp = join(parent, `.${basename(dir)}.tmp-${process.pid}`);
  const old = join(parent, `.${basename(dir)}.old-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await fill(tmp);
    await syncDir(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await syncDir(parent); // the renames themselves survive a power cut
  await rm(old, { recursive: true, force: true });
}

/** fsync a directory (its entries), best effort: not every platform can open one. */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r').catch(() => null);
  if (!d) return;
  await d.sync().catch(() => {});
  await d.close();
}

/**
 * Undo what a kill in the middle of replaceDirAtomic(dir) left: between the two renames, `dir` is missing and its
 * previous version waits as `.name.old-PID` — put it back. Stray `.name.tmp-PID` (a half-filled new version) and
 * `.name.old-PID` (a replaced version not yet deleted) directories are removed.
 */
export async function recoverDir(dir: string): Promise<void> {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const prefix = `.${basename(dir)}.`;
  const strays = readdirSync(parent).filter((n) => n.startsWith(prefix) && /\.(tmp|old)-\d+$/.test(n));
  const old = strays.find((n) => /\.old-\d+$/.test(n));
  if (!existsSync(dir) && old) await rename(join(parent, old), dir);
  for (const n of strays) await rm(join(parent, n), { recursive: true, force: true }); // (old is gone if it went back)
}

/**
 * Where the checkpoint of `runDir` is, reading only: `checkpoint/`, or — after a kill between replaceDirAtomic's two
 * renames — the previous version that recoverDir would put back. null when there is none.
 */
export function findCheckpoint(runDir: string): string | null {
  const dir = join(runDir, CHECKPOINT_DIR);
  if (existsSync(join(dir, 'trainer_state.json'))) return dir;
  if (existsSync(dir) || !existsSync(runDir)) return null;
  const old = readdirSync(runDir).find((n) => /^\.checkpoint\.old-\d+$/.test(n) && existsSync(join(runDir, n, 'trainer_state.json')));
  return old ? join(runDir, old) : null;
}

/** Throw the one-line reason `--resume` cannot continue the run in `runDir` (cheap, and changes nothing). */
export function requireCheckpoint(runDir: string): void {
  if (!findCheckpoint(runDir)) {
    throw new Error(`--resume: no checkpoint in ${runDir} (expected ${join(runDir, CHECKPOINT_DIR)}/trainer_state.json)`);
  }
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
  await recoverDir(dir); // a kill between two renames: put the previous checkpoint back (the caller holds the run's lock)
  requireCheckpoint(runDir);
  const state = await readTrainerState(runDir);
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

/** --resume: a checkpoint is there, made with the same options and the same base model. Returns its state. */
export async function checkResume(o: TrainOptions, log: (line: string) => void): Promise<TrainerState> {
  requireCheckpoint(o.out);
  const state = await readTrainerState(o.out);
  for (const change of checkResumeOptions(o, state, o.out)) log(change);
  checkResumeModel(o.model, state, o.out);
  return state;
}
