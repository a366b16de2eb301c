import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// Imported from the files themselves, not index.ts: these tests need no GPU runtime.
import {
  parseConfig, loadConfig, expectedParameters, checkCheckpoint, validateCheckpoint, loadGenerationConfig, parseGenerationConfig,
} from '../src/config.ts';
import { openCheckpoint } from '../src/checkpoint.ts';

const SHARED = resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const LITE = join(SHARED, 'models/lite-oute-1-300m-instruct');
const TINY = join(SHARED, 'models/tweet-mistral-tiny');
const HF = join(SHARED, 'fixtures/hf-tiny');
const json = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

describe('config.json', () => {
  it('parses Lite-Oute (rope_theta at the top level, eos as one id)', () => {
    const raw = json(join(LITE, 'config.json'));
    const c = loadConfig(join(LITE, 'config.json'));
    expect(c).toMatchObject({
      architecture: 'MistralForCausalLM', hiddenSize: raw.hidden_size, intermediateSize: raw.intermediate_size,
      numHiddenLayers: raw.num_hidden_layers, numAttentionHeads: raw.num_attention_heads, numKeyValueHeads: raw.num_key_value_heads,
      headDim: raw.hidden_size / raw.num_attention_heads, rmsNormEps: raw.rms_norm_eps, ropeTheta: raw.rope_theta,
      tieWordEmbeddings: false, vocabSize: raw.vocab_size, maxPositionEmbeddings: raw.max_position_embeddings,
      bosTokenId: raw.bos_token_id, eosTokenIds: [raw.eos_token_id], padTokenId: raw.pad_token_id, slidingWindow: raw.sliding_window,
    });
  });

  it('parses transformers-5 configs (rope_parameters, explicit head_dim)', () => {
    for (const dir of [TINY, HF]) {
      const raw = json(join(dir, 'config.json'));
      const c = loadConfig(join(dir, 'config.json'));
      expect(c.ropeTheta).toBe(raw.rope_parameters.rope_theta);
      expect(c.headDim).toBe(raw.head_dim);
      expect(c.slidingWindow).toBeNull();
    }
  });

  const base = () => json(join(HF, 'config.json'));
  const err = (raw: Record<string, unknown>) => { try { parseConfig(raw, 'cfg.json'); return ''; } catch (e) { return (e as Error).message; } };

  it('applies the HF defaults: kv heads = heads, head_dim = hidden / heads, eos list, Llama', () => {
    const raw = base();
    delete raw.num_key_value_heads; delete raw.head_dim; delete raw.rope_parameters;
    raw.architectures = ['LlamaForCausalLM'];
    raw.eos_token_id = [4, 2];
    const c = parseConfig(raw);
    expect(c.numKeyValueHeads).toBe(raw.num_attention_heads);
    expect(c.headDim).toBe(raw.hidden_size / raw.num_attention_heads);
    expect(c.ropeTheta).toBe(10000);
    expect(c.eosTokenIds).toEqual([4, 2]);
    expect(c.architecture).toBe('LlamaForCausalLM');
    // transformers' Llama has no sliding window; Mistral reads it
    expect(parseConfig({ ...raw, sliding_window: 4 }).slidingWindow).toBeNull();
    expect(parseConfig({ ...base(), sliding_window: 4 }).slidingWindow).toBe(4);
  });

  it('refuses unknown architectures, missing fields and unsupported features by name', () => {
    expect(err({ ...base(), architectures: ['GPT2LMHeadModel'] })).toMatch(/^cfg\.json: architecture \["GPT2LMHeadModel"\] is not supported/);
    const noHidden = base(); delete noHidden.hidden_size;
    expect(err(noHidden)).toBe('cfg.json: missing required field "hidden_size"');
    const noEps = base(); delete noEps.rms_norm_eps;
    expect(err(noEps)).toMatch(/missing required field "rms_norm_eps"/);
    expect(err({ ...base(), rope_parameters: { rope_theta: 1e4, rope_type: 'yarn' } })).toMatch(/rope_type "yarn" is not supported/);
    expect(err({ ...base(), rope_scaling: { type: 'linear', factor: 2 } })).toMatch(/rope_scaling "linear" is not supported/);
    expect(err({ ...base(), hidden_act: 'gelu' })).toMatch(/hidden_act "gelu" is not supported/);
    expect(err({ ...base(), num_key_value_heads: 3 })).toMatch(/multiple of num_key_value_heads \(3\)/);
    expect(err({ ...base(), num_hidden_layers: 0 })).toMatch(/"num_hidden_layers" must be a positive integer, got 0/);
    expect(err({ ...base(), attention_bias: true })).toMatch(/"attention_bias": true is not supported/);
    expect(err({ ...base(), eos_token_id: 5000 })).toMatch(/"eos_token_id" 5000 is outside the vocabulary/);
    // The defaults that make these refusals meaningful are accepted.
    expect(err({ ...base(), rope_scaling: null, attention_bias: false })).toBe('');
  });
});

describe('expected parameters and checkpoint validation', () => {
  it('matches the tensors actually present in both shared checkpoints, name for name and shape for shape', async () => {
    for (const dir of [TINY, HF]) {
      const cfg = loadConfig(join(dir, 'config.json'));
      const ck = await openCheckpoint(dir);
      const have = Object.fromEntries(ck.infos().map((i) => [i.name, i.shape]));
      const want = Object.fromEntries(expectedParameters(cfg).map((p) => [p.name, p.shape]));
      expect(want).toEqual(have);
      await ck.close();
    }
  });

  it('names missing, unexpected and mis-shaped tensors', async () => {
    const cfg = loadConfig(join(HF, 'config.json'));
    const ck = await openCheckpoint(HF);
    const infos = ck.infos().filter((i) => i.name !== 'model.norm.weight');
    infos.push({ ...infos[0], name: 'model.layers.9.mlp.up_proj.weight' });
    const k = infos.findIndex((i) => i.name === 'model.layers.0.self_attn.k_proj.weight');
    infos[k] = { ...infos[k], shape: [infos[k].shape[1], infos[k].shape[0]] }; // stored transposed
    const r = checkCheckpoint(cfg, infos);
    expect(r.missing).toEqual(['model.norm.weight']);
    expect(r.unexpected).toEqual(['model.layers.9.mlp.up_proj.weight']);
    const kv = cfg.numKeyValueHeads * cfg.headDim, C = cfg.hiddenSize;
    expect(r.mismatched).toEqual([`model.layers.0.self_attn.k_proj.weight: checkpoint [${C}, ${kv}] vs config [${kv}, ${C}]`]);
    expect(() => validateCheckpoint(cfg, infos, 'ckpt')).toThrow(/^ckpt does not match its config: 1 missing \(model\.norm\.weight\), 1 unexpected .*, 1 mismatched/);
    await ck.close();
  });

  it('a tied config expects no lm_head but tolerates one; rotary inv_freq buffers are ignored', async () => {
    const raw = json(join(HF, 'config.json'));
    const tied = parseConfig({ ...raw, tie_word_embeddings: true });
    expect(expectedParameters(tied).some((p) => p.name === 'lm_head.weight')).toBe(false);
    const ck = await openCheckpoint(HF);
    const infos = ck.infos();
    expect(() => validateCheckpoint(tied, infos)).not.toThrow();
    expect(() => validateCheckpoint(tied, infos.filter((i) => i.name !== 'lm_head.weight'))).not.toThrow();
    const withRope = [...infos, { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [14], dtype: 'F32' as const }];
    expect(checkCheckpoint(parseConfig(raw), withRope).unexpected).toEqual([]);
    await ck.close();
  });
});

describe('generation_config.json', () => {
  it('parses the shared files', () => {
    const g = loadGenerationConfig(join(LITE, 'generation_config.json'));
    const raw = json(join(LITE, 'generation_config.json'));
    expect(g).toMatchObject({ bosTokenId: raw.bos_token_id, eosTokenIds: [raw.eos_token_id], padTokenId: raw.pad_token_id, doSample: false, maxNewTokens: null });
    expect(loadGenerationConfig(join(HF, 'generation_config.json')).eosTokenIds).toEqual([json(join(HF, 'generation_config.json')).eos_token_id]);
  });
  it('accepts eos lists and sampling fields, refuses nonsense', () => {
    const g = parseGenerationConfig({ eos_token_id: [2, 32000], do_sample: true, temperature: 0.7, top_p: 0.9, max_new_tokens: 64 });
    expect(g).toMatchObject({ eosTokenIds: [2, 32000], doSample: true, temperature: 0.7, topP: 0.9, maxNewTokens: 64 });
    expect(() => parseGenerationConfig({ max_new_tokens: -1 }, 'g.json')).toThrow('g.json: "max_new_tokens" must be a non-negative integer, got -1');
    expect(() => parseGenerationConfig({ eos_token_id: 'x' }, 'g.json')).toThrow(/eos_token_id/);
  });
});
