// Parity with torch.optim.AdamW + clip_grad_norm_ on shared/fixtures/hf-tiny: three steps on the fixture's batch from
// the PEFT adapter, each step's gradient norm, the LoRA weights after every step, and the merged model's logits.
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { scope } from '@dawngrad/tensor';
import { backward, noGrad } from '@dawngrad/autograd';
import { loadModel, shiftedTargetsFull, causalLmLoss } from '@dawngrad/model';
import { loadAdapter } from '@dawngrad/lora';
import { AdamW } from '@dawngrad/train';
import { HF_TINY, maxAbs, relErr, fixtureBatch, torchReference } from '../shared.ts';

const { meta, dump } = torchReference();

describe('AdamW parity with PyTorch', () => {
  it('three clipped AdamW steps give the reference weights, norms and merged logits', async () => {
    const { batch, labels, B, T } = await fixtureBatch(dump());
    const model = await loadModel(HF_TINY);
    const lora = await loadAdapter(join(HF_TINY, 'adapter'), model);
    const named = lora.namedParameters();
    expect(named.map((p) => p.name)).toEqual(meta['lora.names']);
    const a = meta.adamw;
    const opt = new AdamW(lora.parameters(), { lr: a.lr, betas: a.betas, eps: a.eps, weightDecay: a.weight_decay, maxGradNorm: a.clip_max_norm });
    const targets = shiftedTargetsFull(labels, B, T);
    for (let step = 0; step < 3; step++) {
      const lossT = scope(() => {
        const loss = causalLmLoss(lora.forward(batch), targets);
        backward(loss);
        opt.update();
        return loss.data;
      });
      const loss = await lossT.item();
      expect(Math.abs(loss - meta[`lora.step${step}.loss`]) / meta[`lora.step${step}.loss`]).toBeLessThanOrEqual(1e-5);
      const norm = await opt.lastGradNorm();
      expect(Math.abs(norm - meta[`lora.step${step}.grad_norm`]) / meta[`lora.step${step}.grad_norm`]).toBeLessThanOrEqual(1e-5);
      for (const { name, param } of named) {
        param.zeroGrad();
        const err = relErr(await param.data.toArray(), (await dump().readTensor(`lora.after_step${step}.${name}`)).data);
        expect(err, `${name} after step ${step}`).toBeLessThanOrEqual(1e-5);
      }
    }
    lora.merge();
    const logits = noGrad(() => lora.forward(batch));
    expect(maxAbs(await logits.data.toArray(), (await dump().readTensor('merged.logits')).data)).toBeLessThanOrEqual(1e-4);
    opt.dispose();
    lora.dispose();
  });
});
