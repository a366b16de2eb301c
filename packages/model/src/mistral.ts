// The Mistral/Llama decoder (MistralForCausalLM / LlamaForCausalLM): embedding, N × (RMSNorm, GQA attention with RoPE,
// residual, RMSNorm, SwiGLU MLP, residual), final RMSNorm, lm_head. Parameters keep their Hugging Face names.
//
// Activations stay as [B*T, C] rows from the embedding to the head; the attention and RoPE kernels read the
// [B, T, heads, D] view of a projection's output directly, so no permute copies happen anywhere in the block.
import { Tensor } from '@dawngrad/tensor';
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
  forward(x: Var, cfg: ModelConfig, B: number, T: number, positions: Var, mask: Var): Var {
    const { numAttentionHeads: H, numKeyValueHeads: KV, headDim: D, rmsNormEps: eps, ropeTheta: theta } = cfg;
    const h = rmsNorm(x, this.inputNorm, eps);
    const q = rope(reshape(this.q.forward(h), [B, T, H, D]), positions, theta); // [B, T, H, D]
    const k = rope(reshape(this.k.forward(h), [B, T, KV, D]), positions, theta); // [B, T, KV, D]
    const v = reshape(this.v.forward(h), [B, T, KV, D]);
    const a = reshape(attention(q, k, v, mask), [B * T, H * D]);
    x = add(x, this.o.forward(a));
    const h2 = rmsNorm(x, this.postNorm, eps);
    const m = swiglu(this.gate.forward(h2), this.up.forward(h2)); // [B*T, I]
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

  // inputIds: [B, T] -> the last layer's output [B*T, C], before the final norm
  private decoder(batch: Batch): Var {
    const [B, T] = batch.inputIds.shape as [number, number];
    const cfg = this.config;
    const positions = constant(batch.positions ?? defaultPositions(B, T));
    const mask = constant(batch.attentionMask);
    let x = reshape(embedding(this.embedTokens, constant(batch.inputIds)), [B * T, cfg.hiddenSize]);
    for (const layer of this.layers) x = layer.forward(x, cfg, B, T, positions, mask);
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

function defaultPositions(B: number, T: number): Tensor {
  const p = new Int32Array(B * T);
  for (let i = 0; i < p.length; i++) p[i] = i % T;
  return Tensor.fromArray(p, [B, T], 'i32');
}
