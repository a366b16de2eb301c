// dawngrad's numbers on fixed inputs, for `search.py check` to compare with the PyTorch proxy's (within 1e-4 relative):
// the loss of one fixed batch (the first 16 train rows as prompt ‖ answer, the base model = LoRA at init, since B = 0),
// the same loss label-smoothed with ε = 0.1, and the label words' first-token logits after the content-free prompts
// that --calibrate content-free measures the prior on. Prints them and writes them to a JSON file.
//   pnpm exec tsx scripts/recipe/base_loss.ts [--out /tmp/recipe-dawngrad.json]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose, Tensor } from '@dawngrad/tensor';
import { HfTokenizer, loadModel } from '../../packages/model/src/index.ts';
import { inject } from '../../packages/lora/src/index.ts';
import { PromptFormat, loadSplit, trainBatch, forwardBackward } from '../../packages/train/src/index.ts';
import { firstTokenScores } from '../../packages/train/src/evaluate.ts';
import { CONTENT_FREE_TEXTS } from '../../packages/train/src/prompts.ts';

const i = process.argv.indexOf('--out');
const out = i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : '/tmp/recipe-dawngrad.json';
const shared = path.resolve(fileURLToPath(import.meta.url), '../../../../shared');
const modelDir = path.join(shared, 'models/tweet-mistral-tiny');
const train = await loadSplit(path.join(shared, 'data/tweet_eval/sentiment'), 'train', { limit: 16 });
const fmt = new PromptFormat(HfTokenizer.fromDir(modelDir));
await init();
const model = await loadModel(modelDir);
const lora = inject(model, { r: 8, lora_alpha: 16, target_modules: 'all-linear', seed: 0 }); // B = 0: the base model's loss
const loss = async (labelSmoothing: number) => {
  const batch = trainBatch(fmt.examples(train.texts, train.labels));
  const l = forwardBackward(model, batch, 1, labelSmoothing);
  batch.dispose();
  for (const p of lora.parameters()) p.zeroGrad();
  return (await l.toArray())[0]!;
};
const baseLoss = await loss(0);
const smoothedLoss = await loss(0.1);
const firstIds = Tensor.fromArray(Int32Array.from(fmt.firstTokens), [fmt.firstTokens.length], 'i32');
const cf = await firstTokenScores(model, CONTENT_FREE_TEXTS.map((t) => fmt.prompt(t)), firstIds);
const contentFreeLogits = CONTENT_FREE_TEXTS.map((_, r) => Array.from(cf.subarray(3 * r, 3 * r + 3)));
console.log(`dawngrad base loss, first 16 train rows: ${baseLoss.toFixed(7)} (label smoothing 0.1: ${smoothedLoss.toFixed(7)})`);
console.log(`content-free first-token logits: ${JSON.stringify(contentFreeLogits)}`);
writeFileSync(out, JSON.stringify({ baseLoss, smoothedLoss, contentFreeLogits }));
console.log(`wrote ${out}`);
dispose();
