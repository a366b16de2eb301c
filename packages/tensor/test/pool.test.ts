// The buffer pool in steady state: a loop of ops inside scope() allocates no GPU buffers after its first iteration,
// and every byte it took goes back (bytesLive returns to its baseline).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  init, dispose, rt, Tensor, scope,
  add, unary, binary, sum, mean, max, argmax, sumTo, sumAll, softmax, logSoftmax,
  gatherRows, take, scatterAddRows, slice, concat, permute, transpose, broadcastTo, copy,
  where, maskedFill, cast, fill, zeros, arange,
} from '../src/index.ts';
import { uniform, ints } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

describe('buffer pool', () => {
  it('a steady-state loop of every op family allocates nothing after the first iteration', async () => {
    const pool = rt().pool;
    // inputs live outside the loop: x: [B*T, C] activations, table: [V, C], ids: [B*T]
    const x = Tensor.fromArray(uniform(57 * 224, 1), [57, 224]);
    const table = Tensor.fromArray(uniform(100 * 224, 2), [100, 224]);
    const ids = Tensor.fromArray(ints(57, 3, 0, 99), [57]);
    const bias = Tensor.fromArray(uniform(224, 4), [224]);
    const long = Tensor.fromArray(uniform(100_000, 5), [100_000]); // takes the split-K path
    await rt().sync();
    const baseline = pool.stats.bytesLive;
    const allocations: number[] = [];
    for (let it = 0; it < 4; it++) {
      scope(() => {
        const h = add(gatherRows(table, ids), bias); // [57, 224]
        const p = softmax(binary('mul', h, x));
        const lp = logSoftmax(unary('silu', p));
        const m = mean(lp, [0, 1]);
        const s = sumTo(add(lp, bias), [224]);
        const g = scatterAddRows(lp, ids, 100);
        const picked = take(h, arange(7));
        const parts = concat([slice(h, [0, 0], [7, 224]), picked], 0);
        const t = transpose(permute(parts.reshape([14, 4, 56]), [2, 0, 1]), 0, 1);
        const masked = maskedFill(x, binary('gt', x, zeros([1])), -Infinity);
        const w = where(cast(argmax(x, 1, true), 'f32'), x, broadcastTo(bias, [57, 224]));
        const half = rt().ctx.hasF16 ? cast(cast(w, 'f16'), 'f32') : copy(w);
        return [m, s, g, t, masked, half, max(long), sum(long), sumAll(fill([3, 3], 2)), sum(x, 0)];
      }).forEach((t) => t.dispose());
      await rt().sync();
      allocations.push(pool.stats.allocations);
      expect(pool.stats.bytesLive, `bytesLive after iteration ${it}`).toBe(baseline);
    }
    // the first iteration may allocate; the later ones must reuse
    expect(allocations.slice(1)).toEqual([allocations[0], allocations[0], allocations[0]]);
    expect(pool.stats.reuses).toBeGreaterThan(0);
    for (const t of [x, table, ids, bias, long]) t.dispose();
  });

  it('ops that make temporaries give them back (no leak without a scope)', async () => {
    const pool = rt().pool;
    const long = Tensor.fromArray(uniform(100_000, 6), [4, 25_000]);
    const ids = Tensor.fromArray(ints(300, 7, 0, 9), [300]);
    const g = Tensor.fromArray(uniform(300 * 3, 8), [300, 3]);
    const before = pool.stats.bytesLive;
    const outs = [sum(long, 1), mean(long, [0, 1]), scatterAddRows(g, ids, 10), sum(long.reshape([4, 5, 5000]), [0, 2])];
    const outBytes = outs.reduce((a, t) => a + t.buffer.size, 0);
    expect(pool.stats.bytesLive - before).toBe(outBytes);
    outs.forEach((t) => t.dispose());
    expect(pool.stats.bytesLive).toBe(before);
  });
});
