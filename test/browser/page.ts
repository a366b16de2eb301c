// The page the browser test opens (bundled by esbuild for the browser, as the demo is): the same packages on
// navigator.gpu, everything loaded over HTTP from the fixture served beside the page. Each check returns plain
// numbers; browser.test.ts compares them with the Node parity tests' tolerances.
import { init, rt } from '@dawngrad/tensor';
import { backward, noGrad } from '@dawngrad/autograd';
import { loadModel, urlSource, SafetensorsFile, shiftedTargetsFull, causalLmLoss, type MistralForCausalLM } from '@dawngrad/model';
import { loadAdapter, inject } from '@dawngrad/lora';
// train's index also holds its Node CLI and data readers: the page takes the optimiser module alone
import { AdamW } from '../../packages/train/src/optim/adamw.ts';
import { maxAbs, relErr } from '../errors.ts';
import { fixtureBatch } from '../fixture-batch.ts';

const FIXTURE = urlSource('fixtures/hf-tiny/');

/** The fixture's batch and its transformers/PEFT outputs (reference.safetensors + reference.json), over HTTP. */
async function reference() {
  const ref = await SafetensorsFile.open(await FIXTURE.open('reference.safetensors'));
  const meta = JSON.parse(await FIXTURE.text('reference.json')) as Record<string, unknown>;
  const { batch, labels, B, T } = await fixtureBatch(ref);
  return { ref, meta, batch, targets: shiftedTargetsFull(labels, B, T) };
}

async function adapter() {
  await init();
  const c = rt().ctx;
  return { platform: c.platform, adapterClass: c.adapterClass, info: c.info, features: c.features, hasF16: c.hasF16 };
}

/** Base logits, then the PEFT adapter loaded from its URL: logits, loss and every LoRA gradient against PEFT. */
async function parity() {
  await init();
  const t0 = performance.now();
  const { ref, meta, batch, targets } = await reference();
  const model = await loadModel(FIXTURE);
  const baseLogits = maxAbs(await noGrad(() => model.forward(batch)).data.toArray(), (await ref.readTensor('base.logits')).data);
  const lora = await loadAdapter(urlSource('fixtures/hf-tiny/adapter/'), model);
  const logits = lora.forward(batch);
  const loss = causalLmLoss(logits, targets);
  backward(loss);
  const loraLogits = maxAbs(await logits.data.toArray(), (await ref.readTensor('lora.logits')).data);
  const l = await loss.data.item();
  const grads: Record<string, number> = {};
  for (const { name, param } of lora.namedParameters()) {
    grads[name] = param.grad ? relErr(await param.grad.toArray(), (await ref.readTensor(`lora.grad.${name}`)).data) : Infinity;
  }
  const baseGrads = lora.base.namedParameters().filter((p) => p.param.grad !== null).length;
  lora.dispose();
  await ref.close();
  return {
    baseLogits,
    loraLogits,
    loraLossRel: Math.abs(l - (meta['lora.loss'] as number)) / (meta['lora.loss'] as number),
    grads,
    loraNames: meta['lora.names'],
    baseGrads,
    ms: performance.now() - t0,
  };
}

/** Two AdamW steps of a fresh all-linear LoRA on the fixture batch: the losses of steps 1, 2 and after. */
async function loraSteps() {
  await init();
  const t0 = performance.now();
  const { ref, batch, targets } = await reference();
  await ref.close();
  const model: MistralForCausalLM = await loadModel(FIXTURE);
  const lora = inject(model, { r: 8, lora_alpha: 16, target_modules: 'all-linear', seed: 1 });
  const params = lora.parameters();
  const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0, maxGradNorm: 1 });
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    const loss = causalLmLoss(lora.forward(batch), targets);
    backward(loss);
    opt.update();
    for (const p of params) p.zeroGrad();
    losses.push(await loss.data.item());
  }
  losses.push(await noGrad(() => causalLmLoss(lora.forward(batch), targets)).data.item());
  opt.dispose();
  lora.dispose();
  return { losses, ms: performance.now() - t0 };
}

/** The error of loading an adapter from a URL where there is none: one line naming what is missing where. */
async function missingAdapter() {
  await init();
  const model = await loadModel(FIXTURE);
  try {
    await loadAdapter(urlSource('fixtures/hf-tiny/no-adapter/'), model);
    return 'loaded';
  } catch (e) {
    return (e as Error).message;
  } finally {
    model.dispose();
  }
}

(globalThis as Record<string, unknown>).dawngradTest = { adapter, parity, loraSteps, missingAdapter };
