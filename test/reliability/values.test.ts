// Numbers that would silently corrupt a result: weights holding NaN or Inf are refused when a model or an adapter is
// loaded (naming the tensor and the count), and `merge --dtype f16` refuses values f16 cannot hold (it would write
// Inf), naming the tensor — one line, exit 1, nothing written.
import { describe, it, expect } from 'vitest';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  copyAdapter, copyModel, dawngrad, entries, expectRefusal, expectRefused, readRaw, refusalScratch, tree, writeRaw, HF_TINY,
  type RawSafetensors,
} from './helpers.ts';

const scratch = refusalScratch();

/** Overwrite `count` values of tensor `name` (F32 or F64) in a raw safetensors file with `value`, spread over the tensor. */
function poison(raw: RawSafetensors, name: string, value: number, count: number): void {
  const e = entries(raw).find(([k]) => k === name)![1];
  const [from, to] = e.data_offsets;
  const Arr = e.dtype === 'F64' ? Float64Array : Float32Array;
  const v = new Arr(raw.data.slice(from, to).buffer as ArrayBuffer);
  for (let i = 0; i < count; i++) v[Math.floor((i * v.length) / count)] = value;
  raw.data.set(new Uint8Array(v.buffer), from);
}

const Q = 'model.layers.1.self_attn.q_proj.weight';
const A = 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight';

describe.concurrent('non-finite weights are refused where they are loaded', () => {
  it('a model weight holding NaN (eval)', async () => {
    const model = copyModel(join(scratch.tmp, 'nan-model'));
    const raw = readRaw(join(model, 'model.safetensors'));
    poison(raw, Q, NaN, 3);
    writeRaw(join(model, 'model.safetensors'), raw);
    await expectRefused('eval', { model, data: scratch.data },
      /^dawngrad: model \S+nan-model: model\.layers\.1\.self_attn\.q_proj\.weight holds 3 non-finite values \(the first: NaN\) of 12544; these weights are damaged$/);
  });

  it('a model weight holding Inf (train: refused before the run directory exists)', async () => {
    const model = copyModel(join(scratch.tmp, 'inf-model'));
    const raw = readRaw(join(model, 'model.safetensors'));
    poison(raw, 'model.norm.weight', -Infinity, 1);
    writeRaw(join(model, 'model.safetensors'), raw);
    await expectRefused('train', { model, data: scratch.data }, /model \S+inf-model: model\.norm\.weight holds 1 non-finite value \(the first: -Infinity\) of 112;/);
  });

  it.each(['merge', 'eval'] as const)('an adapter holding NaN (%s)', async (cmd) => {
    const parent = join(scratch.tmp, `nan-adapter-${cmd}`);
    mkdirSync(parent);
    const adapter = copyAdapter(join(parent, 'adapter'));
    const raw = readRaw(join(adapter, 'adapter_model.safetensors'));
    poison(raw, A, NaN, 28);
    writeRaw(join(adapter, 'adapter_model.safetensors'), raw);
    await expectRefused(cmd, { adapter, data: scratch.data },
      /^dawngrad: adapter \S+\/adapter_model\.safetensors: base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight holds 28 non-finite values \(the first: NaN\) of 448; these weights are damaged$/);
  });
});

describe.concurrent('f16 conversion', () => {
  it('merge --dtype f16 refuses values beyond f16 (they would become Inf), naming the tensor; no --out', async () => {
    const model = copyModel(join(scratch.tmp, 'big-model'));
    const raw = readRaw(join(model, 'model.safetensors'));
    poison(raw, Q, 3e5, 5);
    writeRaw(join(model, 'model.safetensors'), raw);
    const cwd = join(scratch.tmp, 'big-cwd');
    mkdirSync(cwd);
    const r = await dawngrad(['merge', '--model', model, '--adapter', join(HF_TINY, 'adapter'), '--out', join(cwd, 'merged'), '--dtype', 'f16'], { cwd });
    expectRefusal(r, 1, /^dawngrad: writeSafetensors: tensor "model\.layers\.1\.self_attn\.q_proj\.weight" holds 5 values outside f16's range \(up to 3\.000e\+5; f16's largest is 65504\): write it as bf16 or f32$/);
    expect(tree(cwd), 'merge left something behind').toEqual([]);
    // bf16 holds them: the same merge succeeds
    const ok = await dawngrad(['merge', '--model', model, '--adapter', join(HF_TINY, 'adapter'), '--out', join(cwd, 'merged'), '--dtype', 'bf16'], { cwd });
    expect(ok.code, ok.rawStderr).toBe(0);
    expect(readdirSync(join(cwd, 'merged'))).toContain('model.safetensors');
  });
});
