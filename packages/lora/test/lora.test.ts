// Injection bookkeeping, the adapter's forward/backward against a float64 oracle, init bounds, merge/unmerge.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { init, dispose, Tensor, scope, rt } from '@dawngrad/tensor';
import { backward, param, constant, noGrad } from '@dawngrad/autograd';
import { loadModel, type MistralForCausalLM } from '@dawngrad/model';
import { inject, kaimingUniformBound, type LoraModel } from '../src/index.ts';
import { HF_TINY, matmul64, maxAbsDiff, maxAbs, randomValues } from './helpers.ts';

let model: MistralForCausalLM;
let lora: LoraModel | null = null;
const meta = JSON.parse(readFileSync(join(HF_TINY, 'reference.json'), 'utf8'));

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());
beforeEach(async () => {
  model = await loadModel(HF_TINY);
});
afterEach(() => {
  if (lora) lora.dispose();
  else model.dispose();
  lora = null;
});

const host = async (t: Tensor) => Float64Array.from((await t.toArray()) as Float32Array);

describe('inject', () => {
  it('names, order, shapes and frozen base match PEFT on k_proj/v_proj', () => {
    lora = inject(model, { r: 4, lora_alpha: 8, target_modules: ['k_proj', 'v_proj'] });
    const named = lora.namedParameters();
    expect(named.map((p) => p.name)).toEqual(meta['lora.names']);
    for (const { name, param: p } of named) {
      expect(p.requiresGrad, name).toBe(true);
      expect(p.shape, name).toEqual(name.includes('lora_A') ? [4, 112] : [56, 4]); // k/v: [KV·D = 56, C = 112]
    }
    for (const { name, param: p } of model.namedParameters()) expect(p.requiresGrad, name).toBe(false);
    expect(lora.numTrainable()).toBe(4 * 4 * (112 + 56));
    const adapted = model.linears().filter((l) => l.lowRank).map((l) => l.path);
    expect(adapted).toEqual(lora.layers.map((l) => l.path));
    expect(lora.scale).toBe(2);
  });

  it('all-linear adapts the 7 projections of every layer and not lm_head', () => {
    lora = inject(model, { r: 2, target_modules: 'all-linear' });
    expect(lora.layers).toHaveLength(7 * model.layers.length);
    expect(model.lmHead.lowRank).toBeNull();
    for (const layer of model.layers) for (const l of layer.linears) expect(l.lowRank, l.path).not.toBeNull();
    expect(lora.targetModules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  });

  it('layers_to_transform restricts to those layers', () => {
    lora = inject(model, { r: 2, target_modules: ['q_proj', 'up_proj', 'down_proj'], layers_to_transform: [1] });
    expect(lora.layers.map((l) => l.path)).toEqual(['model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.up_proj', 'model.layers.1.mlp.down_proj']);
    expect(model.layers[0]!.linears.every((l) => l.lowRank === null)).toBe(true);
  });

  it('refuses targets that match nothing, by name, and a second adapter on a layer', () => {
    expect(() => inject(model, { target_modules: ['k_proj', 'kproj'] })).toThrow(/"kproj" match no linear layer/);
    expect(model.linears().every((l) => l.lowRank === null)).toBe(true); // nothing half-done
    lora = inject(model, { target_modules: ['k_proj'] });
    expect(() => inject(model, { target_modules: ['k_proj'] })).toThrow(/already has an adapter/);
  });

  it('default init: A within the kaiming-uniform bound 1/√in and close to it, B zero', async () => {
    lora = inject(model, { r: 8, target_modules: 'all-linear', seed: 5 });
    for (const l of lora.layers) {
      const a = await host(l.A.data);
      const bound = kaimingUniformBound(l.linear.inFeatures);
      expect(bound).toBeCloseTo(1 / Math.sqrt(l.linear.inFeatures), 12);
      const m = maxAbs(a);
      expect(m, l.path).toBeLessThanOrEqual(Math.fround(bound));
      // ≥ 896 uniform draws: P(max < 0.97·bound) = 0.97^896 ≈ 1e-12
      expect(m, l.path).toBeGreaterThan(0.97 * bound);
      expect(maxAbs(await host(l.B.data)), l.path).toBe(0);
    }
  });

  it('unload takes the adapters out and frees them', () => {
    lora = inject(model, { target_modules: ['q_proj'] });
    const A = lora.layers[0]!.A;
    const base = lora.unload();
    expect(base).toBe(model);
    expect(model.linears().every((l) => l.lowRank === null)).toBe(true);
    expect(A.data.disposed).toBe(true);
    lora = null;
  });
});

/** The float64 oracle of one adapted linear layer, y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, and its gradients for upstream G. */
function oracle(x: Float64Array, W: Float64Array, A: Float64Array, B: Float64Array, G: Float64Array, N: number, inF: number, outF: number, r: number, s: number) {
  const h = matmul64(x, A, N, inF, r, false, true); // [N, r]
  const base = matmul64(x, W, N, inF, outF, false, true);
  const up = matmul64(h, B, N, r, outF, false, true);
  const y = base.map((v, i) => v + s * up[i]!);
  const gB = matmul64(G, B, N, outF, r); // [N, r]
  const dB = matmul64(G, h, outF, N, r, true).map((v) => s * v); // [out, r]
  const dA = matmul64(gB, x, r, N, inF, true).map((v) => s * v); // [r, in]
  const dxBase = matmul64(G, W, N, outF, inF);
  const dxUp = matmul64(gB, A, N, r, inF);
  const dx = dxBase.map((v, i) => v + s * dxUp[i]!);
  return { y, dA, dB, dx };
}

describe('the adapter: y = W·x + scale·B·A·x', () => {
  for (const rs of [false, true]) {
    it(`forward and gradients match float64${rs ? ' with rsLoRA (scale α/√r)' : ' (scale α/r)'}`, async () => {
      const r = 3;
      const alpha = 5;
      lora = inject(model, { r, lora_alpha: alpha, use_rslora: rs, target_modules: ['model.layers.0.mlp.down_proj'], init_lora_weights: false, seed: 9 });
      const l = lora.layers[0]!;
      const [outF, inF, N] = [l.linear.outFeatures, l.linear.inFeatures, 5];
      const s = rs ? alpha / Math.sqrt(r) : alpha / r; // PEFT's definition, written out
      const x = param(Tensor.fromArray(randomValues(N * inF, 1), [N, inF]));
      const G = randomValues(N * outF, 2);
      const y = l.linear.forward(x);
      backward(y, { seed: Tensor.fromArray(G, [N, outF]) });
      const want = oracle(await host(x.data), await host(l.linear.weight.data), await host(l.A.data), await host(l.B.data), Float64Array.from(G), N, inF, outF, r, s);
      // f32 sums of ≤ 224 products of O(1) values: errors ~1e-6·√K
      expect(maxAbsDiff(await y.data.toArray(), want.y)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await l.A.grad!.toArray(), want.dA)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await l.B.grad!.toArray(), want.dB)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await x.grad!.toArray(), want.dx)).toBeLessThan(1e-4);
      expect(l.linear.weight.grad).toBeNull(); // frozen: no work, no gradient
      // the other scale would be visibly wrong: the test can fail
      const other = rs ? alpha / r : alpha / Math.sqrt(r);
      const wrong = oracle(await host(x.data), await host(l.linear.weight.data), await host(l.A.data), await host(l.B.data), Float64Array.from(G), N, inF, outF, r, other);
      expect(maxAbsDiff(await y.data.toArray(), wrong.y)).toBeGreaterThan(1e-2);
      x.data.dispose();
    });
  }

  it('dropout acts on the adapter input in training only, with a fresh mask per call', async () => {
    lora = inject(model, { r: 4, lora_dropout: 0.5, target_modules: ['model.layers.1.self_attn.o_proj'], init_lora_weights: false });
    const lin = lora.layers[0]!.linear;
    const x = Tensor.fromArray(randomValues(4 * lin.inFeatures, 3), [4, lin.inFeatures]);
    const run = () => noGrad(() => lin.forward(param(x)).data.toArray());
    const t1 = await run();
    const t2 = await run();
    lora.eval();
    const e1 = await run();
    const e2 = await run();
    expect(maxAbsDiff(e1, e2)).toBe(0);
    expect(maxAbsDiff(t1, e1)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(t1, t2)).toBeGreaterThan(1e-3);
    // the base term is never dropped: with B = 0 the training output is exactly x·Wᵀ
    lora.train();
    const l = lora.layers[0]!;
    l.B.data.dispose();
    l.B.data = Tensor.fromArray(new Float32Array(l.B.size), l.B.shape);
    const t3 = await run();
    lora.eval();
    expect(maxAbsDiff(t3, await run())).toBe(0);
    x.dispose();
  });
});

describe('merge / unmerge', () => {
  it('merge folds scale·B·A into W; unmerge restores W', async () => {
    lora = inject(model, { r: 4, lora_alpha: 16, target_modules: ['q_proj', 'gate_proj'], init_lora_weights: false, seed: 2 });
    const before = await Promise.all(lora.layers.map((l) => host(l.linear.weight.data)));
    const N = 3;
    const xs = lora.layers.map((l, i) => Tensor.fromArray(randomValues(N * l.linear.inFeatures, 10 + i), [N, l.linear.inFeatures]));
    const outs = await Promise.all(lora.layers.map((l, i) => noGrad(() => l.linear.forward(param(xs[i]!)).data.toArray())));
    lora.merge();
    expect(lora.merged).toBe(true);
    for (const [i, l] of lora.layers.entries()) {
      expect(l.linear.lowRank).toBeNull();
      const [outF, inF] = [l.linear.outFeatures, l.linear.inFeatures];
      const ba = matmul64(await host(l.B.data), await host(l.A.data), outF, 4, inF);
      const want = before[i]!.map((w, k) => w + 4 * ba[k]!);
      expect(maxAbsDiff(await l.linear.weight.data.toArray(), want), l.path).toBeLessThan(1e-6);
      // the merged layer alone computes what the adapted layer did
      const merged = await noGrad(() => l.linear.forward(param(xs[i]!)).data.toArray());
      expect(maxAbsDiff(merged, outs[i]!), l.path).toBeLessThan(1e-5);
    }
    expect(() => lora!.merge()).toThrow(/already merged/);
    lora.unmerge();
    expect(lora.merged).toBe(false);
    for (const [i, l] of lora.layers.entries()) {
      expect(l.linear.lowRank).toBe(l.update);
      expect(maxAbsDiff(await l.linear.weight.data.toArray(), before[i]!), l.path).toBeLessThanOrEqual(1e-6);
    }
    expect(() => lora!.unmerge()).toThrow(/not merged/);
    for (const x of xs) x.dispose();
  });
});

describe('memory', () => {
  it('inject, a training step in a scope, merge, unmerge and unload leave nothing live', async () => {
    const live0 = rt().pool.stats.bytesLive;
    lora = inject(model, { r: 4, lora_dropout: 0.1, target_modules: 'all-linear', init_lora_weights: false });
    const lin = model.layers[1]!.up;
    const x = Tensor.fromArray(randomValues(6 * lin.inFeatures, 4), [6, lin.inFeatures]);
    const g = Tensor.fromArray(randomValues(6 * lin.outFeatures, 5), [6, lin.outFeatures]);
    scope(() => backward(lin.forward(constant(x)), { seed: g }));
    expect(lora.layers.find((l) => l.linear === lin)!.A.grad).not.toBeNull();
    lora.merge();
    lora.unmerge();
    lora.unload();
    x.dispose();
    g.dispose();
    expect(rt().pool.stats.bytesLive).toBe(live0);
    lora = null;
  });
});

