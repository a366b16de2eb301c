// Text generation with a KV cache: greedy, temperature, top-k and top-p sampling, stop tokens, a batch of prompts.
//
// Rows are right-padded: row b's prompt fills positions 0..len_b-1 and each new token goes just after its row's last
// token, so every row keeps positions 0..len-1 exactly as if it ran alone. One prefill (a forward over the prompts
// [B, T] that also stores each layer's keys and values, kv-cache.ts) gives the first token; each later token costs one
// decode step over B single tokens. Greedy reads back B argmax ids per step; sampling reads back the B rows of logits.
import { Tensor, argmax, scope, keep, take, mulberry32 } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import type { MistralForCausalLM } from './mistral.ts';
import { MIN_SHARED_PREFIX, commonPrefixLength } from './prefix.ts';
import { KVCache, prefill, decodeStep } from './kv-cache.ts';

export interface GenerateOptions {
  maxNewTokens?: number;
  /** greedy decoding (default true unless a temperature is given) */
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** generation stops for a row at any of these ids (they are included in the output) */
  stopTokens?: readonly number[];
  padId?: number;
  /**
   * Also return the logits of these token ids at the first generated position (after the prompt), from the same
   * prefill: first-token scoring at no extra cost.
   */
  firstTokenIds?: readonly number[];
  /**
   * Run the prompts' common token prefix once in the prefill (at least MIN_SHARED_PREFIX tokens, two or more prompts),
   * as training does with Batch.prefix: same numbers up to float rounding, so a greedy near-tie may break the other way.
   */
  sharePrefix?: boolean;
}

export interface GenerateResult {
  /** the new ids of each row (prompt excluded) */
  ids: number[][];
  /** with opts.firstTokenIds: their logits after each prompt, row-major [B, firstTokenIds.length] */
  firstTokenLogits?: Float32Array;
}

/** Greedy/sampled continuation of each prompt. */
export async function generate(model: MistralForCausalLM, prompts: readonly ArrayLike<number>[], o: GenerateOptions = {}): Promise<GenerateResult> {
  const maxNew = o.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNew}`);
  const greedy = o.greedy ?? o.temperature === undefined;
  const stop = new Set(o.stopTokens ?? []);
  const pad = o.padId ?? 0;
  const V = model.config.vocabSize;
  const firstIds = o.firstTokenIds ?? [];
  for (const id of firstIds) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`generate: firstTokenIds holds ${id}, not an id of a ${V}-token vocabulary`);
  const B = prompts.length;
  const out: number[][] = prompts.map(() => []);
  if (B === 0 || (maxNew === 0 && !o.firstTokenIds)) return { ids: out };
  if (prompts.some((p) => p.length === 0)) throw new Error('generate: empty prompt');
  const lens = prompts.map((p) => p.length);
  const T = Math.max(...lens);
  if (T + maxNew > model.config.maxPositionEmbeddings) {
    throw new Error(`generate: ${T + maxNew} positions exceed max_position_embeddings ${model.config.maxPositionEmbeddings}`);
  }
  // the last new token is never fed back, so the cache needs T + maxNew - 1 positions
  const cache = keepAll(() => new KVCache(model.config, B, T + Math.max(0, maxNew - 1)));
  const done = new Array<boolean>(B).fill(false);
  const rand = seededRandom(o.seed ?? 0);
  const res: GenerateResult = { ids: out };
  try {
    // prefill: the prompts right-padded, after the shared prefix P if there is one: [B, S = T - P] -> logits at each
    // prompt's last token [B, V]
    let prefixLen = o.sharePrefix && B >= 2 ? commonPrefixLength(prompts) : 0;
    if (prefixLen < MIN_SHARED_PREFIX) prefixLen = 0;
    const S = T - prefixLen;
    const ids = new Int32Array(B * S).fill(pad);
    const mask = new Int32Array(B * S);
    prompts.forEach((p, b) => {
      ids.set(Array.from(p).slice(prefixLen), b * S);
      mask.fill(1, b * S, b * S + p.length - prefixLen);
    });
    const last = Int32Array.from(lens, (n, b) => b * S + n - prefixLen - 1);
    const first = noGrad(() =>
      scope(() => {
        const t = (a: Int32Array, shape: number[]) => Tensor.fromArray(a, shape, 'i32');
        const prefix = prefixLen > 0 ? t(Int32Array.from(Array.from(prompts[0]!).slice(0, prefixLen)), [1, prefixLen]) : undefined;
        const logits = prefill(model, cache, t(ids, [B, S]), t(mask, [B, S]), t(last, [B]), prefix).data; // [B, V]
        const scores = firstIds.length > 0 ? take(logits, t(Int32Array.from(firstIds), [firstIds.length]), 1) : null; // [B, n]
        return { next: maxNew === 0 ? null : greedy ? argmax(logits, -1) : logits, scores };
      }),
    );
    if (first.scores) res.firstTokenLogits = (await readAndFree(first.scores)) as Float32Array;
    let next = first.next ? await readAndFree(first.next) : new Int32Array(0);
    for (let step = 0; step < maxNew; step++) {
      // the token each row feeds to the next step and its position; a finished row keeps the batch rectangular by
      // feeding token 0 at position 0 (overwriting its own cache, which nothing reads any more)
      const fed = new Int32Array(B);
      const pos = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        const tok = greedy ? next[b]! : sample(next.subarray(b * V, (b + 1) * V) as Float32Array, o, rand);
        out[b]!.push(tok);
        if (stop.has(tok)) done[b] = true;
        fed[b] = tok;
        pos[b] = lens[b]!++;
      }
      if (step + 1 === maxNew || done.every((d) => d)) break;
      const stepOut = noGrad(() =>
        scope(() => {
          const logits = decodeStep(model, cache, Tensor.fromArray(fed, [B], 'i32'), Tensor.fromArray(pos, [B], 'i32')).data; // [B, V]
          return greedy ? argmax(logits, -1) : logits; // greedy reads back B ids, not B×V logits
        }),
      );
      next = await readAndFree(stepOut);
    }
  } finally {
    cache.dispose();
  }
  return res;
}

/** Build something outside any enclosing scope: its tensors live until disposed explicitly. */
function keepAll(make: () => KVCache): KVCache {
  const c = make();
  for (const t of [...c.keys, ...c.values, c.mask]) keep(t);
  return c;
}

async function readAndFree(t: Tensor): Promise<Float32Array | Int32Array> {
  try {
    return (await t.toArray()) as Float32Array | Int32Array;
  } finally {
    t.dispose();
  }
}

/** Sample one id from logits with temperature, top-k and top-p (nucleus), as transformers orders them. */
export function sample(logits: Float32Array, o: GenerateOptions, rand: () => number): number {
  const t = o.temperature ?? 1;
  if (!(t > 0)) throw new Error(`temperature must be > 0, got ${t}`);
  let idx = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (o.topK && o.topK > 0) idx = idx.slice(0, o.topK);
  const m = logits[idx[0]!]! / t;
  let probs = idx.map((i) => Math.exp(logits[i]! / t - m));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / z);
  if (o.topP !== undefined && o.topP < 1) {
    let acc = 0;
    let keepN = 0;
    while (keepN < probs.length && acc < o.topP) acc += probs[keepN++]!;
    idx = idx.slice(0, Math.max(1, keepN));
    probs = probs.slice(0, idx.length);
    z = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / z);
  }
  let r = rand();
  for (let k = 0; k < idx.length; k++) {
    r -= probs[k]!;
    if (r <= 0) return idx[k]!;
  }
  return idx[idx.length - 1]!;
}

/** A seeded uniform [0, 1) generator: the same seed samples the same tokens. */
export const seededRandom = (seed: number): (() => number) => mulberry32(seed);
