// Mistral's sliding-window attention against transformers on shared/fixtures/hf-tiny: sliding_window.safetensors holds
// the logits of the fixture batch with config.sliding_window = 4 and 16 (a query at i sees keys i − W < j ≤ i). Each
// path that runs attention is compared on the real (unpadded) positions: the plain forward, the shared-prefix forward
// that training uses, and the KV cache (a prefill, then one decode step per remaining token, teacher-forced).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { init, dispose, Tensor, scope } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import {
  SafetensorsFile,
  loadModel,
  MistralForCausalLM,
  KVCache,
  prefill,
  decodeStep,
  commonPrefixLength,
} from '@dawngrad/model';
import { HF_TINY, maxAbs } from '../shared.ts';

let base: MistralForCausalLM;
let ids: Int32Array;
let mask: Int32Array;
let B: number;
let T: number;
let V: number;
const want = new Map<number, Float32Array>(); // window -> transformers' logits [B, T, V]
let baseLogits: Float32Array;

beforeAll(async () => {
  await init();
  base = await loadModel(HF_TINY);
  const ref = await SafetensorsFile.open(join(HF_TINY, 'reference.safetensors'));
  const sw = await SafetensorsFile.open(join(HF_TINY, 'sliding_window.safetensors'));
  try {
    const t = await ref.readTensor('input_ids');
    [B, T] = t.shape as [number, number];
    ids = t.data as Int32Array;
    mask = (await ref.readTensor('attention_mask')).data as Int32Array;
    baseLogits = (await ref.readTensor('base.logits')).data as Float32Array;
    for (const w of [4, 16]) want.set(w, (await sw.readTensor(`sliding_window_${w}.logits`)).data as Float32Array);
  } finally {
    await ref.close();
    await sw.close();
  }
  V = base.config.vocabSize;
});
afterAll(() => {
  base?.dispose();
  dispose();
});

/** The fixture model with config.sliding_window = W, sharing the loaded weights. */
const windowed = (w: number) => new MistralForCausalLM({ ...base.config, slidingWindow: w }, base.embedTokens, base.layers, base.norm, base.lmHead);
const lens = () => Array.from({ length: B }, (_, b) => mask.subarray(b * T, (b + 1) * T).reduce((a, x) => a + x, 0));

/** Largest |got − want| over the real positions; `row(b, t)` gives our logits of row b, position t. */
function errOnReal(row: (b: number, t: number) => Float32Array, ref: Float32Array, from = (_b: number) => 0): number {
  let m = 0;
  lens().forEach((n, b) => {
    for (let t = from(b); t < n; t++) m = Math.max(m, maxAbs(row(b, t), ref.subarray((b * T + t) * V, (b * T + t + 1) * V)));
  });
  return m;
}

async function readLogits(f: () => Tensor): Promise<Float32Array> {
  const out = noGrad(() => scope(f));
  try {
    return (await out.toArray()) as Float32Array;
  } finally {
    out.dispose();
  }
}

describe('sliding-window attention matches transformers (hf-tiny, windows 4 and 16)', () => {
  it('the fixture is one where the window matters: its logits differ from the full-attention ones', () => {
    for (const w of [4, 16]) expect(errOnReal((b, t) => baseLogits.subarray((b * T + t) * V, (b * T + t + 1) * V), want.get(w)!), `W=${w}`).toBeGreaterThan(0.5);
  });

  it('the plain forward', async () => {
    for (const w of [4, 16]) {
      const model = windowed(w);
      const got = await readLogits(() => model.forward({ inputIds: Tensor.fromArray(ids, [B, T], 'i32'), attentionMask: Tensor.fromArray(mask, [B, T], 'i32') }).data);
      expect(errOnReal((b, t) => got.subarray((b * T + t) * V, (b * T + t + 1) * V), want.get(w)!), `W=${w}`).toBeLessThanOrEqual(1e-4);
    }
  });

  it('the shared-prefix forward (training runs the common system prompt once)', async () => {
    const rows = lens().map((n, b) => ids.subarray(b * T, b * T + n));
    const P = commonPrefixLength(rows);
    expect(P, 'the rows share a prefix longer than both windows').toBeGreaterThan(16);
    const S = T - P;
    const sIds = new Int32Array(B * S);
    const sMask = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      sIds.set(ids.subarray(b * T + P, (b + 1) * T), b * S);
      sMask.set(mask.subarray(b * T + P, (b + 1) * T), b * S);
    }
    for (const w of [4, 16]) {
      const model = windowed(w);
      const got = await readLogits(() =>
        model.forward({
          inputIds: Tensor.fromArray(sIds, [B, S], 'i32'),
          attentionMask: Tensor.fromArray(sMask, [B, S], 'i32'),
          prefix: { ids: Tensor.fromArray(ids.slice(0, P), [1, P], 'i32') },
        }).data,
      );
      const row = (b: number, t: number) => got.subarray((b * S + t - P) * V, (b * S + t - P + 1) * V);
      expect(errOnReal(row, want.get(w)!, () => P), `W=${w}`).toBeLessThanOrEqual(1e-4);
    }
  });

  it('the KV cache: a prefill, then decode steps past the window', async () => {
    const steps = 12; // more than W = 4 tokens decoded, so the decode kernel's window cuts keys the prefill wrote
    const n = lens();
    const L = Math.min(...n) - steps; // prefill the first L tokens of every row
    for (const w of [4, 16]) {
      const model = windowed(w);
      const cache = new KVCache(model.config, B, L + steps);
      try {
        const pIds = new Int32Array(B * L);
        for (let b = 0; b < B; b++) pIds.set(ids.subarray(b * T, b * T + L), b * L);
        const last = Int32Array.from({ length: B }, (_, b) => b * L + L - 1);
        const got: Float32Array[] = [];
        got.push(await readLogits(() => prefill(model, cache, Tensor.fromArray(pIds, [B, L], 'i32'), Tensor.fromArray(new Int32Array(B * L).fill(1), [B, L], 'i32'),
          Tensor.fromArray(last, [B], 'i32')).data));
        for (let s = 0; s < steps; s++) {
          const fed = Int32Array.from({ length: B }, (_, b) => ids[b * T + L + s]!);
          const pos = new Int32Array(B).fill(L + s);
          got.push(await readLogits(() => decodeStep(model, cache, Tensor.fromArray(fed, [B], 'i32'), Tensor.fromArray(pos, [B], 'i32')).data));
        }
        // got[s] holds the logits at position L - 1 + s of every row
        const row = (b: number, t: number) => got[t - (L - 1)]!.subarray(b * V, (b + 1) * V);
        const ref = want.get(w)!;
        let m = 0;
        for (let b = 0; b < B; b++) for (let t = L - 1; t < L + steps; t++) m = Math.max(m, maxAbs(row(b, t), ref.subarray((b * T + t) * V, (b * T + t + 1) * V)));
        expect(m, `W=${w}`).toBeLessThanOrEqual(1e-4);
      } finally {
        cache.dispose();
      }
    }
  });
});
