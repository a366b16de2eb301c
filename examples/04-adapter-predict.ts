// Example 4 — load a PEFT LoRA adapter onto its base model and classify tweets.
//
//   pnpm exec tsx examples/04-adapter-predict.ts           (from the repository root)
//   pnpm exec tsx examples/04-adapter-predict.ts "I love it" "worst day ever"
//   pnpm exec tsx examples/04-adapter-predict.ts --model ../shared/models/tweet-mistral-tiny --adapter runs/example-adapter
//   pnpm exec tsx examples/04-adapter-predict.ts --merge   (fold B·A into W first: same answers, plain linear layers)
//
// The default is the Hugging Face PEFT adapter of the hf-tiny test fixture (../shared/fixtures/hf-tiny/adapter, made
// by PEFT itself) on its random tiny model: it shows the loading, not sentiment — its answers are noise. For real
// predictions train one with example 3 (`--save runs/example-adapter`) and pass the tiny tweet model as --model.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { init, dispose } from '@dawngrad/tensor';
import { loadModel, HfTokenizer, generate } from '@dawngrad/model';
import { loadAdapter } from '@dawngrad/lora';
import { PromptFormat, LABEL_NAMES, PAD_ID } from '@dawngrad/train';

const fixture = (p: string) => fileURLToPath(new URL(`../../shared/fixtures/hf-tiny/${p}`, import.meta.url));
const { values: f, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string', default: fixture('') },
    adapter: { type: 'string', default: fixture('adapter') },
    'max-new-tokens': { type: 'string', default: '4' },
    merge: { type: 'boolean', default: false },
  },
});
const tweets = positionals.length > 0 ? positionals : [
  'Loving the sunshine today, best weekend in ages!',
  'The train is late again. Third time this week.',
  'The meeting has been moved to 3pm on Thursday.',
];

const fmt = new PromptFormat(HfTokenizer.fromDir(f.model)); // same prompts as training: chat template + system message
await init();
const model = await loadModel(f.model);
// adapter_config.json (r, alpha, target_modules) + adapter_model.safetensors, checked against the model, then injected
const lora = await loadAdapter(f.adapter, model);
lora.eval();
console.log(`adapter ${f.adapter}: r ${lora.config.r}, alpha ${lora.config.lora_alpha}, ${lora.layers.length} layers (${lora.layers.map((l) => l.path.split('.').pop()).filter((v, i, a) => a.indexOf(v) === i).join(', ')})`);
if (f.merge) lora.merge(); // W += scale·B·A in place: the forward no longer runs the adapters

// all tweets in one right-padded batch; greedy answers stop at <|im_end|>
const { ids } = await generate(model, tweets.map((t) => fmt.prompt(t)), { maxNewTokens: Number(f['max-new-tokens']), stopTokens: [fmt.endToken], padId: PAD_ID });
tweets.forEach((tweet, i) => {
  const label = fmt.parseAnswer(ids[i]!); // the first word of the answer, or -1 when it is not a label
  const answer = fmt.tokenizer.decode(ids[i]!, { skipSpecialTokens: true });
  console.log(`prediction: ${(label >= 0 ? LABEL_NAMES[label] : '(none)').padEnd(8)}  answer ${JSON.stringify(answer)}  <- ${JSON.stringify(tweet)}`);
});

lora.dispose();
dispose();
