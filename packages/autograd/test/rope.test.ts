// RoPE: gradients against finite differences and the GPU against the CPU twin, then the kernel against an independent
// float64 formula with explicit angles p·θ^(−2i/D), and the backward as the inverse rotation.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { init, dispose, ref, Tensor } from '@dawngrad/tensor';
import { ROPE, ropeInvFreq } from '../src/index.ts';
import { checkOp, randomF64, rng, expectClose, type CheckOptions } from './gradcheck.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

const THETAS = [10000, 1e6, 500];

/** positions [B, T]: each row starts at its own offset (as after left padding or in a KV-cached continuation) */
function positions(B: number, T: number, rand: () => number, maxStart = 300): { shape: number[]; data: Float64Array } {
  const data = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = 1 + Math.floor(rand() * maxStart);
    for (let t = 0; t < T; t++) data[b * T + t] = start + t;
  }
  return { shape: [B, T], data };
}

describe('rope', () => {
  it('gradient of rope', async () => {
    const dims = fc.tuple(fc.constantFrom(1, 2, 3), fc.constantFrom(1, 3, 7), fc.constantFrom(1, 2, 3), fc.constantFrom(2, 6, 28, 56));
    await fc.assert(
      fc.asyncProperty(dims, fc.constantFrom(...THETAS), fc.integer(), async ([B, T, H, D], theta, seed) => {
        const r = rng(seed);
        const opts: CheckOptions = { seed };
        await checkOp(ROPE, [randomF64([B, T, H, D], r), positions(B, T, r)], { theta }, opts);
      }),
      { numRuns: 16 },
    );
  });

  it('matches cos/sin of explicit float64 angles p·θ^(−2i/D) (HF rotate-half layout)', async () => {
    for (const theta of THETAS) {
      for (const D of [2, 6, 28, 56]) {
        const [B, T, H] = [2, 5, 3];
        const r = rng(D + theta);
        const x = randomF64([B, T, H, D], r);
        x.data = Float64Array.from(Float32Array.from(x.data));
        const pos = positions(B, T, r, 200);
        // independent of the op's code: angles in float64, then out = x·cos + rotate_half(x)·sin written per element
        const want = ref.empty(x.shape);
        for (let bt = 0; bt < B * T; bt++) {
          for (let h = 0; h < H; h++) {
            const o = (bt * H + h) * D;
            for (let d = 0; d < D; d++) {
              const i = d % (D / 2); // cos/sin are concat(freqs, freqs)
              const angle = pos.data[bt]! * theta ** ((-2 * i) / D);
              const rot = d < D / 2 ? -x.data[o + d + D / 2]! : x.data[o + d - D / 2]!;
              want.data[o + d] = x.data[o + d]! * Math.cos(angle) + rot * Math.sin(angle);
            }
          }
        }
        const xt = ref.toTensor(x);
        const pt = ref.toTensor(pos, 'i32');
        const y = ROPE.forward([xt, pt], { theta }) as Tensor;
        // float32 angles of up to 200 rad carry ~2e-5 rad of rounding (HF has the same)
        expectClose(`rope θ=${theta} D=${D}`, await ref.fromTensor(y), want, 5e-5);
        // backward is the inverse rotation: feeding y back as the gradient returns x
        const back = ROPE.backward(y, { inputs: [xt, pt], out: y, attrs: { theta }, needs: [true, false], saved: undefined, into: [null, null] });
        expect(back[1]).toBeNull();
        expectClose(`rope⁻¹ θ=${theta} D=${D}`, await ref.fromTensor(back[0]!), x, 1e-6);
        for (const t of [xt, pt, y, back[0]!]) t.dispose();
      }
    }
  });

  it('computes inv_freq as HF does in float32', () => {
    // HF: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)): three float32 roundings (the exponent, which ln θ
    // amplifies, the power and the reciprocal) away from the exact value
    for (const [theta, D] of [[10000, 56], [1e6, 128], [10000, 2]] as const) {
      const inv = ropeInvFreq(theta, D);
      expect(inv.length).toBe(D / 2);
      expect(inv[0]).toBe(1);
      const bound = Math.log(theta) * 2 ** -24 + 2 ** -23;
      inv.forEach((v, i) => expect(Math.abs(v - theta ** ((-2 * i) / D))).toBeLessThanOrEqual(bound * v));
    }
  });

  it('rejects an odd head dim and mismatched positions', () => {
    const x = randomF64([2, 3, 4, 5], rng(1));
    const p = positions(2, 3, rng(2));
    expect(() => ROPE.cpu.forward([x, p], { theta: 1e4 })).toThrow(/head dim D must be even/);
    const x2 = randomF64([2, 3, 4, 6], rng(1));
    expect(() => ROPE.cpu.forward([x2, positions(3, 2, rng(2))], { theta: 1e4 })).toThrow(/positions shape \[3, 2\] must be \[2, 3\]/);
    const xt = ref.toTensor(x2);
    const pf = Tensor.fromArray(p.data, p.shape, 'f32');
    expect(() => ROPE.forward([xt, pf], { theta: 1e4 })).toThrow(/positions i32/);
    xt.dispose();
    pf.dispose();
  });
});
