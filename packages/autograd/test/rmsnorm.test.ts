// RMSNorm: gradients against finite differences (float64) and the GPU kernels against the CPU twin (float32),
// the frozen-input paths (dx only / dw only), and large-magnitude rows.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, scope, Tensor } from '@dawngrad/tensor';
import { RMSNORM } from '../src/index.ts';
import { checkOp, randomF64, rng, expectClose } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

// C: odd sizes take the scalar kernel, multiples of 4 the vec4 one
const C = fc.constantFrom(1, 3, 4, 7, 8, 28, 56, 57);
const leading = fc.array(fc.constantFrom(1, 2, 3, 7), { minLength: 0, maxLength: 2 });
const eps = fc.constantFrom(1e-6, 1e-5, 0.1);
// C = 1 with a tiny eps: y ≈ sign(x)·w is flat, and dx = r·w·g·(1 − x²r²) = r·w·g·eps·r² cancels to ~1e-6 of its terms,
// below float32 resolution (torch's autograd loses it the same way); that case is checked with a large eps
const epsFor = (c: number, e: number) => (c === 1 ? 0.1 : e);

/** f32-rounded copy: inputs that checkOp treats as frozen reach the CPU unrounded otherwise */
const f32 = (a: { shape: number[]; data: Float64Array }) => ({ shape: a.shape, data: Float64Array.from(Float32Array.from(a.data)) });

describe('rmsnorm', () => {
  it('gradient of rmsnorm (x and weight)', async () => {
    await fc.assert(
      fc.asyncProperty(leading, C, eps, fc.integer(), async (lead, c, e, seed) => {
        const r = rng(seed);
        const x = randomF64([...lead, c], r);
        const w = randomF64([c], r, -1.5, 1.5);
        await checkOp(RMSNORM, [x, w], { eps: epsFor(c, e) }, { seed });
      }),
      { numRuns: 20 },
    );
  });

  it('frozen weight (LoRA): dx only; frozen x: dw only', async () => {
    await fc.assert(
      fc.asyncProperty(leading, C, fc.integer(), async (lead, c, seed) => {
        const r = rng(seed);
        const x = f32(randomF64([...lead, c], r));
        const w = f32(randomF64([c], r, 0.5, 1.5));
        const attrs = { eps: epsFor(c, 1e-6) };
        await checkOp(RMSNORM, [x, w], attrs, { seed, frozen: [false, true], dtypes: ['f32', 'f32'] });
        await checkOp(RMSNORM, [x, w], attrs, { seed, frozen: [true, false], dtypes: ['f32', 'f32'] });
      }),
      { numRuns: 8 },
    );
  });

  it('computes nothing for an input that needs no gradient', () => {
    scope(() => {
      const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
      const w = Tensor.fromArray([1, 1, 1]);
      const y = RMSNORM.forward([x, w], { eps: 1e-6 }) as Tensor;
      const ctx = (needs: boolean[]) => ({ inputs: [x, w], out: y, attrs: { eps: 1e-6 }, needs, saved: undefined, into: [null, null] });
      const [dx, dw] = RMSNORM.backward(y, ctx([true, false]));
      expect(dx).toBeInstanceOf(Tensor);
      expect(dw).toBeNull();
      const [dx2, dw2] = RMSNORM.backward(y, ctx([false, true]));
      expect(dx2).toBeNull();
      expect(dw2).toBeInstanceOf(Tensor);
    });
  });

  it('is stable at large magnitudes (|x| ~ 1e3, C = 224 and 896)', async () => {
    for (const c of [224, 896, 225]) {
      const r = rng(c);
      const x = randomF64([3, c], r, -1e3, 1e3);
      const w = randomF64([c], r, 0.5, 1.5);
      // step 1e-6·|x| keeps the finite difference well inside float64 at this scale
      await checkOp(RMSNORM, [x, w], { eps: 1e-6 }, { seed: c, gpuTol: 2e-5 });
      // the normalised rows have unit RMS: y/w has mean square ≈ 1 (exact up to eps/mean(x²) ≈ 3e-12)
      const xt = ref.toTensor(x);
      const wt = ref.toTensor(w);
      const yt = RMSNORM.forward([xt, wt], { eps: 1e-6 });
      const y = await ref.fromTensor(yt);
      for (let row = 0; row < 3; row++) {
        let ms = 0;
        for (let k = 0; k < c; k++) ms += (y.data[row * c + k]! / w.data[k]!) ** 2 / c;
        expect(Math.abs(ms - 1)).toBeLessThan(1e-5);
      }
      for (const t of [xt, wt, yt]) t.dispose();
    }
  });

  it('matches the float64 formula of HF MistralRMSNorm written out independently', async () => {
    const rows = 5;
    const c = 224;
    const r = rng(7);
    const x = randomF64([rows, c], r, -4, 4);
    const w = randomF64([c], r, 0.5, 1.5);
    const xs = f32(x);
    const ws = f32(w);
    // variance = x.pow(2).mean(-1); hidden = x * rsqrt(variance + eps); weight * hidden
    const want = ref.empty([rows, c]);
    for (let i = 0; i < rows; i++) {
      const row = xs.data.subarray(i * c, (i + 1) * c);
      const variance = row.reduce((s, v) => s + v * v, 0) / c;
      row.forEach((v, k) => (want.data[i * c + k] = ws.data[k]! * (v / Math.sqrt(variance + 1e-6))));
    }
    const xt = ref.toTensor(xs);
    const wt = ref.toTensor(ws);
    const y = RMSNORM.forward([xt, wt], { eps: 1e-6 });
    expectClose('rmsnorm vs HF formula', await ref.fromTensor(y), want, 1e-6);
    for (const t of [xt, wt, y]) t.dispose();
  });

  it('rejects a weight that does not match the last dim', () => {
    expect(() => RMSNORM.cpu.forward([randomF64([2, 3], rng(1)), randomF64([4], rng(2))], { eps: 1e-6 })).toThrow(/weight shape \[4\] must be \[3\]/);
  });
});
