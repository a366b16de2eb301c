// Mixed precision (--precision mixed) against Hugging Face's f32 numbers on shared/fixtures/hf-tiny: the frozen
// weights stored in f16, every matmul f16·f16 summed in f32, everything else in f32. On this adapter that is the SIMT
// f16 kernel (a GPU with subgroup matrices runs the tensor-core kernel, checked against the SIMT one by tuneMatmul).
// Tolerances: f16 keeps 11 significant bits (unit roundoff 2^-11 ≈ 4.9e-4 on each operand), so a product's relative
// error is ~1e-3 and a sum of K of them with random signs stays near that relative to its own scale; two layers and the
// head compound it a few times. Measured on lavapipe: logits 8.2e-4 of their range, loss 1.9e-5 relative, LoRA gradients
// 1.8e-3 relative at worst (f32: 7.7e-7, 1.4e-7, 1.5e-6). We ask for 5e-3, 1e-3 and 1e-2 — about 6× the measured, and
// far below what a wrong kernel or a missed conversion gives (O(1)).
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { backward } from '@dawngrad/autograd';
import { loadModel, shiftedTargetsFull, causalLmLoss, storedAsF16 } from '@dawngrad/model';
import { loadAdapter } from '@dawngrad/lora';
import { HF_TINY, maxAbs, relErr, fixtureBatch, torchReference } from '../shared.ts';

const { meta, dump, tensor } = torchReference();

describe('mixed precision parity with transformers + PEFT (f32)', () => {
  it('stores the matmul weights and the embedding in f16, the norms in f32, and halves their bytes', async () => {
    const f32 = await loadModel(HF_TINY);
    const mixed = await loadModel(HF_TINY, { precision: 'mixed' });
    const bytes = (m: typeof f32) => m.namedParameters().reduce((n, p) => n + p.param.data.bytes, 0);
    for (const { name, param } of mixed.namedParameters()) expect(param.data.dtype, name).toBe(storedAsF16(name) ? 'f16' : 'f32');
    expect(bytes(mixed) / bytes(f32)).toBeLessThan(0.51);
    f32.dispose();
    mixed.dispose();
  });

  it('logits, loss and every LoRA gradient of the PEFT adapter stay within f16 tolerances of the f32 reference', async () => {
    const { batch, labels, B, T } = await fixtureBatch(dump());
    const lora = await loadAdapter(join(HF_TINY, 'adapter'), await loadModel(HF_TINY, { precision: 'mixed' }));
    const logits = lora.forward(batch);
    const loss = causalLmLoss(logits, shiftedTargetsFull(labels, B, T));
    backward(loss);
    const want = await tensor('lora.logits');
    const range = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const logitErr = maxAbs(await logits.data.toArray(), want) / range;
    expect(logitErr).toBeLessThanOrEqual(5e-3);
    expect(logitErr).toBeGreaterThan(1e-6); // the f16 path really ran: f32 lands at ~1e-7 here
    expect(Math.abs((await loss.data.item()) - meta['lora.loss']) / meta['lora.loss']).toBeLessThanOrEqual(1e-3);
    for (const { name, param } of lora.namedParameters()) {
      expect(relErr(await param.grad!.toArray(), await tensor(`lora.grad.${name}`)), `gradient of ${name}`).toBeLessThanOrEqual(1e-2);
    }
    expect(() => lora.merge()).toThrow(/f16/);
    lora.dispose();
  });
});
