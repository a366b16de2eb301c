// A LoRA training step with the shared system-prompt prefix computed once per batch (trainBatch's sharePrefix, the
// trainer's default) against the same step on the plain batch, on the hf-tiny fixture model with adapters on every
// linear layer: the logits at the answer rows, the loss and every LoRA gradient must agree to float32 rounding, for the
// real chat prompts (P = the system turn), for P = 1, and for a prefix covering all but the last prompt token.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, scope, Tensor } from '@dawngrad/tensor';
import { noGrad } from '@dawngrad/autograd';
import { loadModel, HfTokenizer, generate, commonPrefixLength, MIN_SHARED_PREFIX, type Batch, type MistralForCausalLM } from '@dawngrad/model';
import { inject, type LoraModel } from '@dawngrad/lora';
import { PromptFormat, loadSplit, trainBatch, sharedPrefixLength, forwardBackward, type Example, type TrainBatch, type BatchOptions } from '@dawngrad/train';
import { firstTokenScores } from '../../packages/train/src/evaluate.ts';
import { HF_TINY, TWEETS, maxAbs } from '../shared.ts';

let model: MistralForCausalLM;
let lora: LoraModel;
let fmt: PromptFormat;

beforeAll(async () => {
  await init();
  model = await loadModel(HF_TINY);
  fmt = new PromptFormat(HfTokenizer.fromDir(HF_TINY));
  // init_lora_weights false: B is random too, so A's gradients are not zero
  lora = inject(model, { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: 'all-linear', init_lora_weights: false, seed: 3 });
});
afterAll(() => {
  lora?.dispose();
  model?.dispose();
  dispose();
});

/** The model inputs of a TrainBatch, as forwardBackward passes them. */
function inputsOf(b: TrainBatch): Batch {
  const inputs: Batch = { inputIds: b.inputIds, attentionMask: b.attentionMask };
  if (b.prefix) inputs.prefix = { ids: b.prefix };
  return inputs;
}

/** One step's numbers: the answer-row logits, the loss and every LoRA gradient (zeroed afterwards). */
async function step(rows: readonly Example[], o: BatchOptions) {
  const batch = trainBatch(rows, o);
  const P = batch.prefix?.shape[1] ?? 0;
  const logits = await scope(() => noGrad(() => lora.forward(inputsOf(batch), { logitsAt: batch.logitsAt })).data.toArray());
  const lossT = forwardBackward(model, batch);
  const loss = await lossT.item();
  lossT.dispose();
  batch.dispose();
  const grads = new Map<string, Float32Array>();
  for (const { name, param } of lora.namedParameters()) {
    expect(param.grad, `${name} has a gradient`).toBeTruthy();
    grads.set(name, Float32Array.from(await param.grad!.toArray()));
    param.zeroGrad();
  }
  return { P, logits, loss, grads };
}

/** Plain and shared-prefix steps on the same rows agree; returns the P the shared batch used. */
async function expectSameStep(rows: readonly Example[], minPrefix?: number): Promise<number> {
  const plain = await step(rows, {});
  const shared = await step(rows, { sharePrefix: true, minPrefix });
  expect(plain.P).toBe(0);
  expect(maxAbs(shared.logits, plain.logits)).toBeLessThanOrEqual(1e-4);
  expect(Math.abs(shared.loss - plain.loss) / plain.loss).toBeLessThanOrEqual(1e-5);
  expect(shared.grads.size).toBe(lora.namedParameters().length);
  for (const [name, g] of plain.grads) {
    const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale, `${name}: the plain gradient is not all zero`).toBeGreaterThan(0);
    expect(maxAbs(shared.grads.get(name)!, g) / scale, `gradient of ${name}`).toBeLessThanOrEqual(1e-4);
  }
  for (const { name, param } of model.namedParameters()) expect(param.grad, `${name} is frozen`).toBeNull();
  return shared.P;
}

describe('LoRA step with the shared prompt prefix computed once', () => {
  it('real chat prompts: the system turn is the prefix; logits, loss and every LoRA gradient match the plain batch', async () => {
    const data = await loadSplit(TWEETS, 'train', { limit: 6 });
    const rows = fmt.examples(data.texts, data.labels);
    const P = await expectSameStep(rows);
    expect(P).toBeGreaterThanOrEqual(8);
  });

  it('P = 1: rows that share only <s>', async () => {
    const data = await loadSplit(TWEETS, 'train', { limit: 4 });
    // cut out the common part after <s> (L tokens), so the rows part right after <s>: <s> ‖ each row from where they differ
    const rows = fmt.examples(data.texts, data.labels);
    const L = sharedPrefixLength(rows);
    const cut = rows.map((r) => ({ ...r, prompt: Int32Array.from([r.prompt[0]!, ...r.prompt.subarray(L)]) }));
    expect(new Set(cut.map((r) => r.prompt[1])).size).toBeGreaterThan(1); // they do differ at token 1
    expect(await expectSameStep(cut, 1)).toBe(1);
  });

  it('one tweet under every label: the prefix covers all but the last prompt token', async () => {
    const data = await loadSplit(TWEETS, 'train', { limit: 1 });
    const rows = fmt.examples([0, 1, 2].map(() => data.texts[0]!), [0, 1, 2]);
    expect(await expectSameStep(rows)).toBe(rows[0]!.prompt.length - 1);
  });

  it('first-token scoring (evaluate) gives the same scores with the prompts\' prefix run once', async () => {
    const data = await loadSplit(TWEETS, 'validation', { limit: 5 });
    const prompts = data.texts.map((t) => fmt.prompt(t));
    expect(sharedPrefixLength(prompts.map((prompt) => ({ prompt })))).toBeGreaterThanOrEqual(8); // the prefix path is taken
    const ids = Tensor.fromArray(Int32Array.from(fmt.firstTokens), [fmt.firstTokens.length], 'i32');
    const plain = await firstTokenScores(model, prompts, ids, { sharePrefix: false });
    const shared = await firstTokenScores(model, prompts, ids);
    ids.dispose();
    expect(plain.length).toBe(prompts.length * fmt.firstTokens.length);
    expect(maxAbs(shared, plain)).toBeLessThanOrEqual(1e-4);
  });

  it('generation with the prefix prefilled once: same first-token logits, same ids over several cached decode steps', async () => {
    const data = await loadSplit(TWEETS, 'validation', { limit: 6 });
    const prompts = data.texts.map((t) => fmt.prompt(t)); // different lengths: right padding after the prefix too
    expect(commonPrefixLength(prompts)).toBeGreaterThanOrEqual(MIN_SHARED_PREFIX); // the prefix path is taken
    const firstTokenIds = Array.from({ length: 40 }, (_, i) => 7 + 13 * i); // a spread of vocabulary rows
    const o = { maxNewTokens: 6, firstTokenIds }; // no stop token: every row runs all the decode steps
    const plain = await generate(model, prompts, o);
    const shared = await generate(model, prompts, { ...o, sharePrefix: true });
    expect(maxAbs(shared.firstTokenLogits!, plain.firstTokenLogits!)).toBeLessThanOrEqual(1e-4);
    expect(shared.ids).toEqual(plain.ids); // a wrong cache position or mask would change the later tokens
    expect(plain.ids.every((r) => r.length === 6)).toBe(true);
  });
});
