// Cross-entropy: the gradient property (both row-reduction variants, ignored rows, a custom ignoreIndex, label
// smoothing), the Hugging Face loss on the hf-tiny fixture's logits, PyTorch's label-smoothed loss and gradient, the
// all-ignored and out-of-range cases, and no readback.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose, rt, ref, Tensor } from '@dawngrad/tensor';
import { CROSS_ENTROPY, crossEntropy, apply, param, constant, backward, type F64 } from '../src/index.ts';
import { checkOp, randomF64, rng } from './gradcheck.ts';

const SHARED = resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const FIXTURE = resolve(SHARED, 'fixtures/hf-tiny');

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

/** The named tensors of a safetensors file (F32 and I32 only), as float64. */
function readSafetensors(file: string, names: string[]): Record<string, F64> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out: Record<string, F64> = {};
  for (const name of names) {
    const { dtype, shape, data_offsets: [a, b] } = header[name];
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const copy = new Uint8Array(bytes).buffer; // aligned
    const arr = dtype === 'F32' ? new Float32Array(copy) : dtype === 'I32' ? new Int32Array(copy) : null;
    if (!arr) throw new Error(`${name}: unexpected dtype ${dtype}`);
    out[name] = { shape, data: Float64Array.from(arr) };
  }
  return out;
}

const targetsF64 = (N: number, V: number, r: () => number, ignore: number, pIgnore: number): F64 => ({
  shape: [N],
  data: Float64Array.from({ length: N }, () => (r() < pIgnore ? ignore : Math.floor(r() * V))),
});

describe('crossEntropy', () => {
  it('gradient of crossEntropy (both row variants, ignored rows, custom ignoreIndex, label smoothing)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 3, 7, 56),
        fc.constantFrom(1, 3, 7, 57, 300),
        fc.constantFrom('tree' as const, 'serial' as const),
        fc.constantFrom(-100, 2),
        fc.constantFrom(0, 0.1, 0.5),
        fc.integer(),
        async (N, V, variant, ignoreIndex, labelSmoothing, seed) => {
          fc.pre(N * V <= 6000);
          const r = rng(seed);
          const logits = randomF64([N, V], r, -3, 3);
          // smoothing's lse − (1 − ε)·x_t − ε·mean(x) cancels to ~0 when V = 1: f32 rounding of the ~3-sized terms
          await checkOp(CROSS_ENTROPY, [logits, targetsF64(N, V, r, ignoreIndex, 0.25)], { ignoreIndex, variant, labelSmoothing }, { seed, gpuAtol: labelSmoothing ? 1e-6 : 0 });
        },
      ),
      { numRuns: 16 },
    );
  });

  it('matches the Hugging Face loss on the hf-tiny logits (labels shifted by one, -100 ignored)', async () => {
    const t = readSafetensors(resolve(FIXTURE, 'reference.safetensors'), ['base.logits', 'labels']);
    const want = JSON.parse(readFileSync(resolve(FIXTURE, 'reference.json'), 'utf8'))['base.loss'] as number;
    const [B, T, V] = t['base.logits']!.shape as [number, number, number];
    // the causal shift (the model's job, done here by hand): logits at position s predict the label at s + 1
    const logits = ref.empty([B * (T - 1), V]);
    const labels = ref.empty([B * (T - 1)]);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < T - 1; s++) {
        const row = b * (T - 1) + s;
        logits.data.set(t['base.logits']!.data.subarray((b * T + s) * V, (b * T + s + 1) * V), row * V);
        labels.data[row] = t['labels']!.data[b * T + s + 1]!;
      }
    }
    expect(labels.data.some((v) => v === -100) && labels.data.some((v) => v !== -100)).toBe(true);
    for (const variant of ['tree', 'serial'] as const) {
      const { out: loss, saved } = CROSS_ENTROPY.forward([ref.toTensor(logits), ref.toTensor(labels, 'i32')], { variant }) as { out: Tensor; saved: { lse: Tensor; count: Tensor } };
      expect(Math.abs((await loss.item()) - want)).toBeLessThan(2e-6 * want);
      expect(await saved.count.item()).toBe(labels.data.filter((v) => v !== -100).length); // what the backward divides by
    }
    // the float64 twin agrees too (it sees the float32-stored logits, so only to about 1e-6)
    expect(Math.abs(CROSS_ENTROPY.cpu.forward([logits, labels], {}).data[0]! - want)).toBeLessThan(1e-6 * want);
  });

  it("label smoothing gives PyTorch's loss and gradient (F.cross_entropy(label_smoothing=0.3), both row variants)", async () => {
    // torch 1.13: F.cross_entropy([[1, 2, 3], [0.5, -1, 2]], [0, 2], label_smoothing=0.3) and its gradient
    const want = 1.399458646774292;
    const wantGrad = [-0.35498470067977905, 0.07236424088478088, 0.28262048959732056, 0.03764519467949867, -0.030443714931607246, -0.007201492786407471];
    for (const variant of ['tree', 'serial'] as const) {
      const x = param(Tensor.fromArray([1, 2, 3, 0.5, -1, 2], [2, 3]));
      const loss = apply(CROSS_ENTROPY, [x, constant(Tensor.fromArray(new Int32Array([0, 2])))], { labelSmoothing: 0.3, variant });
      backward(loss);
      expect(await loss.data.item()).toBeCloseTo(want, 6);
      Array.from(await x.grad!.toArray()).forEach((g, i) => expect(g).toBeCloseTo(wantGrad[i]!, 6));
    }
    // an ignored row stays out of the mean: torch gives 2.1076059341430664 for targets [0, -100]
    const loss = crossEntropy(param(Tensor.fromArray([1, 2, 3, 0.5, -1, 2], [2, 3])), constant(Tensor.fromArray(new Int32Array([0, -100]))), { labelSmoothing: 0.3 });
    expect(await loss.data.item()).toBeCloseTo(2.1076059341430664, 6);
    expect(() => crossEntropy(param(Tensor.fromArray([1, 2], [1, 2])), constant(Tensor.fromArray(new Int32Array([0]))), { labelSmoothing: 1 })).toThrow(
      /labelSmoothing must be in \[0, 1\), got 1/,
    );
  });

  it('is 0 with a zero gradient when every target is ignored', async () => {
    const x = param(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
    const loss = crossEntropy(x, constant(Tensor.fromArray(new Int32Array([-100, -100]))));
    backward(loss);
    expect(await loss.data.item()).toBe(0);
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('makes the loss NaN for a target outside [0, V) that is not ignoreIndex (the GPU cannot throw)', async () => {
    const x = param(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
    const loss = crossEntropy(x, constant(Tensor.fromArray(new Int32Array([0, 3]))));
    expect(await loss.data.item()).toBeNaN();
  });

  it('encodes forward and backward without reading back or submitting', async () => {
    const r = rng(5);
    const x = param(ref.toTensor(randomF64([48, 1000], r)));
    const t = constant(ref.toTensor(targetsF64(48, 1000, r, -100, 0.5), 'i32'));
    await rt().sync();
    const before = { ...rt().stats };
    backward(crossEntropy(x, t));
    expect(rt().stats.readbacks).toBe(before.readbacks);
    expect(rt().stats.submits).toBe(before.submits);
    expect(rt().stats.dispatches - before.dispatches).toBe(4); // rows, mean, seed fill, backward
  });

  it('rejects mismatched shapes and dtypes with one line', () => {
    const x = param(Tensor.fromArray(new Float32Array(6), [2, 3]));
    expect(() => crossEntropy(x, constant(Tensor.fromArray(new Int32Array([0, 1, 2]))))).toThrow(
      /crossEntropy: targets \[3\] do not match logits \[2, 3\] \(want \[2\]\)/,
    );
    expect(() => crossEntropy(x, constant(Tensor.fromArray(new Float32Array([0, 1]))))).toThrow(/targets must be i32, got f32/);
    expect(() => crossEntropy(param(Tensor.fromArray(new Float32Array(6))), constant(Tensor.fromArray(new Int32Array(6))))).toThrow(
      /logits must be f32 \[N, V\]/,
    );
  });
});
