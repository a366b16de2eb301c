// Memory: a training step (forward, backward, zeroGrad) inside scope() gives back every GPU byte it took, and a loop
// of steps allocates no new GPU buffers after the first — the pool serves them all. The step uses every op family
// of this package, so a leak in any forward, backward or saved tensor shows up here.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, rt, ref, scope, Tensor } from '@dawngrad/tensor';
import {
  param, constant, backward, zeroGrad, embedding, matmul, silu, add, scale, reshape, transpose, slice, concat, take, sum,
  mean, max, softmax, logSoftmax, dropout, crossEntropy, type Var,
} from '../src/index.ts';
import { randomF64, rng } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

describe('memory', () => {
  it('a step inside scope() returns bytesLive to its baseline, and 20 steps allocate no buffer after the first', async () => {
    const r = rng(3);
    const [B, T, V, C] = [2, 5, 11, 8];
    const table = param(ref.toTensor(randomF64([V, C], r)), 'embed');
    const w1 = param(ref.toTensor(randomF64([C, C], r)), 'w1');
    const w2 = param(ref.toTensor(randomF64([V, C], r)), 'lm_head');
    const params = [table, w1, w2];
    const ids = constant(Tensor.fromArray(Int32Array.from({ length: B * T }, () => Math.floor(r() * V)), [B, T]));
    const answerRows = constant(Tensor.fromArray(new Int32Array([3, 4, 8, 9, 9])));
    const targets = constant(Tensor.fromArray(new Int32Array([1, -100, 7, 2, 2])));
    const stats = rt().pool.stats;

    const step = (k: number) =>
      scope(() => {
        const x = embedding(table, ids); // [B, T, C]
        const h = silu(matmul(x, w1)); // [B, T, C]
        const h2 = add(h, dropout(h, 0.1, { seed: k })); // h used twice
        const flat = reshape(h2, [B * T, C]);
        const joined = concat([slice(flat, [0], [B * T - 1]), slice(flat, [B * T - 1], [B * T])], 0); // [B*T, C]
        const rows = take(joined, answerRows); // [N, C]
        const logits = matmul(rows, w2, { transB: true }); // [N, V]
        const extra = add(sum(softmax(logits)), mean(max(logSoftmax(transpose(logits)), 0)));
        const loss = add(crossEntropy(logits, targets), scale(extra, 1e-3));
        backward(loss);
        zeroGrad(params);
      });

    await rt().sync();
    const baseline = stats.bytesLive;
    step(0);
    await rt().sync();
    expect(stats.bytesLive, 'bytes live after one step').toBe(baseline);
    const allocations = stats.allocations;
    for (let k = 1; k <= 20; k++) step(k);
    await rt().sync();
    expect(stats.allocations, 'new GPU buffers in steps 2..21').toBe(allocations);
    expect(stats.bytesLive, 'bytes live after 21 steps').toBe(baseline);
    expect(stats.reuses).toBeGreaterThan(0);
    for (const p of [...params, ids, answerRows, targets] as Var[]) p.data.dispose();
  });

  it('a leaked tensor would be seen: keeping one gradient past zeroGrad moves bytesLive', () => {
    const p = param(Tensor.fromArray([1, 2, 3]));
    const baseline = rt().pool.stats.bytesLive;
    scope(() => backward(sum(p)));
    expect(rt().pool.stats.bytesLive).toBeGreaterThan(baseline); // p.grad is kept on purpose
    p.zeroGrad();
    expect(rt().pool.stats.bytesLive).toBe(baseline);
    p.data.dispose();
  });
});
