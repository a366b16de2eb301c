import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, Tensor, add, unary } from '../src/index.ts';

beforeAll(async () => { await init(); });
afterAll(() => dispose());

describe('smoke', () => {
  it('adds with broadcasting', async () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.fromArray([10, 20, 30], [3]);
    const c = add(a, b);
    expect(Array.from(await c.toArray())).toEqual([11, 22, 33, 14, 25, 36]);
    const d = add(a, Tensor.fromArray([100, 200], [2, 1]));
    expect(Array.from(await d.toArray())).toEqual([101, 102, 103, 204, 205, 206]);
    const e = unary('exp', Tensor.fromArray([0, 1], [2]));
    const ev = await e.toArray();
    expect(ev[1]).toBeCloseTo(Math.E, 5);
  });
});
