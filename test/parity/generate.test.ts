// Parity with transformers' generate() (greedy, KV cache) on shared/fixtures/hf-tiny: the PEFT adapter after its three
// AdamW steps, 12 new tokens from the first prompt. Float32 may flip a step whose top-2 logit margin is tiny, so the
// ids are compared up to the first step with a margin under 1e-3 (all 12 when there is none).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { SafetensorsFile, loadModel, generate, setData } from '@dawngrad/model';
import { loadAdapter, type LoraModel } from '@dawngrad/lora';
import { HF_TINY } from '../shared.ts';

const meta = JSON.parse(readFileSync(join(HF_TINY, 'reference.json'), 'utf8'));
const hfGenerate: { prompt_ids: number[]; new_ids: number[]; top2_margins: number[] } = meta.generate;
let lora: LoraModel;

beforeAll(async () => {
  await init();
  lora = await loadAdapter(join(HF_TINY, 'adapter'), await loadModel(HF_TINY));
  const st = await SafetensorsFile.open(join(HF_TINY, 'reference.safetensors'));
  try {
    const names = lora.namedParameters().map((p) => p.name);
    expect(names).toEqual(meta['lora.names']);
    for (const { name, param } of lora.namedParameters()) {
      setData(param, Tensor.fromArray((await st.readTensor(`lora.after_step2.${name}`)).data as Float32Array, param.shape));
    }
  } finally {
    await st.close();
  }
  lora.eval();
});
afterAll(() => {
  lora?.dispose();
  dispose();
});

describe('hf-tiny generation parity with transformers', () => {
  it('greedy ids with the KV cache equal transformers up to the first near-tie', async () => {
    expect(hfGenerate.new_ids).toHaveLength(12);
    const tie = hfGenerate.top2_margins.findIndex((m) => m < 1e-3);
    const n = tie < 0 ? hfGenerate.new_ids.length : tie;
    const g = await generate(lora.base, [hfGenerate.prompt_ids], { maxNewTokens: hfGenerate.new_ids.length, greedy: true });
    expect(g.ids[0]!.slice(0, n)).toEqual(hfGenerate.new_ids.slice(0, n));
    expect(g.ids[0]).toHaveLength(hfGenerate.new_ids.length);
  });

  it('the same prompt in a batch with shorter and longer rows generates the same ids', async () => {
    const p = hfGenerate.prompt_ids;
    const g = await generate(lora.base, [p.slice(0, 20), p, p.slice(0, 50), [...p, ...hfGenerate.new_ids.slice(0, 3)]], { maxNewTokens: 12 });
    expect(g.ids[1]).toEqual((await generate(lora.base, [p], { maxNewTokens: 12 })).ids[0]);
    // the row that starts 3 tokens further continues transformers' sequence
    const tie = hfGenerate.top2_margins.findIndex((m) => m < 1e-3);
    const n = tie < 0 ? hfGenerate.new_ids.length : tie;
    expect(g.ids[3]!.slice(0, n - 3)).toEqual(hfGenerate.new_ids.slice(3, n));
  });
});
