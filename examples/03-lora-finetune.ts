// Example 3 — LoRA fine-tuning from code (the library pieces the `dawngrad train` CLI is built from), then macro-F1.
//
//   pnpm exec tsx examples/03-lora-finetune.ts             (from the repository root: 200 tweets, one epoch)
//   pnpm exec tsx examples/03-lora-finetune.ts --train 200 --eval 200 --batch-size 8 --lr 1e-3 --save runs/example-adapter
//   pnpm exec tsx examples/03-lora-finetune.ts --train 12 --batch-size 4 --eval 24 --eval-mode first-token   (a smoke run)
//
// Each tweet becomes a ChatML prompt and the answer "negative|neutral|positive<|im_end|>"; the loss is the
// cross-entropy of the answer tokens only. 200 tweets are far too few for this small base model to learn the task (the
// reference needs ~45k for macro-F1 0.53, see ../shared/models/tweet-mistral-tiny/README.md): expect near-chance scores.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { init, dispose } from '@dawngrad/tensor';
import { loadModel, HfTokenizer } from '@dawngrad/model';
import { inject, saveAdapter } from '@dawngrad/lora';
import {
  loadSplit, stratifiedSubset, PromptFormat, trainBatch, epochBatches, AdamW, lrFactor, warmupSteps, forwardBackward,
  optimizerStep, LaggedReader, evaluate, computeMetrics, formatMetricsSummary, formatConfusionMatrix, type EvalMode,
} from '@dawngrad/train';

const shared = (p: string) => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const { values: f } = parseArgs({
  options: {
    model: { type: 'string', default: shared('models/tweet-mistral-tiny') },
    data: { type: 'string', default: shared('data/tweet_eval/sentiment') },
    train: { type: 'string', default: '200' }, // training tweets (a seeded random sample of the train split)
    eval: { type: 'string', default: '200' }, // validation tweets (a seeded per-class subset)
    'batch-size': { type: 'string', default: '8' },
    epochs: { type: 'string', default: '1' },
    lr: { type: 'string', default: '1e-3' },
    r: { type: 'string', default: '8' },
    alpha: { type: 'string', default: '16' },
    targets: { type: 'string', default: 'all-linear' }, // or a list: q_proj,k_proj,v_proj
    'eval-mode': { type: 'string', default: 'both' }, // first-token | generate | both
    seed: { type: 'string', default: '0' },
    save: { type: 'string' }, // write the PEFT adapter here
  },
});
const int = (name: keyof typeof f) => {
  const v = Number(f[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got '${f[name]}'`);
  return v;
};
const [nTrain, nEval, batchSize, epochs, r, seed] = [int('train'), int('eval'), int('batch-size'), int('epochs'), int('r'), Number(f.seed)];
const lr = Number(f.lr);
const mode = f['eval-mode'] as EvalMode;
if (!['first-token', 'generate', 'both'].includes(mode)) throw new Error(`--eval-mode must be first-token, generate or both, got '${mode}'`);

// 1. data and prompts (CPU only)
const train = await loadSplit(f.data, 'train', { sample: nTrain, seed });
const val = stratifiedSubset(await loadSplit(f.data, 'validation'), nEval, { seed });
const fmt = new PromptFormat(HfTokenizer.fromDir(f.model)); // the model's chat template + the default system message
const examples = fmt.examples(train.texts, train.labels); // { prompt: ids, answer: ids, label }

// 2. the base model on the GPU, frozen, with LoRA adapters plugged into its linear layers
await init();
const model = await loadModel(f.model);
const lora = inject(model, {
  r,
  lora_alpha: Number(f.alpha),
  target_modules: f.targets.includes(',') ? f.targets.split(',') : f.targets,
  seed,
});
const params = lora.parameters(); // only the A and B factors train
console.log(`LoRA r ${r} on ${lora.layers.length} linear layers: ${lora.numTrainable().toLocaleString('en')} trainable values`);

// 3. training: AdamW with global-norm clipping, linear warm-up then decay
const opt = new AdamW(params, { lr, weightDecay: 0.01, maxGradNorm: 1, packed: lora.packed() }); // one update over every factor at once
const stepsPerEpoch = Math.ceil(examples.length / batchSize);
const schedule = { name: 'linear' as const, totalSteps: stepsPerEpoch * epochs, warmupSteps: warmupSteps(stepsPerEpoch * epochs, 0.1) };
const reader = new LaggedReader(); // losses come back one step late, so the GPU never waits for the CPU to read
const printLoss = (l: { step: number; value: number } | null) => l && console.log(`step ${String(l.step).padStart(3)}/${schedule.totalSteps}  loss ${l.value.toFixed(4)}`);
const t0 = performance.now();
let step = 0;
for (let epoch = 0; epoch < epochs; epoch++) {
  for (const idx of epochBatches(examples, epoch, { batchSize, seed })) {
    const batch = trainBatch(idx.map((i) => examples[i]!)); // right-padded ids [B, T], mask, answer rows and targets
    const loss = forwardBackward(model, batch); // forward to the answer rows, cross-entropy, backward into A/B .grad
    optimizerStep(opt, lr * lrFactor(schedule, step)); // clip + AdamW, then zero the gradients
    batch.dispose();
    printLoss(await reader.push(++step, loss));
  }
}
printLoss(await reader.drain());
console.log(`trained ${step} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// 4. evaluation on validation tweets: first-token scores of the three label words, and/or greedy generation
lora.eval(); // dropout off
const res = await evaluate(model, fmt, val.texts, val.labels, { mode, batchSize: 32 });
for (const [how, r] of [['first-token', res.firstToken], ['generate', res.generate]] as const) {
  if (!r) continue;
  const m = computeMetrics(val.labels, r.predictions); // labels vs predictions (-1 = no label word generated)
  console.log(`\n${how}: ${formatMetricsSummary(m)}`);
  console.log(`${how} macro-F1 ${m.macroF1.toFixed(4)} on ${m.total} validation tweets`);
  console.log(formatConfusionMatrix(m.matrix));
}

if (f.save) {
  await saveAdapter(lora, f.save); // adapter_config.json + adapter_model.safetensors, loadable by PEFT
  console.log(`adapter saved to ${f.save}`);
}
lora.dispose(); // the adapters and the base model
opt.dispose();
dispose();
