// adapter_config.json as PEFT 0.21 writes and reads it. We write every field PEFT writes (sorted keys, indent 2, the
// values PEFT uses for features we do not have), so PEFT loads our adapters as its own. On reading, anything that
// would change the forward pass or the set of saved tensors beyond plain LoRA is refused by field name.
import { loraConfig, type LoraConfig } from './config.ts';

/** The PEFT release whose adapter format we write (its field set and defaults). */
export const PEFT_FORMAT_VERSION = '0.21.0';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** PEFT's pickle format: refused (we never execute pickles). */
export const ADAPTER_PICKLE_FILE = 'adapter_model.bin';

/** Fields of PEFT 0.21's LoraConfig that we always write with PEFT's default (features we do not implement). */
const PEFT_DEFAULTS: Record<string, unknown> = {
  alora_invocation_tokens: null,
  alpha_pattern: {},
  arrow_config: null,
  auto_mapping: null,
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  fan_in_fan_out: false,
  kasa_config: null,
  layer_replication: null,
  layers_pattern: null,
  loftq_config: {},
  lora_bias: false,
  lora_ga_config: null,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  monteclora_config: null,
  qalora_group_size: 16,
  rank_pattern: {},
  revision: null,
  target_parameters: null,
  trainable_token_indices: null,
  use_bdlora: null,
  use_dora: false,
  use_qalora: false,
  velora_config: null,
};

/**
 * The adapter_config.json object for a config. `targetModules` is the resolved list (all-linear expanded to names,
 * as PEFT saves it). inference_mode is true, as PEFT's save_pretrained writes it.
 */
export function toPeftJson(c: LoraConfig, targetModules: string[] | string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...PEFT_DEFAULTS,
    base_model_name_or_path: c.base_model_name_or_path,
    bias: c.bias,
    exclude_modules: c.exclude_modules,
    inference_mode: true,
    init_lora_weights: c.init_lora_weights,
    layers_to_transform: c.layers_to_transform,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    peft_type: 'LORA',
    peft_version: PEFT_FORMAT_VERSION,
    r: c.r,
    target_modules: targetModules,
    task_type: 'CAUSAL_LM',
    use_rslora: c.use_rslora,
  };
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}

/** JSON text as Python's json.dumps(indent=2, sort_keys=True) lays it out (keys are already sorted by toPeftJson). */
export function peftJsonText(obj: Record<string, unknown>): string {
  return JSON.stringify(obj, null, 2);
}

/** A PEFT field holds its "feature off" value: null, false, {} or []. */
function isOff(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

/** Fields that change the forward pass or the tensors in the file: refused unless off. */
const UNSUPPORTED: Record<string, string> = {
  use_dora: 'DoRA (weight-decomposed LoRA)',
  fan_in_fan_out: 'fan_in_fan_out (Conv1D-layout weights)',
  lora_bias: 'a trained bias on lora_B',
  use_qalora: 'QALoRA',
  use_bdlora: 'BD-LoRA',
  alora_invocation_tokens: 'activated LoRA (aLoRA)',
  arrow_config: 'Arrow routing',
  monteclora_config: 'MonteCLoRA',
  kasa_config: 'KaSA',
  velora_config: 'VeLoRA',
  layer_replication: 'layer replication',
  modules_to_save: 'fully trained extra modules (modules_to_save)',
  rank_pattern: 'per-module ranks (rank_pattern)',
  alpha_pattern: 'per-module alphas (alpha_pattern)',
  target_parameters: 'LoRA on raw parameters (target_parameters)',
  trainable_token_indices: 'trainable token embeddings',
  megatron_config: 'Megatron parallel layers',
};

/** init_lora_weights values that rewrite the base weights at initialisation: the adapter is meaningless without them. */
const BASE_MODIFYING_INITS = /^(pissa|olora|loftq|corda)/i;

/** Parse and validate an adapter_config.json object into a LoraConfig. `source` names the file in errors. */
export function parsePeftConfig(raw: Record<string, unknown>, source: string): LoraConfig {
  const bad = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (raw.peft_type !== 'LORA') bad(`peft_type ${JSON.stringify(raw.peft_type ?? null)} is not supported (only "LORA")`);
  const task = raw.task_type ?? null;
  if (task !== null && task !== 'CAUSAL_LM') bad(`task_type ${JSON.stringify(task)} is not supported (only "CAUSAL_LM")`);
  for (const [field, what] of Object.entries(UNSUPPORTED)) {
    if (!isOff(raw[field])) bad(`${field} = ${JSON.stringify(raw[field])}: ${what} is not supported`);
  }
  if ((raw.bias ?? 'none') !== 'none') bad(`bias ${JSON.stringify(raw.bias)} is not supported (only "none")`);
  const lp = raw.layers_pattern ?? null;
  const lpList = typeof lp === 'string' ? [lp] : lp;
  if (lpList !== null && !(Array.isArray(lpList) && lpList.every((p) => p === 'layers'))) {
    bad(`layers_pattern ${JSON.stringify(lp)} is not supported (Llama/Mistral layers are "layers")`);
  }
  const init = raw.init_lora_weights ?? true;
  if (typeof init === 'string' && BASE_MODIFYING_INITS.test(init)) {
    bad(`init_lora_weights ${JSON.stringify(init)} rewrites the base weights, so this adapter needs its own modified base model`);
  }
  // eva/orthogonal only choose starting values; the saved tensors are what counts, so load them as plain LoRA
  const initLoaded = init === true || init === false || init === 'gaussian' ? init : true;
  return loraConfig(
    {
      r: raw.r as number,
      lora_alpha: raw.lora_alpha as number,
      lora_dropout: (raw.lora_dropout ?? 0) as number,
      target_modules: raw.target_modules as string[] | string | null,
      exclude_modules: (raw.exclude_modules ?? null) as string[] | string | null,
      use_rslora: (raw.use_rslora ?? false) as boolean,
      init_lora_weights: initLoaded,
      bias: 'none',
      layers_to_transform: (raw.layers_to_transform ?? null) as number[] | number | null,
      base_model_name_or_path: (raw.base_model_name_or_path ?? null) as string | null,
    },
    source,
  );
}
