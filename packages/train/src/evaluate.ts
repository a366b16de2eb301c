// Evaluation two ways, both reported:
//  - first-token scoring: one forward per batch, compare the logits of the three answers' first tokens (fast: the
//    shared system turn runs once per batch; in 'both' mode they come from the generation's prefill instead);
//  - greedy generation of the answer (up to 4 tokens, as the reference run), first word parsed; anything else is
//    invalid and counts as wrong.
import { Tensor, take, scope } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import { generate, type Batch, type MistralForCausalLM } from '@dawngrad/model';
import { computeMetrics, type Metrics } from './metrics.ts';
import { GENERATED_TOKENS, type PromptFormat } from './prompts.ts';
import { PAD_ID, MIN_SHARED_PREFIX, sharedPrefixLength } from './batching.ts';
import type { Progress } from './progress.ts';

export type EvalMode = 'first-token' | 'generate' | 'both';

export interface EvalOptions {
  batchSize?: number;
  mode?: EvalMode;
  /** tokens generated per answer; default GENERATED_TOKENS */
  maxNewTokens?: number;
  progress?: Progress;
  /** the texts' prompts, already tokenised (and cut to fit, PromptFormat.evalPrompts); default fmt.prompt of each text */
  prompts?: readonly Int32Array[];
}

export interface EvalResult {
  n: number;
  /** by generation (when run) */
  generate?: { metrics: Metrics; predictions: number[]; invalidRate: number; outputs: number[][] };
  /** by first-token scoring (when run) */
  firstToken?: { metrics: Metrics; predictions: number[] };
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
  const bs = o.batchSize ?? 64;
  const t0 = performance.now();
  const prompts = o.prompts ?? texts.map((t) => fmt.prompt(t));
  if (prompts.length !== texts.length) throw new Error(`evaluate: ${prompts.length} prompts for ${texts.length} texts`);
  const order = [...prompts.keys()].sort((a, b) => prompts[a]!.length - prompts[b]!.length);
  const ftPred = new Array<number>(texts.length).fill(-1);
  const genPred = new Array<number>(texts.length).fill(-1);
  const outputs: number[][] = texts.map(() => []);
  const firstIds = Tensor.fromArray(Int32Array.from(fmt.firstTokens), [fmt.firstTokens.length], 'i32');
  let tokens = 0;
  try {
    for (let s = 0; s < order.length; s += bs) {
      const idx = order.slice(s, s + bs);
      const rows = idx.map((i) => prompts[i]!);
      tokens += rows.reduce((a, r) => a + r.length, 0);
      if (mode === 'first-token') {
        const scores = await firstTokenScores(model, rows, firstIds);
        idx.forEach((i, r) => (ftPred[i] = argmaxRow(scores, r, fmt.firstTokens.length)));
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
          if (g.firstTokenLogits) ftPred[i] = argmaxRow(g.firstTokenLogits, r, fmt.firstTokens.length);
        });
      }
      o.progress?.tick(idx.length, { tokens: rows.reduce((a, r) => a + r.length, 0) });
    }
  } finally {
    firstIds.dispose();
  }
  const res: EvalResult = { n: texts.length, seconds: (performance.now() - t0) / 1000, tokens };
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
