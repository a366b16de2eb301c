// Cached generation: the two KV-cache kernels against their float64 twins, the cached path (prefill + decode steps)
// against full uncached forwards on the hf-tiny fixture model, and generate() built on it — greedy, sampling, stop
// tokens, first-token logits — checked by teacher forcing: one full forward over prompt + generated tokens must pick
// (or sample) every generated token. Prompts of different lengths share each batch.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose, rt, Tensor, ref, scope, writeRowsAt, attentionDecode, mulberry32 } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import { loadModel, generate, sample, seededRandom, KVCache, prefill, decodeStep, type MistralForCausalLM, type GenerateOptions } from '../src/index.ts';

const HF_TINY = resolve(fileURLToPath(import.meta.url), '../../../../../shared/fixtures/hf-tiny');
let model: MistralForCausalLM;

beforeAll(async () => {
  await init();
  model = await loadModel(HF_TINY);
});
afterAll(() => {
  model?.dispose();
  dispose();
});

const uniform = (n: number, r: () => number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
const host = async (t: Tensor) => Float64Array.from(await t.toArray());

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('KV-cache kernels vs their float64 twins', () => {
  it('attentionDecode: one query per (row, head) over cached keys j ≤ pos (pos − W < j with a window) with the mask, GQA as repeat_kv', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }), // B
        fc.constantFrom(1, 3, 7, 12), // Tmax
        fc.constantFrom(1, 2, 3), // KV heads
        fc.constantFrom(1, 2), // H / KV
        fc.constantFrom(1, 3, 4, 7, 28, 57), // D: scalar and vec4 paths
        fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }), // Mistral's sliding window, or none
        fc.nat(),
        async (B, Tmax, KV, ratio, D, window, seed) => {
          const r = mulberry32(seed);
          const H = KV * ratio;
          const q = uniform(B * H * D, r, -2, 2);
          const k = uniform(B * Tmax * KV * D, r, -2, 2);
          const v = uniform(B * Tmax * KV * D, r);
          // mostly real keys, some holes; pos from -1 (no key) to past the cache (clamped)
          const mask = Int32Array.from({ length: B * Tmax }, () => (r() < 0.8 ? 1 : 0));
          const pos = Int32Array.from({ length: B }, () => Math.floor(r() * (Tmax + 2)) - 1);
          const got = scope(() =>
            attentionDecode(
              Tensor.fromArray(q, [B, H, D]),
              Tensor.fromArray(k, [B, Tmax, KV, D]),
              Tensor.fromArray(v, [B, Tmax, KV, D]),
              Tensor.fromArray(mask, [B, Tmax], 'i32'),
              Tensor.fromArray(pos, [B], 'i32'),
              { window },
            ),
          );
          const want = ref.attentionDecode(ref.array(q, [B, H, D]), ref.array(k, [B, Tmax, KV, D]), ref.array(v, [B, Tmax, KV, D]), ref.array(mask, [B, Tmax]), ref.array(pos), { window });
          expect(got.shape).toEqual([B, H, D]);
          expect(maxAbs(await host(got), want.data), `B=${B} Tmax=${Tmax} H=${H} KV=${KV} D=${D} window=${window}`).toBeLessThanOrEqual(2e-6);
          got.dispose();
        },
      ),
      { numRuns: 30 },
    );
  });

  it('writeRowsAt: each row lands at its own offset, rows past the cache are skipped, the rest is untouched', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 5, 9), fc.constantFrom(1, 2, 3), fc.constantFrom(1, 3, 4, 8, 57), fc.nat(), async (B, Tmax, S, W, seed) => {
        const r = mulberry32(seed);
        const dst = uniform(B * Tmax * W, r);
        const src = uniform(B * S * W, r);
        const start = Int32Array.from({ length: B }, () => Math.floor(r() * (Tmax + 3)) - 2);
        const d = Tensor.fromArray(dst, [B, Tmax, W]);
        const [s, st] = [Tensor.fromArray(src, [B, S, W]), Tensor.fromArray(start, [B], 'i32')];
        expect(writeRowsAt(d, s, st)).toBe(d);
        const want = ref.writeRowsAt(ref.array(dst, [B, Tmax, W]), ref.array(src, [B, S, W]), ref.array(start));
        expect(maxAbs(await host(d), want.data)).toBe(0);
        for (const t of [d, s, st]) t.dispose();
      }),
      { numRuns: 30 },
    );
  });

  it('refuse mismatched shapes with one line naming them', () => {
    scope(() => {
      const q = Tensor.empty([2, 4, 8]);
      const k = Tensor.empty([2, 5, 3, 8]);
      const m = Tensor.empty([2, 5], 'i32');
      const p = Tensor.empty([2], 'i32');
      expect(() => attentionDecode(q, k, k, m, p)).toThrow('attentionDecode: query heads (4) must be a multiple of KV heads (3)');
      expect(() => attentionDecode(q, Tensor.empty([2, 5, 2, 8]), Tensor.empty([2, 5, 2, 8]), Tensor.empty([2, 4], 'i32'), p)).toThrow('mask must be i32 [2, 5]');
      expect(() => writeRowsAt(Tensor.empty([2, 5, 8]), Tensor.empty([2, 1, 7]), p)).toThrow('writeRowsAt: src [2, 1, 7] must be [2, S, 8]');
    });
  });
});

/** Random prompts of different lengths (ids 5.. of the 1000-token vocabulary). */
function randomPrompts(seed: number, B: number, minLen = 1, maxLen = 30): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: B }, () => Array.from({ length: minLen + Math.floor(r() * (maxLen - minLen + 1)) }, () => 5 + Math.floor(r() * 990)));
}

/** One uncached forward over right-padded rows -> logits [B, T, V] on the host, and T. */
async function fullLogits(rows: number[][]): Promise<{ logits: Float32Array; T: number }> {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  rows.forEach((r, b) => {
    ids.set(r, b * T);
    mask.fill(1, b * T, b * T + r.length);
  });
  const logits = noGrad(() =>
    scope(() => model.forward({ inputIds: Tensor.fromArray(ids, [B, T], 'i32'), attentionMask: Tensor.fromArray(mask, [B, T], 'i32') }).data),
  );
  const out = (await logits.toArray()) as Float32Array;
  logits.dispose();
  return { logits: out, T };
}

describe('the cached path equals the full forward', () => {
  it('prefill and each decode step give the logits of an uncached forward over the same tokens', async () => {
    const V = model.config.vocabSize;
    for (const seed of [1, 2]) {
      const prompts = randomPrompts(seed, 3 + seed, 1, 25);
      const B = prompts.length;
      const steps = 5;
      const cont = randomPrompts(seed + 100, B, steps, steps); // the tokens fed after each prompt
      const { logits: full, T: Tf } = await fullLogits(prompts.map((p, b) => [...p, ...cont[b]!]));
      const T = Math.max(...prompts.map((p) => p.length));
      const cache = new KVCache(model.config, B, T + steps);
      try {
        const ids = new Int32Array(B * T);
        const mask = new Int32Array(B * T);
        prompts.forEach((p, b) => (ids.set(p, b * T), mask.fill(1, b * T, b * T + p.length)));
        const last = Int32Array.from(prompts, (p, b) => b * T + p.length - 1);
        for (let s = -1; s < steps; s++) {
          const logits = noGrad(() =>
            scope(() => {
              if (s < 0) return prefill(model, cache, Tensor.fromArray(ids, [B, T], 'i32'), Tensor.fromArray(mask, [B, T], 'i32'), Tensor.fromArray(last, [B], 'i32')).data;
              const fed = Int32Array.from(cont, (c) => c[s]!);
              const pos = Int32Array.from(prompts, (p) => p.length + s);
              return decodeStep(model, cache, Tensor.fromArray(fed, [B], 'i32'), Tensor.fromArray(pos, [B], 'i32')).data;
            }),
          );
          const got = await logits.toArray();
          logits.dispose();
          const want = new Float32Array(B * V);
          prompts.forEach((p, b) => want.set(full.subarray((b * Tf + p.length + s) * V, (b * Tf + p.length + s + 1) * V), b * V));
          expect(maxAbs(got, want), `seed ${seed}, step ${s}`).toBeLessThanOrEqual(1e-4);
        }
      } finally {
        cache.dispose();
      }
    }
  });
});

/** Teacher forcing: the full-forward logits row that predicted generated token k of row b. */
async function teacherRows(prompts: number[][], gen: number[][]): Promise<(k: number, b: number) => Float32Array> {
  const V = model.config.vocabSize;
  const { logits, T } = await fullLogits(prompts.map((p, b) => [...p, ...gen[b]!.slice(0, -1)]));
  return (k, b) => logits.subarray((b * T + prompts[b]!.length - 1 + k) * V, (b * T + prompts[b]!.length + k) * V);
}

const argmaxOf = (a: Float32Array) => a.reduce((best, x, i) => (x > a[best]! ? i : best), 0);

describe('generate', () => {
  it('greedy: every token is the argmax of the uncached forward, and a stop token ends only its row', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.nat(), async (B, seed) => {
        const prompts = randomPrompts(seed, B);
        const first = await generate(model, prompts, { maxNewTokens: 8 });
        // stop on the third token of row 0: row 0 ends there (inclusive), the rest run on unless they meet it too
        const stopTok = first.ids[0]![2]!;
        const g = await generate(model, prompts, { maxNewTokens: 8, stopTokens: [stopTok] });
        g.ids.forEach((ids, b) => {
          const at = first.ids[b]!.indexOf(stopTok);
          expect(ids, `row ${b}`).toEqual(at < 0 ? first.ids[b] : first.ids[b]!.slice(0, at + 1));
        });
        const row = await teacherRows(prompts, first.ids);
        first.ids.forEach((ids, b) => {
          expect(ids).toHaveLength(8);
          ids.forEach((tok, k) => {
            const l = row(k, b);
            // the cached path may differ from the forward by float rounding: the pick must be a maximum up to that
            expect(l[argmaxOf(l)]! - l[tok]!, `row ${b} token ${k}`).toBeLessThanOrEqual(1e-4);
          });
        });
      }),
      { numRuns: 4 },
    );
  });

  it('firstTokenIds: the logits after each prompt, from the same prefill', async () => {
    const prompts = randomPrompts(7, 5);
    const ids = [4, 0, 999, 17];
    const g = await generate(model, prompts, { maxNewTokens: 2, firstTokenIds: ids });
    const row = await teacherRows(prompts, g.ids);
    const want = prompts.flatMap((_, b) => ids.map((id) => row(0, b)[id]!));
    expect(g.firstTokenLogits).toHaveLength(prompts.length * ids.length);
    expect(maxAbs(g.firstTokenLogits!, want)).toBeLessThanOrEqual(1e-4);
    // maxNewTokens 0: only the scores
    const only = await generate(model, prompts, { maxNewTokens: 0, firstTokenIds: ids });
    expect(only.ids).toEqual(prompts.map(() => []));
    expect(maxAbs(only.firstTokenLogits!, want)).toBeLessThanOrEqual(1e-4);
  });

  it('sampling draws from the right rows: seeded, reproducible, and equal to sampling the uncached logits', async () => {
    const prompts = randomPrompts(11, 3);
    const o: GenerateOptions = { maxNewTokens: 6, temperature: 0.7, topK: 40, topP: 0.95, seed: 5 };
    const a = await generate(model, prompts, o);
    expect((await generate(model, prompts, o)).ids).toEqual(a.ids);
    expect((await generate(model, prompts, { ...o, seed: 6 })).ids).not.toEqual(a.ids);
    // replay: the same random stream over the forward's logits, in generate's order (step by step, row by row)
    const row = await teacherRows(prompts, a.ids);
    const rand = seededRandom(5);
    for (let k = 0; k < 6; k++) prompts.forEach((_, b) => expect(sample(row(k, b), o, rand), `row ${b} token ${k}`).toBe(a.ids[b]![k]));
    // top-k 1 is greedy
    expect((await generate(model, prompts, { maxNewTokens: 6, temperature: 1, topK: 1 })).ids).toEqual((await generate(model, prompts, { maxNewTokens: 6 })).ids);
  });

  it('leaves no GPU memory live and refuses bad input', async () => {
    const stats = rt().pool.stats;
    const before = stats.bytesLive;
    await generate(model, randomPrompts(3, 3), { maxNewTokens: 4, firstTokenIds: [1, 2] });
    await generate(model, randomPrompts(3, 3), { maxNewTokens: 3, temperature: 1 });
    expect(stats.bytesLive).toBe(before);
    expect((await generate(model, [], {})).ids).toEqual([]);
    await expect(generate(model, [[1], []])).rejects.toThrow('generate: empty prompt');
    await expect(generate(model, [[1, 2]], { maxNewTokens: 255 })).rejects.toThrow('257 positions exceed max_position_embeddings 256');
    await expect(generate(model, [[1, 2]], { firstTokenIds: [1000] })).rejects.toThrow('firstTokenIds holds 1000');
    expect(stats.bytesLive).toBe(before);
  });
});
