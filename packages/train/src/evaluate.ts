// Evaluation two ways, both reported:
//  - first-token scoring: one forward per batch, compare the logits of the three answers' first tokens (fast: the
//    shared system turn runs once per batch; in 'both' mode they come from the generation's prefill instead);
//  - greedy generation of the answer (up to 4 tokens, as the reference run), first word parsed; anything else is
//    invalid and counts as wrong;
//  - optionally, first-token scoring calibrated (contextual calibration, Zhao et al. 2021): a model fine-tuned on
//    skewed classes favours the frequent ones whatever the tweet says, so divide its label probabilities by the
//    prior it shows — on content-free prompts ("", "N/A", "[MASK]") or on the validation tweets — and take the argmax:
//    p̂ = softmax(s) over the three label logits, prior = mean p̂, label = argmax_k s_k − log prior_k.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, take, scope } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import { generate, type Batch, type MistralForCausalLM } from '@dawngrad/model';
import { computeMetrics, type Metrics } from './metrics.ts';
import { GENERATED_TOKENS, CONTENT_FREE_TEXTS, type PromptFormat } from './prompts.ts';
import { PAD_ID, MIN_SHARED_PREFIX, sharedPrefixLength } from './batching.ts';
import type { Progress } from './progress.ts';
import type { Calibration } from './options.ts';

export type EvalMode = 'first-token' | 'generate' | 'both';

export interface EvalOptions {
  batchSize?: number;
  mode?: EvalMode;
  /** tokens generated per answer; default GENERATED_TOKENS */
  maxNewTokens?: number;
  progress?: Progress;
  /** the texts' prompts, already tokenised (and cut to fit, PromptFormat.evalPrompts); default fmt.prompt of each text */
  prompts?: readonly Int32Array[];
  /** report first-token scoring calibrated too (needs first-token scores: mode 'first-token' or 'both') */
  calibration?: Calibration;
  /** the prior to divide out with 'validation' (measured on the validation split); absent: this set's own prior */
  prior?: readonly number[];
}

export interface EvalResult {
  n: number;
  /** by generation (when run) */
  generate?: { metrics: Metrics; predictions: number[]; invalidRate: number; outputs: number[][] };
  /** by first-token scoring (when run) */
  firstToken?: { metrics: Metrics; predictions: number[] };
  /** by calibrated first-token scoring (when asked): the prior divided out, and the result */
  calibrated?: { method: Exclude<Calibration, 'none'>; prior: number[]; metrics: Metrics; predictions: number[] };
  seconds: number;
  tokens: number;
}

/** Evaluate on (texts, labels). Rows are sorted by length into batches to cut padding; results come back in order. */
export async function evaluate(
  model: MistralForCausalLM,
  fmt: PromptFormat,
  texts: readonly string[],
  labels: readonly number[],
  o: EvalOptions = {},
): Promise<EvalResult> {
  let mode = o.mode ?? 'both';
  if (fmt.firstTokenAmbiguous) {
    if (mode === 'first-token') fmt.checkFirstTokenScoring(); // throws: asked for the one thing we cannot do
    mode = 'generate'; // 'both' keeps the half that works
  }
  const method = o.calibration ?? 'none';
  if (method !== 'none' && mode === 'generate') throw new Error(`calibration (${method}) needs first-token scores: use --eval-mode both or first-token`);
  const bs = o.batchSize ?? 64;
  const t0 = performance.now();
  const prompts = o.prompts ?? texts.map((t) => fmt.prompt(t));
  if (prompts.length !== texts.length) throw new Error(`evaluate: ${prompts.length} prompts for ${texts.length} texts`);
  const order = [...prompts.keys()].sort((a, b) => prompts[a]!.length - prompts[b]!.length);
  const ftPred = new Array<number>(texts.length).fill(-1);
  const K = fmt.firstTokens.length;
  const ftScores = new Float64Array(texts.length * K); // the label words' first-token logits, row by row
  const genPred = new Array<number>(texts.length).fill(-1);
  const outputs: number[][] = texts.map(() => []);
  const firstIds = Tensor.fromArray(Int32Array.from(fmt.firstTokens), [fmt.firstTokens.length], 'i32');
  let tokens = 0;
  let calibrated: EvalResult['calibrated'];
  try {
    for (let s = 0; s < order.length; s += bs) {
      const idx = order.slice(s, s + bs);
      const rows = idx.map((i) => prompts[i]!);
      tokens += rows.reduce((a, r) => a + r.length, 0);
      if (mode === 'first-token') {
        const scores = await firstTokenScores(model, rows, firstIds);
        idx.forEach((i, r) => {
          ftPred[i] = argmaxRow(scores, r, K);
          ftScores.set(scores.subarray(r * K, r * K + K), i * K);
        });
      } else {
        // 'both' scores the first tokens from generation's own prefill: one pass over the prompts, not two
        const g = await generate(model, rows, {
          maxNewTokens: o.maxNewTokens ?? GENERATED_TOKENS,
          stopTokens: [fmt.endToken],
          padId: PAD_ID,
          firstTokenIds: mode === 'both' ? fmt.firstTokens : undefined,
          sharePrefix: true, // the system turn once per batch, as in training
        });
        idx.forEach((i, r) => {
          outputs[i] = g.ids[r]!;
          genPred[i] = fmt.parseAnswer(g.ids[r]!);
          if (g.firstTokenLogits) {
            ftPred[i] = argmaxRow(g.firstTokenLogits, r, K);
            ftScores.set(g.firstTokenLogits.subarray(r * K, r * K + K), i * K);
          }
        });
      }
      o.progress?.tick(idx.length, { tokens: rows.reduce((a, r) => a + r.length, 0) });
    }
    if (method !== 'none') {
      const cf = method === 'content-free' ? await firstTokenScores(model, CONTENT_FREE_TEXTS.map((t) => fmt.prompt(t)), firstIds) : null;
      const prior = cf ? labelPrior(cf, K) : o.prior ? [...o.prior] : labelPrior(ftScores, K);
      const predictions = calibratedPredictions(ftScores, prior);
      calibrated = { method, prior, metrics: computeMetrics(labels, predictions), predictions };
    }
  } finally {
    firstIds.dispose();
  }
  const res: EvalResult = { n: texts.length, seconds: (performance.now() - t0) / 1000, tokens };
  if (calibrated) res.calibrated = calibrated;
  if (mode !== 'generate') res.firstToken = { metrics: computeMetrics(labels, ftPred), predictions: ftPred };
  if (mode !== 'first-token') {
    const invalid = genPred.filter((p) => p < 0).length;
    res.generate = { metrics: computeMetrics(labels, genPred), predictions: genPred, invalidRate: invalid / Math.max(1, texts.length), outputs };
  }
  return res;
}

/**
 * Logits of the answers' first tokens after each prompt, [B, 3] read back. The prompts' common prefix (the system
 * turn) runs once for the batch unless sharePrefix is false, as in training (trainBatch); the logits are the same.
 */
export async function firstTokenScores(
  model: MistralForCausalLM,
  rows: Int32Array[],
  firstIds: Tensor,
  o: { sharePrefix?: boolean } = {},
): Promise<Float32Array> {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  let P = o.sharePrefix === false ? 0 : sharedPrefixLength(rows.map((prompt) => ({ prompt })));
  if (B < 2 || P < MIN_SHARED_PREFIX) P = 0;
  const S = T - P; // row b's token t sits at column t - P
  const ids = new Int32Array(B * S).fill(PAD_ID);
  const mask = new Int32Array(B * S);
  const last = new Int32Array(B);
  rows.forEach((r, b) => {
    ids.set(r.subarray(P), b * S);
    mask.fill(1, b * S, b * S + r.length - P);
    last[b] = b * S + r.length - P - 1;
  });
  const scores = noGrad(() =>
    scope(() => {
      const inputIds = Tensor.fromArray(ids, [B, S], 'i32');
      const batch: Batch = { inputIds, attentionMask: Tensor.fromArray(mask, [B, S], 'i32') };
      if (P > 0) batch.prefix = { ids: Tensor.fromArray(rows[0]!.slice(0, P), [1, P], 'i32') };
      const logits = model.forward(batch, { logitsAt: Tensor.fromArray(last, [B], 'i32') }).data; // [B, V]
      return take(logits, firstIds, 1); // [B, 3]
    }),
  );
  const out = (await scores.toArray()) as Float32Array;
  scores.dispose();
  return out;
}

function argmaxRow(a: Float32Array, r: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (a[r * n + k]! > a[r * n + best]!) best = k;
  return best;
}

/** What a calibrated run leaves beside its best adapter (calibration.json), so eval and predict score as the run did. */
export interface AdapterCalibration {
  method: Exclude<Calibration, 'none'>;
  /** the label prior to divide out (negative, neutral, positive) */
  prior: number[];
}

export const CALIBRATION_FILE = 'calibration.json';

/** The adapter directory's calibration.json, or null when the adapter was trained without --calibrate. */
export function readCalibration(adapterDir: string): AdapterCalibration | null {
  const path = join(adapterDir, CALIBRATION_FILE);
  if (!existsSync(path)) return null;
  const c = JSON.parse(readFileSync(path, 'utf8')) as AdapterCalibration;
  if (!(Array.isArray(c.prior) && c.prior.length === 3 && c.prior.every((p) => p > 0))) throw new Error(`${path}: prior must be three positive numbers`);
  return c;
}

/** Labels of `prompts` by first-token scoring with `prior` divided out (dawngrad predict with a calibrated adapter). */
export async function calibratedLabels(model: MistralForCausalLM, fmt: PromptFormat, prompts: readonly Int32Array[], prior: readonly number[], batchSize = 64): Promise<number[]> {
  const firstIds = Tensor.fromArray(Int32Array.from(fmt.firstTokens), [fmt.firstTokens.length], 'i32');
  const out: number[] = [];
  try {
    for (let s = 0; s < prompts.length; s += batchSize) {
      out.push(...calibratedPredictions(await firstTokenScores(model, prompts.slice(s, s + batchSize), firstIds), prior));
    }
  } finally {
    firstIds.dispose();
  }
  return out;
}

/** The label prior the model shows now on (texts): first-token scoring only, for --calibrate validation. */
export async function measuredPrior(model: MistralForCausalLM, fmt: PromptFormat, texts: readonly string[], labels: readonly number[], o: EvalOptions = {}): Promise<number[]> {
  return (await evaluate(model, fmt, texts, labels, { ...o, mode: 'first-token', calibration: 'validation', prior: undefined })).calibrated!.prior;
}

/** The mean over rows of softmax over each row's K label logits (float64): the label prior the model shows. */
export function labelPrior(scores: ArrayLike<number>, K: number): number[] {
  const n = scores.length / K;
  if (!(n >= 1 && Number.isInteger(n))) throw new Error(`labelPrior: ${scores.length} scores are not rows of ${K}`);
  const prior = new Array<number>(K).fill(0);
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, scores[r * K + k]!);
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(scores[r * K + k]! - m);
    for (let k = 0; k < K; k++) prior[k]! += Math.exp(scores[r * K + k]! - m) / z / n;
  }
  return prior;
}

/** argmax_k of scores[r, k] − log prior[k] per row: the label once the prior is divided out (first maximum wins). */
export function calibratedPredictions(scores: ArrayLike<number>, prior: readonly number[]): number[] {
  const K = prior.length;
  const logPrior = prior.map((p) => Math.log(p));
  const out: number[] = [];
  for (let r = 0; r < scores.length / K; r++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (scores[r * K + k]! - logPrior[k]! > scores[r * K + best]! - logPrior[best]!) best = k;
    out.push(best);
  }
  return out;
}

/** One line for a log: each scoring mode's macro-F1, on how many tweets, in how long. */
export function describe(r: EvalResult): string {
  const parts: string[] = [];
  if (r.generate) parts.push(`macro-F1 ${r.generate.metrics.macroF1.toFixed(4)} by generation (invalid ${(100 * r.generate.invalidRate).toFixed(1)}%)`);
  if (r.firstToken) parts.push(`${r.firstToken.metrics.macroF1.toFixed(4)} by first-token scoring`);
  if (r.calibrated) parts.push(`${r.calibrated.metrics.macroF1.toFixed(4)} calibrated (${r.calibrated.method} prior ${r.calibrated.prior.map((p) => p.toFixed(3)).join('/')})`);
  return `${parts.join(', ')} on ${r.n} tweets in ${r.seconds.toFixed(1)} s`;
}
