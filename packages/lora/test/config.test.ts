// LoraConfig validation, PEFT's module matching, and adapter_config.json parsing/writing (CPU only: no model, no GPU).
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loraConfig, loraScale, isTargeted, selectTargets, resolveAllLinear, layerIndexOf } from '../src/config.ts';
import { parsePeftConfig, toPeftJson, peftJsonText } from '../src/peft-config.ts';
import { mulberry32, kaimingUniformBound, initLoraFactors } from '../src/init.ts';

const REPO = resolve(fileURLToPath(import.meta.url), '../../../..');
const ADAPTER = resolve(REPO, '../shared/fixtures/hf-tiny/adapter');
const fixtureConfig = (): Record<string, unknown> => JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8'));

// The linear layers of a 2-layer Mistral, as transformers names its modules (named_modules order).
const SUBS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const PATHS = [...[0, 1].flatMap((i) => SUBS.map((s) => `model.layers.${i}.${s}`)), 'lm_head'];

describe('LoraConfig validation', () => {
  it('fills PEFT defaults', () => {
    const c = loraConfig();
    expect([c.r, c.lora_alpha, c.lora_dropout, c.bias, c.init_lora_weights, c.use_rslora]).toEqual([8, 8, 0, 'none', true, false]);
    expect(c.target_modules).toEqual(['q_proj', 'v_proj']);
  });

  it.each([
    [{ r: 0 }, /r must be a positive integer/],
    [{ r: 2.5 }, /r must be a positive integer/],
    [{ lora_alpha: NaN }, /lora_alpha must be a finite number/],
    [{ lora_dropout: 1 }, /lora_dropout must be a number in \[0, 1\)/],
    [{ lora_dropout: -0.1 }, /lora_dropout/],
    [{ target_modules: [] }, /target_modules must be a non-empty list/],
    [{ target_modules: ['k_proj', ''] }, /target_modules must be a non-empty list/],
    [{ target_modules: '(unclosed' }, /not a valid regular expression/],
    [{ bias: 'all' as 'none' }, /bias "all" is not supported/],
    [{ init_lora_weights: 'pissa' as 'gaussian' }, /init_lora_weights "pissa" is not supported/],
    [{ layers_to_transform: [0, -1] }, /layers_to_transform must be a layer index/],
    [{ target_modules: '.*_proj', layers_to_transform: [0] }, /layers_to_transform cannot be used when target_modules is a string/],
    [{ seed: 0.5 }, /seed must be an integer/],
  ])('refuses %j', (input, msg) => {
    expect(() => loraConfig(input)).toThrow(msg);
  });

  it('scale is alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    expect(loraScale(loraConfig({ r: 16, lora_alpha: 8 }))).toBe(0.5);
    expect(loraScale(loraConfig({ r: 16, lora_alpha: 8, use_rslora: true }))).toBe(2);
    expect(loraScale(loraConfig({ r: 3, lora_alpha: 6, use_rslora: true }))).toBeCloseTo(6 / Math.sqrt(3), 15);
  });
});

describe('target matching (PEFT check_target_module_exists)', () => {
  const select = (input: Parameters<typeof loraConfig>[0]) => selectTargets(loraConfig(input), PATHS).targets;

  it('a list matches exact paths or dotted suffixes', () => {
    expect(select({ target_modules: ['k_proj', 'v_proj'] })).toEqual([
      'model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.k_proj', 'model.layers.1.self_attn.v_proj',
    ]);
    // "proj" is not a dotted suffix of "k_proj": no partial-name matches
    expect(() => select({ target_modules: ['proj'] })).toThrow(/"proj" match no linear layer/);
    expect(select({ target_modules: ['self_attn.o_proj'] })).toEqual(['model.layers.0.self_attn.o_proj', 'model.layers.1.self_attn.o_proj']);
  });

  it('a string is a regex that must match the whole path', () => {
    expect(select({ target_modules: String.raw`.*\.1\.mlp\.(up|down)_proj` })).toEqual(['model.layers.1.mlp.up_proj', 'model.layers.1.mlp.down_proj']);
    // re.fullmatch: "k_proj" as a regex does not match "model.layers.0.self_attn.k_proj"
    expect(() => select({ target_modules: 'k_proj' })).toThrow(/"k_proj" match no linear layer/);
    // the alternation is anchored as a whole, not only its first branch
    expect(select({ target_modules: 'lm_head|nothing' })).toEqual(['lm_head']);
  });

  it('all-linear is every linear layer but lm_head, saved as the names', () => {
    const { targets, target_modules } = selectTargets(loraConfig({ target_modules: 'ALL-LINEAR' }), PATHS);
    expect(targets).toHaveLength(14);
    expect(targets).not.toContain('lm_head');
    expect(target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    expect(resolveAllLinear(['k_proj'], PATHS)).toEqual(['k_proj']);
  });

  it('layers_to_transform keeps only those layer indices (an int is one layer)', () => {
    expect(select({ target_modules: ['q_proj', 'down_proj'], layers_to_transform: [1] })).toEqual(['model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.down_proj']);
    expect(select({ target_modules: ['q_proj'], layers_to_transform: 0 })).toEqual(['model.layers.0.self_attn.q_proj']);
    expect(() => select({ target_modules: ['q_proj'], layers_to_transform: [5] })).toThrow(/"q_proj" match no linear layer of the model in layers \[5\]/);
    expect(layerIndexOf('model.layers.12.mlp.up_proj')).toBe(12);
    expect(layerIndexOf('lm_head')).toBeNull();
  });

  it('a full path in the list bypasses layers_to_transform, as in PEFT', () => {
    const c = loraConfig({ target_modules: ['model.layers.0.self_attn.q_proj', 'v_proj'], layers_to_transform: [1] });
    expect(isTargeted(c, 'model.layers.0.self_attn.q_proj')).toBe(true);
    expect(isTargeted(c, 'model.layers.0.self_attn.v_proj')).toBe(false);
    expect(isTargeted(c, 'model.layers.1.self_attn.v_proj')).toBe(true);
    expect(select({ target_modules: ['lm_head'], layers_to_transform: [0] })).toEqual(['lm_head']);
  });

  it('exclude_modules wins over target_modules', () => {
    expect(select({ target_modules: 'all-linear', exclude_modules: ['mlp.down_proj', 'q_proj'] })).toHaveLength(10);
    expect(select({ target_modules: ['k_proj'], exclude_modules: String.raw`.*\.0\..*` })).toEqual(['model.layers.1.self_attn.k_proj']);
    expect(() => select({ target_modules: ['k_proj'], exclude_modules: ['k_proj'] })).toThrow(/excludes every targeted layer/);
  });
});

describe('adapter_config.json', () => {
  it('parses the PEFT fixture', () => {
    const c = parsePeftConfig(fixtureConfig(), 'fixture');
    expect([c.r, c.lora_alpha, c.lora_dropout, c.use_rslora, c.init_lora_weights]).toEqual([4, 8, 0, false, true]);
    expect(c.target_modules).toEqual(['k_proj', 'v_proj']);
    expect(c.base_model_name_or_path).toBe('hf-tiny');
  });

  it('writes back every field PEFT wrote, with the same values, sorted as PEFT sorts them', () => {
    const raw = fixtureConfig();
    const c = parsePeftConfig(raw, 'fixture');
    const out = toPeftJson(c, c.target_modules);
    expect(Object.keys(out)).toEqual(Object.keys(raw).sort());
    for (const k of Object.keys(raw)) expect(out[k], k).toEqual(raw[k]);
    expect(JSON.parse(peftJsonText(out))).toEqual(raw);
  });

  it.each([
    [{ peft_type: 'IA3' }, /peft_type "IA3" is not supported/],
    [{ task_type: 'SEQ_CLS' }, /task_type "SEQ_CLS" is not supported/],
    [{ use_dora: true }, /use_dora = true: DoRA/],
    [{ bias: 'lora_only' }, /bias "lora_only" is not supported/],
    [{ fan_in_fan_out: true }, /fan_in_fan_out = true/],
    [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
    [{ rank_pattern: { q_proj: 8 } }, /rank_pattern/],
    [{ lora_bias: true }, /lora_bias/],
    [{ init_lora_weights: 'pissa_niter_4' }, /rewrites the base weights/],
    [{ layers_pattern: 'h' }, /layers_pattern "h" is not supported/],
    [{ r: -1 }, /r must be a positive integer/],
    [{ target_modules: 7 }, /target_modules must be/],
  ])('refuses %j by name', (patch, msg) => {
    expect(() => parsePeftConfig({ ...fixtureConfig(), ...patch }, 'bad.json')).toThrow(msg);
  });

  it('accepts what PEFT accepts for a missing task type and target list (q_proj, v_proj for llama/mistral)', () => {
    const c = parsePeftConfig({ ...fixtureConfig(), task_type: null, target_modules: null }, 'x');
    expect(c.target_modules).toEqual(['q_proj', 'v_proj']);
  });
});

describe('initialisation', () => {
  it('kaiming-uniform(a=√5) bound is 1/√in', () => {
    for (const n of [1, 7, 112, 960]) expect(kaimingUniformBound(n)).toBeCloseTo(1 / Math.sqrt(n), 14);
  });

  it('the PRNG is seeded: same seed, same factors; another seed, others', () => {
    const a1 = initLoraFactors(true, 4, 56, 8, mulberry32(3)).a;
    const a2 = initLoraFactors(true, 4, 56, 8, mulberry32(3)).a;
    const a3 = initLoraFactors(true, 4, 56, 8, mulberry32(4)).a;
    expect(a1).toEqual(a2);
    expect(a1).not.toEqual(a3);
  });

  it('gaussian A has std 1/r and zero mean; B is zero', () => {
    const r = 4;
    const { a, b } = initLoraFactors('gaussian', r, 5000, 3, mulberry32(1));
    let s = 0;
    let s2 = 0;
    for (const v of a) {
      s += v;
      s2 += v * v;
    }
    const n = a.length;
    const mean = s / n;
    const std = Math.sqrt(s2 / n - mean * mean);
    // 20000 samples: the std of the sample std is about σ/√(2n) = 0.5%; 3% is far outside chance
    expect(Math.abs(std - 1 / r) / (1 / r)).toBeLessThan(0.03);
    expect(Math.abs(mean)).toBeLessThan((4 * (1 / r)) / Math.sqrt(n));
    expect(b.every((v) => v === 0)).toBe(true);
  });

  it('init_lora_weights=false makes B random too, within 1/√r', () => {
    const r = 4;
    const { b } = initLoraFactors(false, r, 10, 500, mulberry32(2));
    const m = Math.max(...b.map(Math.abs));
    expect(m).toBeLessThanOrEqual(Math.fround(1 / Math.sqrt(r)));
    expect(m).toBeGreaterThan(0.95 / Math.sqrt(r));
  });
});
