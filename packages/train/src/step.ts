// One training step, as DESIGN.md draws it: forward to the answer positions only, cross-entropy, backward (activation
// gradients through the frozen base, weight gradients for LoRA A/B only), global-norm clip + AdamW — all encoded into
// the step's command buffer. The loss is read back one step late so the CPU encodes step k+1 while the GPU runs step k.
import { Tensor, scope, keep } from '@dawngrad/tensor';
import { backward, constant, crossEntropy, scale, type Var } from '@dawngrad/autograd';
import type { MistralForCausalLM, Batch } from '@dawngrad/model';
import type { AdamW } from './optim/adamw.ts';
import type { TrainBatch } from './batching.ts';

/** Forward + backward of one micro-batch; gradients accumulate into the parameters' .grad. Returns the loss tensor [1].
 *  labelSmoothing: ε of the cross-entropy (0: plain). */
export function forwardBackward(model: MistralForCausalLM, batch: TrainBatch, lossScale = 1, labelSmoothing = 0): Tensor {
  return scope(() => {
    // logits: [N, V] at the rows that predict answer tokens (suffix rows when the batch shares a prefix)
    const inputs: Batch = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
    if (batch.prefix) inputs.prefix = { ids: batch.prefix };
    const logits = model.forward(inputs, { logitsAt: batch.logitsAt });
    const targets = constant(Tensor.fromArray(batch.targets, [batch.targets.length], 'i32'));
    const loss = crossEntropy(logits, targets, { ignoreIndex: -100, labelSmoothing });
    // activations are freed as backward passes them: the step's peak holds the gradients and what is still to come
    backward(lossScale === 1 ? loss : scale(loss, lossScale), { freeActivations: true, keep: [loss] });
    return keep(loss.data);
  });
}

/** Clip, update, and zero the gradients (the optimiser's parameters'). */
export function optimizerStep(opt: AdamW, lr: number): void {
  opt.lr = lr;
  opt.update();
  opt.zeroGrad();
}

/** Reads losses back one step late: push(step, tensor) starts the read, the previous one is awaited. */
export class LaggedReader {
  private pending: { step: number; value: Promise<number> } | null = null;

  /** Start reading `t` (disposed once copied), return the previous step's value if there was one. */
  async push(step: number, t: Tensor): Promise<{ step: number; value: number } | null> {
    const value = t.toArray().then((a) => a[0]!);
    t.dispose(); // the copy into the staging buffer is already encoded
    const prev = this.pending;
    this.pending = { step, value };
    return prev ? { step: prev.step, value: await prev.value } : null;
  }

  async drain(): Promise<{ step: number; value: number } | null> {
    const prev = this.pending;
    this.pending = null;
    return prev ? { step: prev.step, value: await prev.value } : null;
  }
}
