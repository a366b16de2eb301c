// config.json (MistralForCausalLM / LlamaForCausalLM) -> a typed ModelConfig, the parameter names and shapes it implies,
// and the check that a checkpoint holds exactly those. Also generation_config.json.
// Anything we would compute differently from transformers (rope scaling, biases, another activation) is refused by name
// here, at the boundary, so the model code can trust the config.
import { CONFIG_FILE, GENERATION_CONFIG_FILE, readJsonObject } from './files.ts';
import { readSourceJson, type FileSource } from './sources.ts';
import type { TensorInfo } from './safetensors.ts';

export const SUPPORTED_ARCHITECTURES = ['MistralForCausalLM', 'LlamaForCausalLM'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number; // C
  intermediateSize: number; // the SwiGLU width
  numHiddenLayers: number;
  numAttentionHeads: number; // H
  numKeyValueHeads: number; // KV heads (grouped-query attention: H % KV === 0)
  headDim: number; // D; q_proj is [H*D, C]
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean; // true: lm_head reuses model.embed_tokens.weight
  vocabSize: number; // V, rows of the embedding
  maxPositionEmbeddings: number;
  hiddenAct: 'silu';
  /**
   * Mistral's sliding attention window W (null: full causal attention): a query at position i sees keys i − W < j ≤ i.
   * Only matters for sequences longer than W. Always null for Llama, which transformers runs without a window.
   */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** eos_token_id may be one id or a list in HF configs; always a list here (possibly empty). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The parsed JSON as read. */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

/** Parse a config.json object. `source` names the file in error messages. */
export function parseConfig(raw: Json, source = 'config.json'): ModelConfig {
  const bad = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const archs = raw.architectures;
  const arch = Array.isArray(archs) ? archs.find((a) => (SUPPORTED_ARCHITECTURES as readonly unknown[]).includes(a)) : undefined;
  if (!arch) {
    bad(`architecture ${JSON.stringify(archs ?? raw.model_type ?? null)} is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`);
  }
  const int = (key: string, dflt?: number): number => {
    const v = raw[key] ?? dflt;
    if (v === undefined || v === null) bad(`missing required field "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const optId = (key: string): number | null => {
    const v = raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v as number;
  };

  const hiddenSize = int('hidden_size');
  const numAttentionHeads = int('num_attention_heads');
  const numKeyValueHeads = int('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    bad(`num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  }
  if ((raw.head_dim ?? null) === null && hiddenSize % numAttentionHeads !== 0) {
    bad(`hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}) and head_dim is not given`);
  }
  const headDim = int('head_dim', Math.floor(hiddenSize / numAttentionHeads));
  if (raw.rms_norm_eps === undefined) bad(`missing required field "rms_norm_eps"`);
  const rmsNormEps = num('rms_norm_eps', raw.rms_norm_eps);

  // RoPE: transformers 5 writes rope_parameters {rope_theta, rope_type}; older configs write rope_theta (+ rope_scaling).
  const rp = raw.rope_parameters;
  if (rp !== undefined && rp !== null && (typeof rp !== 'object' || Array.isArray(rp))) bad(`"rope_parameters" must be an object`);
  const rope = (rp ?? {}) as Json;
  const ropeType = rope.rope_type ?? rope.type ?? 'default';
  if (ropeType !== 'default') bad(`rope_parameters.rope_type ${JSON.stringify(ropeType)} is not supported (only "default")`);
  const rs = raw.rope_scaling;
  if (rs !== undefined && rs !== null) {
    const t = typeof rs === 'object' ? ((rs as Json).rope_type ?? (rs as Json).type) : rs;
    if (t !== 'default') bad(`rope_scaling ${JSON.stringify(t ?? rs)} is not supported (only none or "default")`);
  }
  const ropeTheta = num('rope_theta', rope.rope_theta ?? raw.rope_theta ?? 10000);

  const hiddenAct = raw.hidden_act ?? raw.hidden_activation ?? 'silu';
  if (hiddenAct !== 'silu') bad(`hidden_act ${JSON.stringify(hiddenAct)} is not supported (only "silu")`);
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (raw[key] === true) bad(`"${key}": true is not supported (bias-free projections only)`);
  }
  const tie = raw.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') bad(`"tie_word_embeddings" must be a boolean, got ${JSON.stringify(tie)}`);

  const eos = raw.eos_token_id;
  let eosTokenIds: number[] = [];
  if (Array.isArray(eos)) eosTokenIds = eos as number[];
  else if (eos !== undefined && eos !== null) eosTokenIds = [eos as number];
  if (!eosTokenIds.every((e) => Number.isSafeInteger(e) && e >= 0)) bad(`"eos_token_id" must be a token id or a list of them, got ${JSON.stringify(eos)}`);

  const sw = raw.sliding_window;
  if (sw !== undefined && sw !== null && (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0)) {
    bad(`"sliding_window" must be null or a positive integer, got ${JSON.stringify(sw)}`);
  }

  const cfg: ModelConfig = {
    architecture: arch as Architecture,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    tieWordEmbeddings: tie as boolean,
    vocabSize: int('vocab_size'),
    maxPositionEmbeddings: int('max_position_embeddings'),
    hiddenAct: 'silu',
    slidingWindow: arch === 'MistralForCausalLM' ? ((sw ?? null) as number | null) : null,
    bosTokenId: optId('bos_token_id'),
    eosTokenIds,
    padTokenId: optId('pad_token_id'),
    raw,
  };
  for (const [k, id] of [['bos_token_id', cfg.bosTokenId], ['pad_token_id', cfg.padTokenId], ...eosTokenIds.map((e) => ['eos_token_id', e] as const)] as const) {
    if (id !== null && id >= cfg.vocabSize) bad(`"${k}" ${id} is outside the vocabulary (vocab_size ${cfg.vocabSize})`);
  }
  return cfg;
}

/** Read and parse `config.json` (a path to the file; Node). */
export function loadConfig(path: string): ModelConfig {
  return parseConfig(readJsonObject(path, 'config'), path);
}

/** Read and parse the config.json of a FileSource (a folder, a URL, picked files). */
export async function loadConfigFrom(src: FileSource): Promise<ModelConfig> {
  return parseConfig(await readSourceJson(src, CONFIG_FILE, 'config'), src.where(CONFIG_FILE));
}

// ---- parameters ----

export interface ParameterSpec {
  name: string;
  shape: number[];
}

/** The HF parameter names and shapes of a config, in HF order. Linear weights are [out, in]. */
export function expectedParameters(cfg: ModelConfig): ParameterSpec[] {
  const C = cfg.hiddenSize;
  const q = cfg.numAttentionHeads * cfg.headDim;
  const kv = cfg.numKeyValueHeads * cfg.headDim;
  const I = cfg.intermediateSize;
  const out: ParameterSpec[] = [{ name: 'model.embed_tokens.weight', shape: [cfg.vocabSize, C] }];
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      { name: `${p}.self_attn.q_proj.weight`, shape: [q, C] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, C] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, C] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [C, q] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [I, C] },
      { name: `${p}.mlp.up_proj.weight`, shape: [I, C] },
      { name: `${p}.mlp.down_proj.weight`, shape: [C, I] },
      { name: `${p}.input_layernorm.weight`, shape: [C] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [C] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [C] });
  if (!cfg.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [cfg.vocabSize, C] });
  return out;
}

/** Tensors transformers ignores on load: old Llama checkpoints carry the RoPE inverse frequencies as buffers. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

export interface CheckpointReport {
  missing: string[];
  unexpected: string[];
  /** "name: checkpoint [a, b] vs config [c, d]" or a non-float dtype. */
  mismatched: string[];
}

/**
 * Compare a checkpoint's tensors (TensorReader.infos()) with the config's parameters. A tied model may still carry
 * lm_head.weight (some exporters write it); it is accepted if its shape is right and then ignored.
 */
export function checkCheckpoint(cfg: ModelConfig, infos: Iterable<Pick<TensorInfo, 'name' | 'shape' | 'dtype'>>): CheckpointReport {
  const want = new Map(expectedParameters(cfg).map((p) => [p.name, p.shape]));
  if (cfg.tieWordEmbeddings) want.set('lm_head.weight', [cfg.vocabSize, cfg.hiddenSize]);
  const seen = new Set<string>();
  const report: CheckpointReport = { missing: [], unexpected: [], mismatched: [] };
  for (const t of infos) {
    if (IGNORED.test(t.name)) continue;
    const shape = want.get(t.name);
    if (!shape) {
      report.unexpected.push(t.name);
      continue;
    }
    seen.add(t.name);
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      report.mismatched.push(`${t.name}: checkpoint [${t.shape.join(', ')}] vs config [${shape.join(', ')}]`);
    } else if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) {
      report.mismatched.push(`${t.name}: dtype ${t.dtype} is not a float type`);
    }
  }
  for (const name of want.keys()) {
    if (!seen.has(name) && !(cfg.tieWordEmbeddings && name === 'lm_head.weight')) report.missing.push(name);
  }
  return report;
}

/** Throw one line naming what is missing, unexpected or mis-shaped (the first few of each, with counts). */
export function validateCheckpoint(cfg: ModelConfig, infos: Iterable<Pick<TensorInfo, 'name' | 'shape' | 'dtype'>>, source = 'checkpoint'): void {
  const r = checkCheckpoint(cfg, infos);
  const part = (label: string, xs: string[]) =>
    xs.length ? `${xs.length} ${label} (${xs.slice(0, 3).join('; ')}${xs.length > 3 ? '; ...' : ''})` : '';
  const parts = [part('missing', r.missing), part('unexpected', r.unexpected), part('mismatched', r.mismatched)].filter(Boolean);
  if (parts.length) throw new Error(`${source} does not match its config: ${parts.join(', ')}`);
}

// ---- generation_config.json ----

export interface GenerationConfig {
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  maxNewTokens: number | null;
  maxLength: number | null;
  doSample: boolean;
  temperature: number | null;
  topK: number | null;
  topP: number | null;
  repetitionPenalty: number | null;
  raw: Record<string, unknown>;
}

export function parseGenerationConfig(raw: Json, source = 'generation_config.json'): GenerationConfig {
  const bad = (msg: string): never => { throw new Error(`${source}: ${msg}`); };
  const optNum = (key: string, integer: boolean): number | null => {
    const v = raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && !Number.isSafeInteger(v))) {
      bad(`"${key}" must be a non-negative ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const eos = raw.eos_token_id;
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  if (!eosTokenIds.every((e) => Number.isSafeInteger(e) && (e as number) >= 0)) bad(`"eos_token_id" must be a token id or a list of them`);
  const doSample = raw.do_sample ?? false;
  if (typeof doSample !== 'boolean') bad(`"do_sample" must be a boolean`);
  return {
    bosTokenId: optNum('bos_token_id', true),
    eosTokenIds: eosTokenIds as number[],
    padTokenId: optNum('pad_token_id', true),
    maxNewTokens: optNum('max_new_tokens', true),
    maxLength: optNum('max_length', true),
    doSample: doSample as boolean,
    temperature: optNum('temperature', false),
    topK: optNum('top_k', true),
    topP: optNum('top_p', false),
    repetitionPenalty: optNum('repetition_penalty', false),
    raw,
  };
}

export function loadGenerationConfig(path: string): GenerationConfig {
  return parseGenerationConfig(readJsonObject(path, 'generation config'), path);
}

/** generation_config.json of a FileSource, or null when it has none. */
export async function loadGenerationConfigFrom(src: FileSource): Promise<GenerationConfig | null> {
  if (!(await src.has(GENERATION_CONFIG_FILE))) return null;
  return parseGenerationConfig(await readSourceJson(src, GENERATION_CONFIG_FILE, 'generation config'), src.where(GENERATION_CONFIG_FILE));
}
