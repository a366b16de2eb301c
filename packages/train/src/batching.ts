// Examples → GPU batches. Training rows are prompt + answer, right-padded to the longest row of the batch (dynamic
// padding), with the answer's positions and targets so the model computes lm_head only where the loss needs it.
//
// Every prompt starts with the same system turn, so a batch's rows share their first ~25 tokens. With sharePrefix the
// batch carries that common prefix once ([1, P]) and only each row's suffix ([B, T - P]): the model runs the prefix a
// single time and lets the suffixes attend to it (MistralForCausalLM, Batch.prefix), same loss, ~a third fewer rows.
import { Tensor } from '@dawngrad/tensor';
import { MIN_SHARED_PREFIX, commonPrefixLength, type ModelConfig } from '@dawngrad/model';
import type { Example } from './prompts.ts';
import { mulberry32, shuffleInPlace } from './rng.ts';
import type { BalanceMode } from './options.ts';

export interface TrainBatch {
  B: number;
  /** the longest row, prefix included (the width of the plain batch) */
  T: number;
  /** the tokens every row starts with, run once, i32 [1, P]; absent in a plain batch */
  prefix?: Tensor;
  inputIds: Tensor; // i32 [B, T - P]: each row after the shared prefix (the whole row when there is none)
  attentionMask: Tensor; // i32 [B, T - P]
  /** flat rows of [B*(T - P)] whose logits predict an answer token, i32 [N] */
  logitsAt: Tensor;
  /** the answer token each of those rows predicts, host copy (the loss uploads it) */
  targets: Int32Array;
  /** tokens in the batch that are not padding (the shared prefix counted in every row, as the plain batch has them) */
  tokens: number;
  dispose(): void;
}

export interface BatchOptions {
  /** run the rows' common token prefix once (when it is at least minPrefix tokens long and B ≥ 2); default false */
  sharePrefix?: boolean;
  /** shortest prefix worth sharing; default MIN_SHARED_PREFIX */
  minPrefix?: number;
}

export const PAD_ID = 0;
export { MIN_SHARED_PREFIX };

/** The longest token prefix all rows' prompts share, each row keeping its last prompt token (commonPrefixLength). */
export function sharedPrefixLength(rows: readonly { prompt: Int32Array }[]): number {
  return commonPrefixLength(rows.map((r) => r.prompt));
}

/** Build one training batch: row = prompt ‖ answer, loss rows = the positions just before each answer token. */
export function trainBatch(rows: readonly Example[], o: BatchOptions = {}): TrainBatch {
  const B = rows.length;
  if (B === 0) throw new Error('trainBatch: needs at least one row');
  const T = Math.max(...rows.map((r) => r.prompt.length + r.answer.length));
  let P = o.sharePrefix ? sharedPrefixLength(rows) : 0;
  if (B < 2 || P < (o.minPrefix ?? MIN_SHARED_PREFIX)) P = 0; // a plain batch
  const S = T - P; // the suffix width: row b's token t sits at column t - P
  const ids = new Int32Array(B * S).fill(PAD_ID);
  const mask = new Int32Array(B * S);
  const at: number[] = [];
  const targets: number[] = [];
  let tokens = 0;
  rows.forEach((r, b) => {
    ids.set(r.prompt.subarray(P), b * S);
    ids.set(r.answer, b * S + r.prompt.length - P);
    const n = r.prompt.length + r.answer.length;
    mask.fill(1, b * S, b * S + n - P);
    tokens += n;
    for (let j = 0; j < r.answer.length; j++) {
      at.push(b * S + r.prompt.length - P - 1 + j);
      targets.push(r.answer[j]!);
    }
  });
  const prefix = P > 0 ? Tensor.fromArray(rows[0]!.prompt.slice(0, P), [1, P], 'i32') : undefined;
  const inputIds = Tensor.fromArray(ids, [B, S], 'i32');
  const attentionMask = Tensor.fromArray(mask, [B, S], 'i32');
  const logitsAt = Tensor.fromArray(Int32Array.from(at), [at.length], 'i32');
  return {
    B,
    T,
    ...(prefix && { prefix }),
    inputIds,
    attentionMask,
    logitsAt,
    targets: Int32Array.from(targets),
    tokens,
    dispose() {
      prefix?.dispose();
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

// ---- will a batch fit the device? ----------------------------------------------------------------------------------

/**
 * The largest single GPU buffer one forward + backward over B rows of T tokens makes, in bytes, and what it is: the
 * attention scores [B, H, T, T] (they grow with T²), the MLP activations [B*T, I] or a projection [B*T, max(C, H*D)].
 * Generation's KV cache [B, T, KV, D] is never larger than the projections; logits are only made at a few rows.
 */
export function largestBatchBuffer(cfg: ModelConfig, B: number, T: number): { bytes: number; what: string } {
  const H = cfg.numAttentionHeads;
  const parts: [number, string][] = [
    [B * H * T * T, `its attention scores [${B}, ${H}, ${T}, ${T}]`],
    [B * T * cfg.intermediateSize, `its MLP activations [${B * T}, ${cfg.intermediateSize}]`],
    [B * T * Math.max(cfg.hiddenSize, H * cfg.headDim), `its projections [${B * T}, ${Math.max(cfg.hiddenSize, H * cfg.headDim)}]`],
  ];
  const [n, what] = parts.reduce((a, b) => (b[0] > a[0] ? b : a));
  return { bytes: 4 * n, what }; // f32
}

/**
 * Refuse, before any step runs, a batch of B rows of up to T tokens whose largest buffer is over the adapter's
 * `limit` (maxStorageBufferBindingSize), saying which --max-length or batch size would fit. `rows` names the rows
 * ("training row"), `batchFlag` the flag that sets B.
 */
export function checkBatchFits(cfg: ModelConfig, limit: number, B: number, T: number, rows: string, batchFlag: string): void {
  const need = largestBatchBuffer(cfg, B, T);
  if (need.bytes <= limit) return;
  let t = T;
  while (t > 1 && largestBatchBuffer(cfg, B, t).bytes > limit) t--;
  let b = B;
  while (b > 1 && largestBatchBuffer(cfg, b, T).bytes > limit) b--;
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  const fixes = [largestBatchBuffer(cfg, B, t).bytes <= limit ? `--max-length ${t}` : null,
    largestBatchBuffer(cfg, b, T).bytes <= limit ? `${batchFlag} ${b}` : null].filter(Boolean);
  throw new Error(
    `the longest ${rows} has ${T} tokens: at ${batchFlag} ${B} ${need.what} need ${mib(need.bytes)}, over this adapter's ` +
      `maxStorageBufferBindingSize (${mib(limit)})` + (fixes.length ? `; use ${fixes.join(' or ')}` : ''),
  );
}

/**
 * Class-balanced training rows, as indices into `labels` (the split's labels in file order), before the epoch shuffle:
 *   none  the first n rows (what --max-train n keeps);
 *   down  the first k rows of each class, k = min(⌊n / K⌋, the rarest class's count in `labels`), interleaved
 *         class by class (0, 1, 2, 0, 1, 2, …) — every class equally often, fewer rows;
 *   up    the first n rows, each class repeated cyclically up to the largest class's count among them, interleaved
 *         the same way — every class equally often, every row kept (the rare ones several times per epoch).
 * scripts/recipe/search.py's balance_rows is the same function.
 */
export function balanceRows(labels: readonly number[], mode: BalanceMode, n = labels.length, numClasses = 3): number[] {
  n = Math.min(n, labels.length);
  if (mode === 'none') return [...Array(n).keys()];
  const byClass = (rows: number) => {
    const by: number[][] = Array.from({ length: numClasses }, () => []);
    for (let i = 0; i < rows; i++) by[labels[i]!]!.push(i);
    return by;
  };
  const out: number[] = [];
  if (mode === 'up') {
    const by = byClass(n);
    const m = Math.max(...by.map((b) => b.length));
    for (let j = 0; j < m; j++) for (const b of by) if (b.length > 0) out.push(b[j % b.length]!);
    return out;
  }
  const by = byClass(labels.length);
  const k = Math.min(Math.floor(n / numClasses), ...by.map((b) => b.length));
  if (k === 0) {
    const empty = by.findIndex((b) => b.length === 0);
    throw new Error(empty >= 0 ? `--balance down: class ${empty} has no train rows` : `--balance down: ${n} rows leave none per class`);
  }
  for (let j = 0; j < k; j++) for (const b of by) out.push(b[j]!);
  return out;
}
