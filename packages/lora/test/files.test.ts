// PEFT adapter files: load the fixture written by PEFT, save it back with PEFT's keys and config, refuse what we cannot
// load by name; and the merged-model directory export.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, symlinkSync, mkdirSync, readdirSync, existsSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, dispose } from '@dawngrad/tensor';
import {
  loadModel, SafetensorsFile, writeSafetensors, f32ToBf16, bf16ToF32, f32ToF16, f16ToF32, type MistralForCausalLM, type TensorToWrite,
} from '@dawngrad/model';
import { loadAdapter, saveAdapter, inject, writeModelDirectory, mergeToDirectory, type LoraModel } from '../src/index.ts';
import { ADAPTER, HF_TINY, maxAbsDiff } from './helpers.ts';

let tmp: string;
let model: MistralForCausalLM;
let lora: LoraModel | null = null;
let n = 0;
const fresh = () => join(tmp, `case${n++}`);

/** The fixture's tensors by saved key, as float64 (they are stored F64). */
async function fixtureTensors(): Promise<Map<string, { shape: number[]; f64: Float64Array }>> {
  const f = await SafetensorsFile.open(join(ADAPTER, 'adapter_model.safetensors'));
  const out = new Map<string, { shape: number[]; f64: Float64Array }>();
  for (const name of f.names()) {
    const b = await f.readBytes(name);
    out.set(name, { shape: f.info(name).shape, f64: new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8) });
  }
  await f.close();
  return out;
}
const fixtureConfig = () => JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;

/** An adapter directory with the fixture's config (patched) and the given tensors. */
async function craftAdapter(configPatch: Record<string, unknown>, tensors: Record<string, TensorToWrite>): Promise<string> {
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...fixtureConfig(), ...configPatch }));
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  return dir;
}
async function fixtureAs(dtype: 'F64' | 'F32', patch: (t: Record<string, TensorToWrite>) => void = () => {}): Promise<Record<string, TensorToWrite>> {
  const t: Record<string, TensorToWrite> = {};
  for (const [k, v] of await fixtureTensors()) t[k] = { dtype, shape: v.shape, data: v.f64 };
  patch(t);
  return t;
}

beforeAll(async () => {
  await init();
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-lora-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  dispose();
});
beforeEach(async () => {
  model = await loadModel(HF_TINY);
});
afterEach(() => {
  if (lora) lora.dispose();
  else model.dispose();
  lora = null;
});

describe('load a PEFT adapter', () => {
  it('reads the fixture: config, PEFT order, values converted from F64', async () => {
    lora = await loadAdapter(ADAPTER, model);
    expect([lora.config.r, lora.config.lora_alpha, lora.scale]).toEqual([4, 8, 2]);
    const peftTensors = await fixtureTensors();
    for (const l of lora.layers) {
      for (const [f, v] of [['A', l.A], ['B', l.B]] as const) {
        const want = peftTensors.get(`base_model.model.${l.path}.lora_${f}.weight`)!;
        expect(v.shape).toEqual(want.shape);
        expect(maxAbsDiff(await v.data.toArray(), Float32Array.from(want.f64))).toBe(0);
      }
    }
  });

  it.each(['BF16', 'F16'] as const)('reads %s tensors', async (dtype) => {
    const [enc, dec] = dtype === 'BF16' ? [f32ToBf16, bf16ToF32] : [f32ToF16, f16ToF32];
    const t: Record<string, TensorToWrite> = {};
    const want = new Map<string, Float32Array>();
    for (const [k, v] of await fixtureTensors()) {
      const bits = enc(Float32Array.from(v.f64));
      t[k] = { dtype, shape: v.shape, data: bits };
      want.set(k, dec(bits));
    }
    lora = await loadAdapter(await craftAdapter({}, t), model);
    const l = lora.layers[3]!;
    expect(maxAbsDiff(await l.B.data.toArray(), want.get(`base_model.model.${l.path}.lora_B.weight`)!)).toBe(0);
  });

  const cases: [string, () => Promise<string>, RegExp][] = [
    ['another peft type', () => fixtureAs('F64').then((t) => craftAdapter({ peft_type: 'LOHA' }, t)), /peft_type "LOHA" is not supported/],
    ['DoRA', () => fixtureAs('F64').then((t) => craftAdapter({ use_dora: true }, t)), /use_dora = true/],
    ['a bias', () => fixtureAs('F64').then((t) => craftAdapter({ bias: 'all' }, t)), /bias "all" is not supported/],
    ['fan_in_fan_out', () => fixtureAs('F64').then((t) => craftAdapter({ fan_in_fan_out: true }, t)), /fan_in_fan_out = true/],
    ['targets absent from the model', () => fixtureAs('F64').then((t) => craftAdapter({ target_modules: ['k_proj', 'c_attn'] }, t)), /"c_attn" match no linear layer/],
    ['r disagreeing with the tensors', () => fixtureAs('F64').then((t) => craftAdapter({ r: 8 }, t)), /lora_A.weight has shape \[4, 112\], expected \[8, 112\]/],
    ['a layer-shape mismatch', () => fixtureAs('F64', (t) => {
      const k = 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight';
      t[k] = { dtype: 'F64', shape: [55, 4], data: new Float64Array(220) };
    }).then((t) => craftAdapter({}, t)), /v_proj.lora_B.weight has shape \[55, 4\], expected \[56, 4\]/],
    ['a missing key', () => fixtureAs('F64', (t) => {
      delete t['base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight'];
    }).then((t) => craftAdapter({}, t)), /missing 1 tensor\(s\).*layers\.1\.self_attn\.k_proj\.lora_A\.weight/],
    ['an extra key', () => fixtureAs('F64', (t) => {
      t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'] = { dtype: 'F64', shape: [4, 112], data: new Float64Array(448) };
    }).then((t) => craftAdapter({}, t)), /1 tensor\(s\) the config does not target, e\.g\. .*q_proj\.lora_A\.weight/],
    ['in-memory names with .default', () => fixtureAs('F64', (t) => {
      for (const k of Object.keys(t)) {
        t[k.replace('.weight', '.default.weight')] = t[k]!;
        delete t[k];
      }
    }).then((t) => craftAdapter({}, t)), /missing 8 tensor/],
    ['integer tensors', () => fixtureAs('F64', (t) => {
      const k = 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight';
      t[k] = { dtype: 'I32', shape: [4, 112], data: new Int32Array(448) };
    }).then((t) => craftAdapter({}, t)), /is I32; LoRA weights must be one of F32, BF16, F16, F64/],
    ['a weights file that is a symlink out of the directory', async () => {
      const dir = fresh();
      mkdirSync(dir);
      copyFileSync(join(ADAPTER, 'adapter_config.json'), join(dir, 'adapter_config.json'));
      symlinkSync(join(ADAPTER, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
      return dir;
    }, /is a symlink to .*, outside/],
    ['a pickle-only adapter', async () => {
      const dir = fresh();
      mkdirSync(dir);
      copyFileSync(join(ADAPTER, 'adapter_config.json'), join(dir, 'adapter_config.json'));
      writeFileSync(join(dir, 'adapter_model.bin'), 'not really');
      return dir;
    }, /only adapter_model\.bin \(a pickle\)/],
    ['a missing directory', async () => join(tmp, 'nope'), /adapter directory .* does not exist/],
  ];
  it.each(cases)('refuses %s', async (_what, make, msg) => {
    const dir = await make();
    await expect(loadAdapter(dir, model)).rejects.toThrow(msg);
    expect(model.linears().every((l) => l.lowRank === null)).toBe(true);
  });
});

describe('save', () => {
  it('round-trips the fixture: PEFT keys, F32 tensors equal to the converted F64, every config field', async () => {
    lora = await loadAdapter(ADAPTER, model);
    const out = fresh();
    await saveAdapter(lora, out);
    expect(readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const peftTensors = await fixtureTensors();
    const f = await SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
    expect(f.names().sort()).toEqual([...peftTensors.keys()].sort());
    expect(f.metadata).toEqual({ format: 'pt' });
    for (const [k, v] of peftTensors) {
      expect(f.info(k).dtype).toBe('F32');
      expect(f.info(k).shape).toEqual(v.shape);
      const got = await f.readBytes(k);
      const want = new Uint8Array(Float32Array.from(v.f64).buffer);
      expect(Buffer.compare(Buffer.from(got), Buffer.from(want)), k).toBe(0);
    }
    await f.close();
    const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(saved).toEqual(fixtureConfig());
    expect(Object.keys(saved)).toEqual(Object.keys(saved).sort());
  });

  it('a fresh adapter saves its resolved all-linear targets and reloads to the same values', async () => {
    lora = inject(model, { r: 2, lora_alpha: 4, target_modules: 'all-linear', init_lora_weights: false, use_rslora: true, seed: 3 });
    const out = fresh();
    await saveAdapter(lora, out);
    const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(saved.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    expect([saved.r, saved.lora_alpha, saved.use_rslora, saved.init_lora_weights, saved.inference_mode]).toEqual([2, 4, true, false, true]);
    const want = await Promise.all(lora.parameters().map((p) => p.data.toArray()));
    lora.dispose();
    model = await loadModel(HF_TINY);
    lora = await loadAdapter(out, model);
    expect(lora.layers).toHaveLength(14);
    const got = await Promise.all(lora.parameters().map((p) => p.data.toArray()));
    for (let i = 0; i < want.length; i++) expect(maxAbsDiff(got[i]!, want[i]!)).toBe(0);
  });

  it('a failed save leaves no directory behind', async () => {
    lora = inject(model, { target_modules: ['q_proj'] });
    lora.layers[1]!.B.data.dispose(); // the writer will fail reading it back
    const out = fresh();
    await expect(saveAdapter(lora, out)).rejects.toThrow();
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});

describe('merged model directory', () => {
  it('writes config, shards + index, tokenizer and generation config; the loader reads back the merged weights', async () => {
    lora = await loadAdapter(ADAPTER, model);
    lora.merge();
    const out = fresh();
    const r = await writeModelDirectory(model, HF_TINY, out, { maxShardBytes: 1_000_000 });
    expect(r.index).toBe(join(out, 'model.safetensors.index.json'));
    expect(r.files.length).toBeGreaterThan(1);
    const files = readdirSync(out).sort();
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json']) expect(files).toContain(f);
    expect(readFileSync(join(out, 'tokenizer.json'))).toEqual(readFileSync(join(HF_TINY, 'tokenizer.json')));
    expect(readFileSync(join(out, 'config.json'))).toEqual(readFileSync(join(HF_TINY, 'config.json'))); // F32 in, F32 out: unchanged
    const back = await loadModel(out);
    const mine = new Map(model.namedParameters().map((p) => [p.name, p.param]));
    for (const { name, param } of back.namedParameters()) {
      expect(maxAbsDiff(await param.data.toArray(), await mine.get(name)!.data.toArray()), name).toBe(0);
    }
    back.dispose();
    await expect(writeModelDirectory(model, HF_TINY, out)).rejects.toThrow(/is not empty; refusing to overwrite/);
  });

  it('mergeToDirectory with --dtype bf16 rewrites config.dtype and stores BF16', async () => {
    const out = fresh();
    const r = await mergeToDirectory(HF_TINY, ADAPTER, out, { dtype: 'BF16' });
    expect(r.merged).toHaveLength(4);
    expect(r.index).toBeNull();
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).dtype).toBe('bfloat16');
    const f = await SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(new Set(f.infos().map((i) => i.dtype))).toEqual(new Set(['BF16']));
    await f.close();
  });
});
