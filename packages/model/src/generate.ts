// Text generation: greedy, temperature, top-k and top-p sampling, stop tokens, a batch of prompts.
// Rows are right-padded in one [B, T] buffer; each new token is written just after its row's last token, so every row
// keeps positions 0..len-1 exactly as if it ran alone (causal attention never looks at the padding behind it).
import { Tensor, argmax, scope } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import type { MistralForCausalLM } from './mistral.ts';

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
}

export interface GenerateResult {
  /** the new ids of each row (prompt excluded) */
  ids: number[][];
}

/** Greedy/sampled continuation of each prompt. */
export async function generate(model: MistralForCausalLM, prompts: readonly ArrayLike<number>[], o: GenerateOptions = {}): Promise<GenerateResult> {
  const maxNew = o.maxNewTokens ?? 32;
  const greedy = o.greedy ?? o.temperature === undefined;
  const stop = new Set(o.stopTokens ?? []);
  const pad = o.padId ?? 0;
  const B = prompts.length;
  if (B === 0) return { ids: [] };
  if (prompts.some((p) => p.length === 0)) throw new Error('generate: empty prompt');
  const lens = prompts.map((p) => p.length);
  const T = Math.max(...lens) + maxNew;
  if (T > model.config.maxPositionEmbeddings) {
    throw new Error(`generate: ${T} positions exceed max_position_embeddings ${model.config.maxPositionEmbeddings}`);
  }
  const ids = new Int32Array(B * T).fill(pad);
  const mask = new Int32Array(B * T);
  prompts.forEach((p, b) => {
    ids.set(Array.from(p), b * T);
    mask.fill(1, b * T, b * T + p.length);
  });
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const rand = mulberry(o.seed ?? 0);
  for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
    const rows = Int32Array.from(lens, (n, b) => b * T + n - 1);
    const picked = noGrad(() =>
      scope(() => {
        const batch = { inputIds: Tensor.fromArray(ids, [B, T], 'i32'), attentionMask: Tensor.fromArray(mask, [B, T], 'i32') };
        const logits = model.forward(batch, { logitsAt: Tensor.fromArray(rows, [B], 'i32') }).data; // [B, V]
        return greedy ? argmax(logits, -1) : logits; // greedy reads back B ids, not B×V logits
      }),
    );
    const next = await picked.toArray();
    picked.dispose();
    const V = model.config.vocabSize;
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const tok = greedy ? next[b]! : sample(next.subarray(b * V, (b + 1) * V) as Float32Array, o, rand);
      out[b]!.push(tok);
      ids[b * T + lens[b]!] = tok;
      mask[b * T + lens[b]!] = 1;
      lens[b]!++;
      if (stop.has(tok)) done[b] = true;
    }
  }
  return { ids: out };
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

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
