// Examples → GPU batches. Training rows are prompt + answer, right-padded to the longest row of the batch (dynamic
// padding), with the answer's positions and targets so the model computes lm_head only where the loss needs it.
import { Tensor } from '@dawngrad/tensor';
import type { Example } from './prompts.ts';
import { mulberry32, shuffleInPlace } from './rng.ts';

export interface TrainBatch {
  B: number;
  T: number;
  inputIds: Tensor; // i32 [B, T]
  attentionMask: Tensor; // i32 [B, T]
  /** flat rows of [B*T] whose logits predict an answer token, i32 [N] */
  logitsAt: Tensor;
  /** the answer token each of those rows predicts, host copy (the loss uploads it) */
  targets: Int32Array;
  /** tokens in the batch that are not padding */
  tokens: number;
  dispose(): void;
}

export const PAD_ID = 0;

/** Build one training batch: row = prompt ‖ answer, loss rows = the positions just before each answer token. */
export function trainBatch(rows: readonly Example[]): TrainBatch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.prompt.length + r.answer.length));
  const ids = new Int32Array(B * T).fill(PAD_ID);
  const mask = new Int32Array(B * T);
  const at: number[] = [];
  const targets: number[] = [];
  let tokens = 0;
  rows.forEach((r, b) => {
    ids.set(r.prompt, b * T);
    ids.set(r.answer, b * T + r.prompt.length);
    const n = r.prompt.length + r.answer.length;
    mask.fill(1, b * T, b * T + n);
    tokens += n;
    for (let j = 0; j < r.answer.length; j++) {
      at.push(b * T + r.prompt.length - 1 + j);
      targets.push(r.answer[j]!);
    }
  });
  const inputIds = Tensor.fromArray(ids, [B, T], 'i32');
  const attentionMask = Tensor.fromArray(mask, [B, T], 'i32');
  const logitsAt = Tensor.fromArray(Int32Array.from(at), [at.length], 'i32');
  return {
    B,
    T,
    inputIds,
    attentionMask,
    logitsAt,
    targets: Int32Array.from(targets),
    tokens,
    dispose() {
      inputIds.dispose();
      attentionMask.dispose();
      logitsAt.dispose();
    },
  };
}

export interface OrderOptions {
  batchSize: number;
  seed: number;
  /** sort by length inside windows of this many batches before batching (0: off), to cut padding */
  bucketWindow?: number;
  dropLast?: boolean;
}

/**
 * The data order of one epoch as lists of example indices: a seeded shuffle, optionally length-bucketed (sorted
 * within windows, then the batches shuffled again so lengths don't trend through the epoch).
 */
export function epochBatches(examples: readonly Example[], epoch: number, o: OrderOptions): number[][] {
  const rand = mulberry32((o.seed * 1_000_003 + epoch) >>> 0);
  const idx = [...examples.keys()];
  shuffleInPlace(idx, rand);
  const win = (o.bucketWindow ?? 0) * o.batchSize;
  if (win > 0) {
    for (let s = 0; s < idx.length; s += win) {
      const part = idx.slice(s, s + win).sort((a, b) => len(examples[a]!) - len(examples[b]!));
      idx.splice(s, part.length, ...part);
    }
  }
  const batches: number[][] = [];
  for (let s = 0; s < idx.length; s += o.batchSize) {
    const b = idx.slice(s, s + o.batchSize);
    if (b.length < o.batchSize && o.dropLast) break;
    batches.push(b);
  }
  if (win > 0) shuffleInPlace(batches, rand);
  return batches;
}

function len(e: Example): number {
  return e.prompt.length + e.answer.length;
}
