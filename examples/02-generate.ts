// Example 2 — load a Hugging Face model directory and generate from a chat prompt.
//
//   pnpm exec tsx examples/02-generate.ts                  (from the repository root)
//   pnpm exec tsx examples/02-generate.ts --prompt "what a day" --max-new-tokens 32 --temperature 0.8 --seed 1
//   pnpm exec tsx examples/02-generate.ts --model DIR      (any Mistral/Llama directory: config.json, safetensors, tokenizer)
//
// The default model is the shared tiny Mistral (../shared/models/tweet-mistral-tiny): a base model pretrained on
// tweets, so it continues a tweet rather than answering one. Greedy decoding unless --temperature is given.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { init, dispose } from '@dawngrad/tensor';
import { loadModel, loadConfig, HfTokenizer, checkVocab, generate } from '@dawngrad/model';

const { values: flags } = parseArgs({
  options: {
    model: { type: 'string', default: fileURLToPath(new URL('../../shared/models/tweet-mistral-tiny', import.meta.url)) },
    prompt: { type: 'string', default: 'Just watched the new episode and' },
    'max-new-tokens': { type: 'string', default: '24' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string', default: '0' },
  },
});
const dir = flags.model;
const maxNewTokens = Number(flags['max-new-tokens']);

// the tokenizer and config are plain files: check them before the GPU starts
const tokenizer = HfTokenizer.fromDir(dir); // tokenizer.json + tokenizer_config.json (special tokens, chat template)
checkVocab(tokenizer, loadConfig(`${dir}/config.json`), dir);

await init();
const model = await loadModel(dir); // config.json + (sharded) safetensors -> GPU, bf16 widened to f32
const c = model.config;
console.log(`model: ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, ${c.numAttentionHeads} heads (${c.numKeyValueHeads} KV), vocab ${c.vocabSize}`);

// ChatML: <|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n — the template comes from tokenizer_config.json
const text = tokenizer.applyChatTemplate([{ role: 'user', content: flags.prompt }], { addGenerationPrompt: true });
const promptIds = tokenizer.encode(text); // adds <s> as the tokenizer config asks
console.log(`prompt (${promptIds.length} tokens): ${JSON.stringify(text)}`);

const t0 = performance.now();
const { ids } = await generate(model, [promptIds], {
  maxNewTokens,
  stopTokens: tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId], // <|im_end|> ends the assistant turn
  temperature: flags.temperature === undefined ? undefined : Number(flags.temperature),
  topP: flags['top-p'] === undefined ? undefined : Number(flags['top-p']),
  seed: Number(flags.seed),
});
const out = ids[0]!;
const seconds = (performance.now() - t0) / 1000;
console.log(`generated (${out.length} tokens, ${(out.length / seconds).toFixed(1)} tokens/s): ${JSON.stringify(tokenizer.decode(out, { skipSpecialTokens: true }))}`);

model.dispose();
dispose();
