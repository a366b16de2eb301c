// From a Hugging Face model directory to a model on the GPU: config, checkpoint validation, streaming upload
// (one tensor in JS memory at a time), frozen parameters by default.
import { Tensor } from '@dawngrad/tensor';
import { Var, constant } from '@dawngrad/autograd';
import { loadConfigFrom, validateCheckpoint, expectedParameters, type ModelConfig } from './config.ts';
import { openCheckpoint } from './checkpoint.ts';
import { toSource, type FileSource } from './sources.ts';
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

/** Load config.json and the (possibly sharded) safetensors of `dir` (a folder, or a URL / picked-files FileSource) onto the GPU. */
export async function loadModel(from: string | FileSource): Promise<MistralForCausalLM> {
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
      weights.set(t.name, Tensor.fromArray(t.data, t.shape, 'f32'));
    }
    return buildModel(cfg, weights);
  } finally {
    await ckpt.close();
  }
}
