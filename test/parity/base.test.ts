// Parity with Hugging Face transformers on shared/fixtures/hf-tiny: logits, loss and every base-parameter gradient.
import { describe, it, expect } from 'vitest';
import { backward } from '@dawngrad/autograd';
import { loadModel, shiftedTargetsFull, causalLmLoss, type MistralForCausalLM } from '@dawngrad/model';
import { HF_TINY, maxAbs, relErr, fixtureBatch, torchReference } from '../shared.ts';

let model: MistralForCausalLM;

const { meta, dump, tensor } = torchReference(async () => {
  model = await loadModel(HF_TINY);
});

describe('hf-tiny base model parity', () => {
  it('logits, loss and every base gradient match transformers', async () => {
    const { batch, labels, B, T } = await fixtureBatch(dump());
    model.requiresGrad(true);
    const logits = model.forward(batch);
    const loss = causalLmLoss(logits, shiftedTargetsFull(labels, B, T));
    backward(loss);
    const got = await logits.data.toArray();
    const want = await tensor('base.logits');
    expect(got.length).toBe(want.length);
    expect(maxAbs(got, want)).toBeLessThanOrEqual(1e-4);
    const l = await loss.data.item();
    expect(Math.abs(l - meta['base.loss']) / meta['base.loss']).toBeLessThanOrEqual(1e-5);
    const params = model.namedParameters();
    expect(params.length).toBe(dump().names().filter((n) => n.startsWith('base.grad.')).length);
    for (const { name, param } of params) {
      expect(param.grad, `${name} has a gradient`).toBeTruthy();
      const g = await param.grad!.toArray();
      const err = relErr(g, await tensor(`base.grad.${name}`));
      expect(err, `gradient of ${name}`).toBeLessThanOrEqual(1e-3);
    }
  });
});
