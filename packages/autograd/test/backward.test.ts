// The tape's bookkeeping: an op that hands the same gradient tensor to two inputs (add passes g through) while one of
// those inputs already holds a pending gradient must not free the tensor the other input still needs; a leaf that
// already holds a .grad takes later gradients in place (same tensor object), and an op that adds into it itself
// (BackwardCtx.into) is not added twice; what a forward saves for its backward lives exactly as long as the graph.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tensor from '@dawngrad/tensor';
import { init, dispose, rt, scope, Tensor } from '@dawngrad/tensor';
import { param, constant, add, mul, exp, sum, scale, attention, backward, defineOp, apply, type Var } from '../src/index.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const values = async (v: Var) => Array.from(await v.grad!.toArray());

// y = c·x with c = 3 that, like a matmul with `accumulate`, adds its gradient straight into x's .grad when offered one
const calls = { inPlace: 0, fresh: 0 };
const SCALE_INTO = defineOp<null>({
  name: 'test.scaleInto',
  rule: 'dx = 3g',
  forward: ([x]) => tensor.unary('mulScalar', x!, 3),
  backward(g, { into }) {
    const acc = into[0];
    if (!acc) {
      calls.fresh++;
      return [tensor.unary('mulScalar', g, 3)];
    }
    calls.inPlace++;
    const d = tensor.unary('mulScalar', g, 3);
    tensor.addInto(acc, d);
    return [acc]; // "already added"
  },
  cpu: {
    forward: ([x]) => ({ shape: x!.shape, data: x!.data.map((v) => 3 * v) }),
    backward: (g) => [{ shape: g.shape, data: g.data.map((v) => 3 * v) }],
  },
});

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

  it('freeActivations frees every intermediate once its backward has run, keeps the root, the leaves and `keep`, and gives the same gradients', async () => {
    const run = (free: boolean) => {
      const x = param(Tensor.fromArray([0.5, -1, 2], [3]));
      const y = param(Tensor.fromArray([1, 2, 3], [3]));
      const a = mul(exp(x), y); // intermediates: exp(x), a, s
      const s = scale(a, 3);
      const root = sum(add(s, x));
      const live = rt().pool.stats.bytesLive;
      backward(root, { freeActivations: free, keep: [s] });
      return { x, y, a, s, root, freed: live - rt().pool.stats.bytesLive };
    };
    const kept = run(false);
    const freed = run(true);
    expect(kept.a.data.disposed).toBe(false);
    expect(freed.a.data.disposed).toBe(true); // freed as backward passed it
    expect(freed.s.data.disposed).toBe(false); // asked to keep
    expect(freed.root.data.disposed).toBe(false);
    expect(freed.x.data.disposed || freed.y.data.disposed).toBe(false);
    expect(freed.freed).toBeGreaterThan(kept.freed);
    expect(Array.from(await freed.x.grad!.toArray())).toEqual(Array.from(await kept.x.grad!.toArray()));
    expect(Array.from(await freed.y.grad!.toArray())).toEqual(Array.from(await kept.y.grad!.toArray()));
  });

  it('a leaf with a preset .grad accumulates in place across two backward() calls: same tensor object, same buffer', async () => {
    const x = param(Tensor.fromArray([1, -2, 3, 0.5], [4]));
    const preset = Tensor.fromArray([10, 20, 30, 40], [4]);
    x.grad = preset;
    const buffer = preset.buffer;
    backward(sum(mul(x, x))); // + 2x
    expect(x.grad).toBe(preset);
    expect(await values(x)).toEqual([12, 16, 36, 41]);
    backward(sum(scale(x, 5))); // + 5
    expect(x.grad).toBe(preset);
    expect(x.grad!.buffer).toBe(buffer);
    expect(await values(x)).toEqual([17, 21, 41, 46]);
    x.zeroGrad();
    x.data.dispose();
  });

  it('a leaf whose .grad is a view into a packed buffer (an optimiser\'s) accumulates into that window only', async () => {
    const x = param(Tensor.fromArray([1, 2, 3], [3]));
    const w = param(Tensor.fromArray([4, 5], [2]));
    const { views, whole } = Tensor.packed([[2], [3]]); // w's grad at byte 0, x's at an aligned offset: a window
    const [gw, gx] = views as [Tensor, Tensor];
    expect(gx.offset).toBeGreaterThan(0);
    x.grad = gx;
    w.grad = gw;
    backward(add(sum(mul(x, x)), sum(scale(w, 3)))); // + 2x, + 3
    backward(sum(scale(x, 10))); // + 10
    expect(x.grad).toBe(gx);
    expect(w.grad).toBe(gw);
    expect(await values(x)).toEqual([12, 14, 16]);
    expect(await values(w)).toEqual([3, 3]);
    // nothing outside the two windows was touched: the padding between them is still the packed buffer's zeros
    const all = Array.from(await whole.toArray());
    const xAt = gx.offset / 4;
    expect(all.filter((v, i) => v !== 0 && i !== 0 && i !== 1 && (i < xAt || i >= xAt + 3))).toEqual([]);
    for (const t of [gx, gw, whole, x.data, w.data]) t.dispose();
  });

  it('a leaf without a .grad gets one made for it, and keeps it on the next call', async () => {
    const x = param(Tensor.fromArray([1, 2], [2]));
    backward(sum(scale(x, 2)));
    const first = x.grad;
    expect(first).toBeInstanceOf(Tensor);
    backward(sum(scale(x, 2)));
    expect(x.grad).toBe(first);
    expect(await values(x)).toEqual([4, 4]);
    x.zeroGrad();
    x.data.dispose();
  });

  it('an op that adds into the leaf .grad itself (BackwardCtx.into) is not added a second time', async () => {
    const x = param(Tensor.fromArray([1, 2, 3], [3]));
    calls.inPlace = calls.fresh = 0;
    // first call: no .grad yet, so the op is offered no accumulator and returns a fresh tensor
    backward(sum(apply(SCALE_INTO, [x], null)));
    expect(calls).toEqual({ inPlace: 0, fresh: 1 });
    expect(await values(x)).toEqual([3, 3, 3]);
    const acc = x.grad;
    // second call: the op adds 3 into x.grad and returns it; backward() must not add it again (that would give 9)
    backward(sum(apply(SCALE_INTO, [x], null)));
    expect(calls).toEqual({ inPlace: 1, fresh: 1 });
    expect(x.grad).toBe(acc);
    expect(await values(x)).toEqual([6, 6, 6]);
    // the same leaf read twice in one graph: each use adds once, in place
    backward(sum(add(apply(SCALE_INTO, [x], null), apply(SCALE_INTO, [x], null))));
    expect(calls.inPlace).toBe(3);
    expect(await values(x)).toEqual([12, 12, 12]);
    x.zeroGrad();
    x.data.dispose();
  });

  it('what a forward saves (attention\'s logsumexp) is freed by backward(), kept by retainGraph, and freed at once when nothing records', async () => {
    const [B, S, H, D] = [1, 3, 2, 4];
    const data = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(i * k));
    const q = param(Tensor.fromArray(data(B * S * H * D, 1.3), [B, S, H, D]));
    const k = param(Tensor.fromArray(data(B * S * H * D, 0.7), [B, S, H, D]));
    const v = param(Tensor.fromArray(data(B * S * H * D, 2.1), [B, S, H, D]));
    const mask = constant(Tensor.fromArray(new Int32Array([1, 1, 1]), [B, S]));
    const y = attention(q, k, v, mask);
    expect(y.saved).toHaveLength(1);
    const lse = y.saved[0]!;
    expect(lse.shape).toEqual([B, H, S]);
    backward(sum(y), { retainGraph: true });
    expect(lse.disposed).toBe(false);
    const once = await values(q);
    backward(sum(y)); // the retained graph again: the same saved L, so exactly twice the gradient
    expect(lse.disposed).toBe(true);
    expect(y.saved).toEqual([]);
    (await values(q)).forEach((g, i) => expect(g).toBeCloseTo(2 * once[i]!, 5));
    // no recording, no saved tensor left behind: bytesLive returns to where it was
    await rt().sync();
    const before = rt().pool.stats.bytesLive;
    scope(() => {
      const frozen = attention(constant(q.data), constant(k.data), constant(v.data), mask);
      expect(frozen.saved).toEqual([]);
      frozen.data.dispose();
      expect(rt().pool.stats.bytesLive).toBe(before);
    });
    for (const p of [q, k, v]) {
      p.zeroGrad();
      p.data.dispose();
    }
    y.data.dispose();
    mask.data.dispose();
  });
});
