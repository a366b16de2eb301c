// The tape's bookkeeping: an op that hands the same gradient tensor to two inputs (add passes g through) while one of
// those inputs already holds a pending gradient must not free the tensor the other input still needs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { param, add, exp, sum, backward } from '../src/index.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

describe('backward bookkeeping', () => {
  it('shared gradient tensors survive accumulation: d/dx Σ(eˣ + eʸ + eˣ) = 2eˣ, d/dy = eʸ', async () => {
    const xs = [0.5, -1, 2];
    const ys = [1, 0, -0.5];
    const x = param(Tensor.fromArray(xs, [3]));
    const y = param(Tensor.fromArray(ys, [3]));
    const ex = exp(x);
    backward(sum(add(add(ex, exp(y)), ex)));
    const gx = Array.from(await x.grad!.toArray());
    const gy = Array.from(await y.grad!.toArray());
    xs.forEach((v, i) => expect(gx[i]).toBeCloseTo(2 * Math.exp(v), 5));
    ys.forEach((v, i) => expect(gy[i]).toBeCloseTo(Math.exp(v), 5));
  });
});
