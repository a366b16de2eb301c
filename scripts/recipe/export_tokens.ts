// Writes the token ids that scripts/recipe/search.py trains and evaluates on, tokenised by dawngrad itself (so the
// PyTorch proxy sees exactly the prompts and answers our trainer builds): a JSON file under /tmp, never in the repo.
//
//   pnpm exec tsx scripts/recipe/export_tokens.ts [--out /tmp/recipe-tokens.json] [--train 12000] [--subset 1000]
//
// Holds: the first N train rows in file order (what `--max-train N` keeps) as prompt ids + label, the whole
// validation split, the stratified validation subset (`--max-eval` picks it the same way, seed 0), the answers'
// ids, their first tokens, the end token, and the tokenizer's pieces (so Python can parse generated answers).
// The test split is never read.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HfTokenizer } from '../../packages/model/src/index.ts';
import { PromptFormat, loadSplit, stratifiedSubset, epochBatches, type Dataset } from '../../packages/train/src/index.ts';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const shared = path.resolve(root, '../shared');
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const out = opt('out', '/tmp/recipe-tokens.json');
const nTrain = Number(opt('train', '12000'));
const nSubset = Number(opt('subset', '1000'));
const modelDir = path.join(shared, 'models/tweet-mistral-tiny');
const dataDir = path.join(shared, 'data/tweet_eval/sentiment');

const tokenizer = HfTokenizer.fromDir(modelDir);
const fmt = new PromptFormat(tokenizer);
fmt.checkFirstTokenScoring();

const split = (ds: Dataset) => ({ prompts: ds.texts.map((t) => Array.from(fmt.prompt(t))), labels: ds.labels });
const train = await loadSplit(dataDir, 'train', { limit: nTrain });
const val = await loadSplit(dataDir, 'validation');
const valSubset = stratifiedSubset(val, nSubset, { seed: 0 });

// a check for search.py's port of the data order: our epoch-0 batches of the first 64 rows (seed 0, batch 4, bucketing 4)
const probeExamples = fmt.examples(train.texts.slice(0, 64), train.labels.slice(0, 64));
const orderProbe = { n: 64, seed: 0, batchSize: 4, bucketWindow: 4, batches: epochBatches(probeExamples, 0, { batchSize: 4, seed: 0, bucketWindow: 4 }) };

const vocabSize = tokenizer.vocabSize;
const pieces: string[] = [];
for (let id = 0; id < vocabSize; id++) pieces.push(tokenizer.idToToken(id) ?? '');

writeFileSync(
  out,
  JSON.stringify({
    system: fmt.system,
    answers: fmt.answers.map((a) => Array.from(a)),
    firstTokens: fmt.firstTokens,
    endToken: fmt.endToken,
    pieces,
    train: split(train),
    validation: split(val),
    validationSubset: split(valSubset),
    orderProbe,
    vocabSize,
  }),
);
console.log(`wrote ${out}: train ${train.texts.length}, validation ${val.texts.length}, subset ${valSubset.texts.length}; answers ${JSON.stringify(fmt.answers.map((a) => Array.from(a)))}`);
