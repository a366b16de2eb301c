// From a Hugging Face model directory to a model on the GPU: config, checkpoint validation, streaming upload
// (one tensor in JS memory at a time, each checked for NaN/Inf on the way), frozen parameters by default.
import { Tensor, rt } from '@dawngrad/tensor';
import { Var, constant } from '@dawngrad/autograd';
import { loadConfigFrom, validateCheckpoint, expectedParameters, type ModelConfig } from './config.ts';
import { openCheckpoint } from './checkpoint.ts';
import { toSource, type FileSource } from './sources.ts';
import { f16Overflow, f32ToF16 } from './safetensors.ts';
import { Linear } from './modules.ts';
import { DecoderLayer, MistralForCausalLM } from './mistral.ts';

/** Build a model from name → tensor (already on the GPU). Missing names are an error. */
export function buildModel(cfg: ModelConfig, weights: Map<string, Tensor>): MistralForCausalLM {
  const take = (name: string): Var => {
    const t = weights.get(name);
    if (!t) throw new Error(`weights: missing ${name}`);
    return constant(t, name);
  };
  const layers: DecoderLayer[] = [];
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    const lin = (sub: string) => new Linear(`${p}.${sub}`, take(`${p}.${sub}.weight`));
    layers.push(
      new DecoderLayer(
        i,
        take(`${p}.input_layernorm.weight`),
        take(`${p}.post_attention_layernorm.weight`),
        lin('self_attn.q_proj'),
        lin('self_attn.k_proj'),
        lin('self_attn.v_proj'),
        lin('self_attn.o_proj'),
        lin('mlp.gate_proj'),
        lin('mlp.up_proj'),
        lin('mlp.down_proj'),
      ),
    );
  }
  const embed = take('model.embed_tokens.weight');
  const head = cfg.tieWordEmbeddings ? new Linear('lm_head', embed) : new Linear('lm_head', take('lm_head.weight'));
  return new MistralForCausalLM(cfg, embed, layers, take('model.norm.weight'), head);
}

/** How the frozen base is stored on the GPU: f32, or (mixed) its matmul weights and embedding in f16. */
export type Precision = 'f32' | 'mixed';

export interface LoadOptions {
  /** 'mixed': the linear layers' weights, lm_head and the embedding as f16 (half the memory; f16·f16 products summed
   * in f32); norms stay f32. A weight beyond f16's range is refused, naming it. Default 'f32'. */
  precision?: Precision;
}

/** Which weights `precision: 'mixed'` stores as f16: every matmul weight and the embedding table (norms stay f32). */
export function storedAsF16(name: string): boolean {
  return name === 'model.embed_tokens.weight' || name === 'lm_head.weight' || /\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name);
}

/** f16 bits of a weight, or a one-line error naming it when a value would round past f16's largest finite 65504. */
export function toF16Weight(data: Float32Array, name: string, source: string): Uint16Array {
  const { worst } = f16Overflow(data);
  if (worst > 0) throw new Error(`${source}: ${name} holds values up to ${worst.toExponential(3)}, beyond f16's 65504: it cannot be stored in f16 (use --precision f32)`);
  return f32ToF16(data);
}

/** Load config.json and the (possibly sharded) safetensors of `dir` (a folder, or a URL / picked-files FileSource) onto the GPU. */
export async function loadModel(from: string | FileSource, opts: LoadOptions = {}): Promise<MistralForCausalLM> {
  const mixed = opts.precision === 'mixed';
  if (mixed && !rt().ctx.hasF16) throw new Error(`--precision mixed needs an adapter with shader-f16; ${rt().ctx.info.description || rt().ctx.info.device} has none (on NVIDIA: DAWNGRAD_DAWN_TOGGLES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia)`);
  const src = toSource(from);
  const dir = src.name;
  const cfg = await loadConfigFrom(src);
  const ckpt = await openCheckpoint(typeof from === 'string' ? from : src);
  try {
    validateCheckpoint(cfg, ckpt.infos(), `model ${dir}`);
    const weights = new Map<string, Tensor>();
    // only what the model uses: checkpoints may carry buffers transformers ignores (rotary_emb.inv_freq, a tied lm_head)
    const wanted = expectedParameters(cfg).map((p) => p.name);
    for await (const t of ckpt.tensors(wanted)) {
      if (!(t.data instanceof Float32Array)) throw new Error(`${dir}: ${t.name} is not a floating-point tensor`);
      checkFiniteWeights(t.data, t.name, `model ${dir}`);
      const f16 = mixed && storedAsF16(t.name);
      weights.set(t.name, f16 ? Tensor.fromArray(toF16Weight(t.data, t.name, `model ${dir}`), t.shape, 'f16') : Tensor.fromArray(t.data, t.shape, 'f32'));
    }
    return buildModel(cfg, weights);
  } finally {
    await ckpt.close();
  }
}

/**
 * Refuse weights holding NaN or ±Inf, naming the tensor and how many: a model (or adapter) computed from them gives
 * NaN logits that evaluate to a normal-looking confusion matrix. `source` names the file or directory in the message.
 */
export function checkFiniteWeights(data: ArrayLike<number>, name: string, source: string): void {
  let bad = 0;
  let first = 0;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      if (bad === 0) first = data[i]!;
      bad++;
    }
  }
  if (bad > 0) {
    throw new Error(`${source}: ${name} holds ${bad} non-finite value${bad > 1 ? 's' : ''} (the first: ${first}) of ${data.length}; these weights are damaged`);
  }
}
