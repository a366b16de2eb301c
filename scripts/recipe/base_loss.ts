// dawngrad's loss of one fixed batch (the first 16 train rows as prompt ‖ answer, the base model = LoRA at init,
// since B = 0): search.py check prints the same number from the PyTorch proxy; they must agree within 1e-4 relative.
//   pnpm exec tsx scripts/recipe/base_loss.ts
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose } from '@dawngrad/tensor';
import { HfTokenizer, loadModel } from '../../packages/model/src/index.ts';
import { inject } from '../../packages/lora/src/index.ts';
import { PromptFormat, loadSplit, trainBatch, forwardBackward } from '../../packages/train/src/index.ts';

const shared = path.resolve(fileURLToPath(import.meta.url), '../../../../shared');
const modelDir = path.join(shared, 'models/tweet-mistral-tiny');
const train = await loadSplit(path.join(shared, 'data/tweet_eval/sentiment'), 'train', { limit: 16 });
const fmt = new PromptFormat(HfTokenizer.fromDir(modelDir));
await init();
const model = await loadModel(modelDir);
inject(model, { r: 8, lora_alpha: 16, target_modules: 'all-linear', seed: 0 }); // B = 0: the base model's loss
const batch = trainBatch(fmt.examples(train.texts, train.labels));
const loss = forwardBackward(model, batch);
console.log(`dawngrad base loss, first 16 train rows: ${((await loss.toArray())[0]!).toFixed(7)}`);
dispose();
