// Writes the token ids that scripts/recipe/search.py trains and evaluates on, tokenised by dawngrad itself (so the
// PyTorch proxy sees exactly the prompts and answers our trainer builds): a JSON file (gzipped when the name ends in
// .gz) under /tmp or an ignored folder, never in the repo.
//
//   pnpm exec tsx scripts/recipe/export_tokens.ts [--out /tmp/recipe-tokens.json] [--train 12000|all] [--subset 1000]
//       [--shared DIR]   (default: $DAWNGRAD_SHARED, else ../shared beside the repository)
//
// Holds: the first N train rows in file order (what `--max-train N` keeps) as prompt ids + label, the split's size and
// class counts (for --balance down), the whole validation split, the stratified validation subset (`--max-eval` picks
// it the same way, seed 0), the answers' ids, their first tokens, the end token, the content-free prompts that
// calibration measures the label prior on, the tokenizer's pieces (so Python can parse generated answers), and parity
// probes: our data order, class-balanced rows, lr schedules and calibrated predictions on fixed inputs, which
// `search.py check` compares with its own ports. The test split is never read.
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HfTokenizer } from '../../packages/model/src/index.ts';
import { PromptFormat, loadSplit, stratifiedSubset, epochBatches, mulberry32, type Dataset } from '../../packages/train/src/index.ts';
import { balanceRows } from '../../packages/train/src/batching.ts';
import { lrFactor, warmupSteps, SCHEDULES } from '../../packages/train/src/optim/schedule.ts';
import { labelPrior, calibratedPredictions } from '../../packages/train/src/evaluate.ts';
import { CONTENT_FREE_TEXTS } from '../../packages/train/src/prompts.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const shared = path.resolve(opt('shared', process.env.DAWNGRAD_SHARED ?? path.resolve(root, '../shared')));
const out = opt('out', '/tmp/recipe-tokens.json');
const trainArg = opt('train', '12000');
const nTrain = trainArg === 'all' ? Infinity : Number(trainArg);
const nSubset = Number(opt('subset', '1000'));
if (!(nTrain > 0) || !(nSubset > 0)) {
  console.error(`export_tokens: --train must be a positive number or all, --subset a positive number`);
  process.exit(2);
}
const modelDir = path.join(shared, 'models/tweet-mistral-tiny');
const dataDir = path.join(shared, 'data/tweet_eval/sentiment');

const tokenizer = HfTokenizer.fromDir(modelDir);
const fmt = new PromptFormat(tokenizer);
fmt.checkFirstTokenScoring();

const split = (ds: Dataset) => ({ prompts: ds.texts.map((t) => Array.from(fmt.prompt(t))), labels: ds.labels });
const whole = await loadSplit(dataDir, 'train');
const train: Dataset = { texts: whole.texts.slice(0, nTrain), labels: whole.labels.slice(0, nTrain) };
const val = await loadSplit(dataDir, 'validation');
const valSubset = stratifiedSubset(val, nSubset, { seed: 0 });

// a check for search.py's port of the data order: our epoch-0 batches of the first 64 rows (seed 0, batch 4, bucketing 4)
const probeExamples = fmt.examples(train.texts.slice(0, 64), train.labels.slice(0, 64));
const orderProbe = { n: 64, seed: 0, batchSize: 4, bucketWindow: 4, batches: epochBatches(probeExamples, 0, { batchSize: 4, seed: 0, bucketWindow: 4 }) };

// the other ports search.py makes, on fixed inputs: class-balanced rows, every lr schedule, calibration
const probeLabels = train.labels.slice(0, 600);
const rand = mulberry32(7);
const probeScores = Array.from({ length: 60 * 3 }, () => 6 * rand() - 3);
const probePrior = labelPrior(probeScores, 3);
const parity = {
  balance: { labels: probeLabels, down: balanceRows(probeLabels, 'down', 450), up: balanceRows(probeLabels, 'up', 300) },
  schedules: SCHEDULES.flatMap((name) => [7, 100].map((total) => {
    const s = { name, totalSteps: total, warmupSteps: warmupSteps(total, 0.1) };
    return { name, total, warmup: 0.1, factors: Array.from({ length: total }, (_, k) => lrFactor(s, k)) };
  })),
  calibration: { scores: probeScores, prior: probePrior, predictions: calibratedPredictions(probeScores, probePrior) },
};

const vocabSize = tokenizer.vocabSize;
const pieces: string[] = [];
for (let id = 0; id < vocabSize; id++) pieces.push(tokenizer.idToToken(id) ?? '');

const json = JSON.stringify({
  system: fmt.system,
  answers: fmt.answers.map((a) => Array.from(a)),
  firstTokens: fmt.firstTokens,
  endToken: fmt.endToken,
  contentFree: CONTENT_FREE_TEXTS.map((t) => Array.from(fmt.prompt(t))),
  pieces,
  trainTotal: whole.texts.length,
  trainClassCounts: [0, 1, 2].map((c) => whole.labels.filter((y) => y === c).length),
  train: split(train),
  validation: split(val),
  validationSubset: split(valSubset),
  orderProbe,
  parity,
  vocabSize,
});
writeFileSync(out, out.endsWith('.gz') ? gzipSync(json, { level: 9 }) : json);
console.log(`wrote ${out}: train ${train.texts.length} of ${whole.texts.length}, validation ${val.texts.length}, subset ${valSubset.texts.length}; answers ${JSON.stringify(fmt.answers.map((a) => Array.from(a)))}`);
