// The Mistral/Llama decoder (MistralForCausalLM / LlamaForCausalLM): embedding, N × (RMSNorm, GQA attention with RoPE,
// residual, RMSNorm, SwiGLU MLP, residual), final RMSNorm, lm_head. Parameters keep their Hugging Face names.
//
// Activations stay as [B*T, C] rows from the embedding to the head; the attention and RoPE kernels read the
// [B, T, heads, D] view of a projection's output directly, so no permute copies happen anywhere in the block.
// A batch whose rows share a prompt prefix (Batch.prefix) takes the same layers through prefix.ts, which runs the
// prefix once beside the rows' suffixes; the KV cache's prefill and decode steps (kv-cache.ts) reuse the layer's
// qkv() and afterAttention() around attention of their own.
import type { Tensor } from '@dawngrad/tensor';
import { Var, constant, add, reshape, embedding, rmsNorm, rope, attention, swiglu, take } from '@dawngrad/autograd';
import type { ModelConfig } from './config.ts';
import { Linear, positionIds, type NamedParam } from './modules.ts';
import { prefixDecoder } from './prefix.ts';

export interface Batch {
  /** token ids, i32 [B, T] */
  inputIds: Tensor;
  /** 1 = token, 0 = padding, i32 [B, T] */
  attentionMask: Tensor;
  /** position of each token, i32 [B, T]; default 0..T-1 on every row, as transformers does without position_ids */
  positions?: Tensor;
  /**
   * tokens every row starts with, run through the decoder once (prefix.ts): ids i32 [1, P] at positions 0..P-1. With a
   * prefix, inputIds/attentionMask/positions hold only each row's suffix [B, S] (positions default P..P+S-1), the
   * logits and hidden states are the suffix rows' [B*S, ...], and ForwardOptions.logitsAt indexes those [B*S] rows.
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

  // x: [B*T, C], positions: [B, T], mask: [B, T] -> [B*T, C]
  forward(x: Var, cfg: ModelConfig, B: number, T: number, positions: Var, mask: Var): Var {
    const { numAttentionHeads: H, headDim: D } = cfg;
    const { q, k, v } = this.qkv(x, cfg, B, T, positions); // RMSNorm, the q/k/v projections, RoPE
    const a = attention(q, k, v, mask, { window: cfg.slidingWindow }); // [B, T, H, D]
    return this.afterAttention(x, reshape(a, [B * T, H * D]), cfg); // o_proj, residual, RMSNorm, SwiGLU MLP, residual
  }

  /** x: [rows*T, C] -> q: [rows, T, H, D], k and v: [rows, T, KV, D]; q and k rotated to their positions [rows, T]. */
  qkv(x: Var, cfg: ModelConfig, rows: number, T: number, positions: Var): { q: Var; k: Var; v: Var } {
    const { numAttentionHeads: H, numKeyValueHeads: KV, headDim: D, rmsNormEps: eps, ropeTheta: theta } = cfg;
    const h = rmsNorm(x, this.inputNorm, eps);
    const q = rope(reshape(this.q.forward(h), [rows, T, H, D]), positions, theta);
    const k = rope(reshape(this.k.forward(h), [rows, T, KV, D]), positions, theta);
    const v = reshape(this.v.forward(h), [rows, T, KV, D]);
    return { q, k, v };
  }

  /** x: the layer's input [N, C], a: the attention output [N, H*D] -> [N, C]: o_proj and residual, then the MLP block. */
  afterAttention(x: Var, a: Var, cfg: ModelConfig): Var {
    x = add(x, this.o.forward(a));
    const h = rmsNorm(x, this.postNorm, cfg.rmsNormEps);
    const m = swiglu(this.gate.forward(h), this.up.forward(h)); // [N, I]
    return add(x, this.down.forward(m));
  }
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

  /** ids: i32 [...] -> their embedding rows [numel, C] */
  embed(ids: Tensor): Var {
    return reshape(embedding(this.embedTokens, constant(ids)), [ids.size, this.config.hiddenSize]);
  }

  // inputIds: [B, T] -> the last layer's output [B*T, C], before the final norm (with a prefix: the suffix rows')
  private decoder(batch: Batch): Var {
    if (batch.prefix) return prefixDecoder(this, batch); // the shared prefix runs once beside the rows' suffixes
    const [B, T] = batch.inputIds.shape as [number, number];
    const positions = constant(batch.positions ?? positionIds(B, T, 0));
    const mask = constant(batch.attentionMask);
    let x = this.embed(batch.inputIds); // [B*T, C]
    for (const layer of this.layers) x = layer.forward(x, this.config, B, T, positions, mask);
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
