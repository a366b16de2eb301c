// SwiGLU: gradients against finite differences and the GPU against the CPU twin (scalar and vec4 kernels), the frozen-input
// paths, saturated gates, and the fused op against the unfused silu then mul.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, scope, Tensor } from '@dawngrad/tensor';
import { SWIGLU } from '../src/index.ts';
import { checkOp, randomF64, rng, expectClose } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

// sizes that are and are not multiples of 4 (vec4 and scalar kernels)
const shape = fc.array(fc.constantFrom(1, 3, 4, 7, 56, 57), { minLength: 1, maxLength: 3 }).filter((s) => s.reduce((a, b) => a * b, 1) <= 4000);

describe('swiglu', () => {
  it('gradient of swiglu', async () => {
    await fc.assert(
      fc.asyncProperty(shape, fc.integer(), async (s, seed) => {
        const r = rng(seed);
        await checkOp(SWIGLU, [randomF64(s, r, -6, 6), randomF64(s, r, -2, 2)], null, { seed });
      }),
      { numRuns: 16 },
    );
  });

  it('frozen up (dgate only) and frozen gate (dup only)', async () => {
    await fc.assert(
      fc.asyncProperty(shape, fc.integer(), async (s, seed) => {
        const r = rng(seed);
        const f32 = (a: ReturnType<typeof randomF64>) => ({ shape: a.shape, data: Float64Array.from(Float32Array.from(a.data)) });
        const gate = f32(randomF64(s, r, -6, 6));
        const up = f32(randomF64(s, r, -2, 2));
        await checkOp(SWIGLU, [gate, up], null, { seed, frozen: [false, true], dtypes: ['f32', 'f32'] });
        await checkOp(SWIGLU, [gate, up], null, { seed, frozen: [true, false], dtypes: ['f32', 'f32'] });
      }),
      { numRuns: 6 },
    );
  });

  it('stays finite and exact where the gate saturates (|gate| up to 100)', async () => {
    const gate = ref.array([-100, -40, -20, 20, 40, 100, 0, -0.5], [2, 4]);
    const up = ref.array([1, -2, 3, -4, 5, -6, 7, 8], [2, 4]);
    await checkOp(SWIGLU, [gate, up], null, { seed: 3, h: 1e-7 });
    const ts = [ref.toTensor(gate), ref.toTensor(up)];
    const y = SWIGLU.forward(ts, null);
    for (const v of (await ref.fromTensor(y)).data) expect(Number.isFinite(v)).toBe(true);
    for (const t of [...ts, y]) t.dispose();
  });

  it('equals the unfused silu(gate) · up', async () => {
    const r = rng(11);
    const gate = randomF64([5, 57], r, -5, 5);
    const up = randomF64([5, 57], r, -2, 2);
    // independent formula: silu(x) = x / (1 + e^(-x)) (torch's F.silu), then the product
    const want = ref.empty(gate.shape);
    const g32 = Float32Array.from(gate.data);
    const u32 = Float32Array.from(up.data);
    want.data.forEach((_, i) => (want.data[i] = (g32[i]! / (1 + Math.exp(-g32[i]!))) * u32[i]!));
    const ts = [ref.toTensor(gate), ref.toTensor(up)];
    const y = SWIGLU.forward(ts, null);
    expectClose('swiglu vs silu·up', await ref.fromTensor(y), want, 1e-6);
    for (const t of [...ts, y]) t.dispose();
  });

  it('computes nothing for an input that needs no gradient, and rejects mismatched shapes', () => {
    scope(() => {
      const a = Tensor.fromArray([1, 2, 3], [3]);
      const ctx = (needs: boolean[]) => ({ inputs: [a, a], out: a, attrs: null, needs, saved: undefined, into: [null, null] });
      const [dg, du] = SWIGLU.backward(a, ctx([false, true]));
      expect(dg).toBeNull();
      expect(du).toBeInstanceOf(Tensor);
      expect(SWIGLU.backward(a, ctx([false, false]))).toEqual([null, null]);
    });
    expect(() => SWIGLU.cpu.forward([randomF64([2, 3], rng(1)), randomF64([3, 2], rng(1))], null)).toThrow(/must have the same shape/);
  });
});
