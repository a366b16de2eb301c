// The Mistral/Llama decoder (MistralForCausalLM / LlamaForCausalLM): embedding, N × (RMSNorm, GQA attention with RoPE,
// residual, RMSNorm, SwiGLU MLP, residual), final RMSNorm, lm_head. Parameters keep their Hugging Face names.
//
// Activations stay as [B*T, C] rows from the embedding to the head; the attention and RoPE kernels read the
// [B, T, heads, D] view of a projection's output directly, so no permute copies happen anywhere in the block.
//
// A shared prompt prefix (Batch.prefix) runs once instead of once per row: its P tokens go through every layer as a
// batch-1 stream [P, C] beside the rows' suffixes [B*S, C]. Only attention mixes the two: each layer broadcasts the
// prefix's q/k/v to the B rows and puts them in front of the suffix's, so one causal attention over P+S positions
// gives every suffix token exactly the keys it would see in the full row. Every other op is per token, so its
// prefix rows are the same numbers whichever row they sit in: computing them once changes nothing but the work.
import { Tensor, fill, concat as concatTensors } from '@dawngrad/tensor';
import {
  Var,
  constant,
  add,
  reshape,
  embedding,
  rmsNorm,
  rope,
  attention,
  swiglu,
  take,
  expand,
  concat,
  slice,
} from '@dawngrad/autograd';
import type { ModelConfig } from './config.ts';
import { Linear, type NamedParam } from './modules.ts';

export interface Batch {
  /** token ids, i32 [B, T] */
  inputIds: Tensor;
  /** 1 = token, 0 = padding, i32 [B, T] */
  attentionMask: Tensor;
  /** position of each token, i32 [B, T]; default 0..T-1 on every row, as transformers does without position_ids */
  positions?: Tensor;
  /**
   * tokens every row starts with, run through the decoder once: ids i32 [1, P] at positions 0..P-1. With a prefix,
   * inputIds/attentionMask/positions hold only each row's suffix [B, S] (positions default P..P+S-1), the logits and
   * hidden states are the suffix rows' [B*S, ...], and ForwardOptions.logitsAt indexes those [B*S] rows.
   */
  prefix?: { ids: Tensor };
}

export interface ForwardOptions {
  /** compute logits only at these flat rows of [B*T] (i32 [N]); default every row. Training needs a few per sequence. */
  logitsAt?: Tensor;
}

export class DecoderLayer {
  constructor(
    readonly index: number,
    readonly inputNorm: Var, // model.layers.i.input_layernorm.weight [C]
    readonly postNorm: Var, // model.layers.i.post_attention_layernorm.weight [C]
    readonly q: Linear, // [H*D, C]
    readonly k: Linear, // [KV*D, C]
    readonly v: Linear, // [KV*D, C]
    readonly o: Linear, // [C, H*D]
    readonly gate: Linear, // [I, C]
    readonly up: Linear, // [I, C]
    readonly down: Linear, // [C, I]
  ) {}

  get linears(): Linear[] {
    return [this.q, this.k, this.v, this.o, this.gate, this.up, this.down];
  }

  // x: [B*T, C] -> [B*T, C]
  forward(x: Var, cfg: ModelConfig, B: number, T: number, positions: Var, mask: Var): Var;
  // x: the suffix rows [B*T, C], prefix.x: the shared prefix [P, C], mask: [B, P+T] -> the suffix rows [B*T, C], and
  // the prefix's rows [P, C] in prefix.x unless prefix.last says no later layer reads them
  forward(x: Var, cfg: ModelConfig, B: number, T: number, positions: Var, mask: Var, prefix: PrefixStream): Var;
  forward(x: Var, cfg: ModelConfig, B: number, T: number, positions: Var, mask: Var, prefix?: PrefixStream): Var {
    const { numAttentionHeads: H, headDim: D } = cfg;
    const s = this.qkv(x, cfg, B, T, positions);
    if (!prefix) return this.tail(x, reshape(attention(s.q, s.k, s.v, mask, { window: cfg.slidingWindow }), [B * T, H * D]), cfg);
    const P = prefix.x.shape[0]!;
    const p = this.qkv(prefix.x, cfg, 1, P, prefix.positions);
    // [1, P, heads, D] ‖ [B, T, heads, D] -> [B, P+T, heads, D]; expand's backward sums the B rows' gradients into the prefix
    const join = (a: Var, b: Var) => concat([expand(a, [B, ...a.shape.slice(1)]), b], 1);
    const [k, v] = [join(p.k, s.k), join(p.v, s.v)]; // [B, P+T, KV, D]
    prefix.onKeysValues?.(k, v);
    const a = attention(join(p.q, s.q), k, v, mask, { window: cfg.slidingWindow }); // [B, P+T, H, D]
    const out = this.tail(x, reshape(slice(a, [0, P], [B, P + T]), [B * T, H * D]), cfg);
    // row 0's copy of the prefix is the prefix's own output; rows 1.. repeat it (and their slice gets no gradient)
    if (!prefix.last) prefix.x = this.tail(prefix.x, reshape(slice(a, [0, 0], [1, P]), [P, H * D]), cfg);
    return out;
  }

  // x: [N, C] with N = rows*T -> q: [rows, T, H, D], k and v: [rows, T, KV, D] (q and k rotated to their positions)
  private qkv(x: Var, cfg: ModelConfig, rows: number, T: number, positions: Var): { q: Var; k: Var; v: Var } {
    const { numAttentionHeads: H, numKeyValueHeads: KV, headDim: D, rmsNormEps: eps, ropeTheta: theta } = cfg;
    const h = rmsNorm(x, this.inputNorm, eps);
    const q = rope(reshape(this.q.forward(h), [rows, T, H, D]), positions, theta);
    const k = rope(reshape(this.k.forward(h), [rows, T, KV, D]), positions, theta);
    const v = reshape(this.v.forward(h), [rows, T, KV, D]);
    return { q, k, v };
  }

  // x: [N, C], a: the attention output [N, H*D] -> [N, C]: o_proj and residual, then RMSNorm, SwiGLU and residual
  private tail(x: Var, a: Var, cfg: ModelConfig): Var {
    x = add(x, this.o.forward(a));
    const h2 = rmsNorm(x, this.postNorm, cfg.rmsNormEps);
    const m = swiglu(this.gate.forward(h2), this.up.forward(h2)); // [N, I]
    return add(x, this.down.forward(m));
  }
}

/** The shared prefix as it flows through the decoder beside the rows' suffixes. */
export interface PrefixStream {
  /** its hidden states [P, C]; DecoderLayer.forward replaces them with the layer's output */
  x: Var;
  /** its RoPE positions, i32 [1, P] */
  positions: Var;
  /** true in the last layer: nothing reads the prefix's output there, so its o_proj and MLP are skipped */
  last?: boolean;
  /** handed each layer's joined keys and values [B, P+T, KV, D] (post-RoPE): the KV cache's prefill stores them */
  onKeysValues?: (k: Var, v: Var) => void;
}

/** Below this many shared tokens the prefix path's extra copies cost about what it saves. */
export const MIN_SHARED_PREFIX = 8;

/**
 * The longest token prefix all prompts share, capped so every prompt keeps at least its last token out of it: that
 * token's logits predict what follows, and logits are computed for suffix rows only.
 */
export function commonPrefixLength(prompts: readonly ArrayLike<number>[]): number {
  if (prompts.length === 0) return 0;
  let P = Math.min(...prompts.map((p) => p.length - 1));
  const first = prompts[0]!;
  for (const p of prompts) {
    let i = 0;
    while (i < P && p[i] === first[i]) i++;
    P = i;
  }
  return Math.max(P, 0);
}

export class MistralForCausalLM {
  constructor(
    readonly config: ModelConfig,
    readonly embedTokens: Var, // model.embed_tokens.weight [V, C]
    readonly layers: DecoderLayer[],
    readonly norm: Var, // model.norm.weight [C]
    readonly lmHead: Linear, // lm_head.weight [V, C] (the embedding itself when tied)
  ) {}

  /** Every parameter under its HF name (a tied lm_head is listed once, as the embedding). */
  namedParameters(): NamedParam[] {
    const out: NamedParam[] = [{ name: 'model.embed_tokens.weight', param: this.embedTokens }];
    for (const l of this.layers) {
      const p = `model.layers.${l.index}`;
      out.push({ name: `${p}.input_layernorm.weight`, param: l.inputNorm });
      for (const lin of l.linears) out.push({ name: `${lin.path}.weight`, param: lin.weight });
      out.push({ name: `${p}.post_attention_layernorm.weight`, param: l.postNorm });
    }
    out.push({ name: 'model.norm.weight', param: this.norm });
    if (!this.config.tieWordEmbeddings) out.push({ name: 'lm_head.weight', param: this.lmHead.weight });
    return out;
  }

  /** The linear layers by module path (model.layers.0.self_attn.q_proj, ..., lm_head). */
  linears(): Linear[] {
    return [...this.layers.flatMap((l) => l.linears), this.lmHead];
  }

  /** Freeze or unfreeze every base parameter. */
  requiresGrad(on: boolean): void {
    for (const { param } of this.namedParameters()) param.requiresGrad = on;
  }

  // inputIds: [B, T] -> logits [B*T, V], or [N, V] at opts.logitsAt
  forward(batch: Batch, opts: ForwardOptions = {}): Var {
    let x = this.decoder(batch);
    // RMSNorm is per row, so picking the wanted rows first gives the same logits for a fraction of the work
    if (opts.logitsAt) x = take(x, constant(opts.logitsAt));
    return this.lmHead.forward(rmsNorm(x, this.norm, this.config.rmsNormEps));
  }

  // inputIds: [B, T] -> the final-normed hidden states [B*T, C] that lm_head reads: forward() without the head, for
  // callers that apply lm_head to row chunks (all B*T×V logits at once can exceed the adapter's binding limit)
  hiddenStates(batch: Batch): Var {
    return rmsNorm(this.decoder(batch), this.norm, this.config.rmsNormEps);
  }

  // inputIds: [B, T] -> the last layer's output [B*T, C], before the final norm (with a prefix: the suffix rows')
  private decoder(batch: Batch): Var {
    const [B, T] = batch.inputIds.shape as [number, number];
    const cfg = this.config;
    const P = batch.prefix ? checkPrefix(batch, B, T) : 0;
    const positions = constant(batch.positions ?? defaultPositions(B, T, P));
    const embed = (ids: Tensor, n: number) => reshape(embedding(this.embedTokens, constant(ids)), [n, cfg.hiddenSize]);
    let x = embed(batch.inputIds, B * T);
    if (!batch.prefix) {
      const mask = constant(batch.attentionMask);
      for (const layer of this.layers) x = layer.forward(x, cfg, B, T, positions, mask);
      return x;
    }
    // mask: the prefix's P real tokens in front of every row's suffix mask -> [B, P+T]
    const mask = constant(concatTensors([fill([B, P], 1, 'i32'), batch.attentionMask], 1));
    const prefix: PrefixStream = { x: embed(batch.prefix.ids, P), positions: constant(defaultPositions(1, P, 0)) };
    this.layers.forEach((layer, i) => {
      prefix.last = i === this.layers.length - 1;
      x = layer.forward(x, cfg, B, T, positions, mask, prefix);
    });
    return x;
  }

  /** Free every parameter's GPU memory. */
  dispose(): void {
    for (const { param } of this.namedParameters()) {
      param.zeroGrad();
      param.data.dispose();
    }
  }
}

// -> i32 [B, T]: start, start+1, ..., start+T-1 on every row
function defaultPositions(B: number, T: number, start: number): Tensor {
  const p = new Int32Array(B * T);
  for (let i = 0; i < p.length; i++) p[i] = start + (i % T);
  return Tensor.fromArray(p, [B, T], 'i32');
}

/** P of a batch's prefix, after checking that its ids are i32 [1, P] and the suffix tensors are [B, T]. */
function checkPrefix(batch: Batch, B: number, T: number): number {
  const ids = batch.prefix!.ids;
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (ids.rank !== 2 || ids.shape[0] !== 1 || ids.shape[1]! < 1 || ids.dtype !== 'i32') {
    throw new Error(`forward: prefix.ids must be i32 [1, P] with P ≥ 1, got ${ids.dtype} ${fmt(ids.shape)}`);
  }
  const m = batch.attentionMask.shape;
  if (m.length !== 2 || m[0] !== B || m[1] !== T) {
    throw new Error(`forward: attentionMask ${fmt(m)} must match the suffix ids [${B}, ${T}]`);
  }
  return ids.shape[1]!;
}
