// dawngrad generate: continue a prompt (or answer a chat turn) with the model (+ adapter) and print the new text.
// Greedy by default; --temperature / --top-k / --top-p sample, seeded by --seed. Generation stops at the model's eos
// ids and, in chat mode, at the token the chat template closes each turn with (ChatML's <|im_end|>).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, parse, num, type Command } from './args.ts';

const USAGE = `usage: dawngrad generate --model DIR [--adapter DIR] (--prompt TEXT | --chat TEXT [--system TEXT]) [--max-new-tokens 64]
  [--greedy | --temperature T [--top-k K] [--top-p P] [--seed S]]

  --prompt TEXT        plain text to continue (the tokenizer adds <s> as it does for training)
  --chat TEXT          a user message, rendered with the model's chat template and the assistant's generation prompt
  --system TEXT        a system message before the user's (chat only)
  --max-new-tokens N   at most N new tokens (default 64)
  --greedy             always the most likely token (the default)
  --temperature T      sample at temperature T > 0 (1 when only --top-k/--top-p are given)
  --top-k K            sample among the K most likely tokens
  --top-p P            sample from the smallest set of tokens whose probability reaches P (0 < P ≤ 1)
  --seed S             the sampler's seed (default 0): the same seed gives the same text`;

export const generateCmd: Command = {
  summary: 'generate text from a prompt or a chat message (greedy or sampled)',
  async run(argv) {
    const { values: v } = parse('generate', argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      prompt: { type: 'string' },
      chat: { type: 'string' },
      system: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      greedy: { type: 'boolean' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    const modelDir = v.model;
    if (!modelDir) throw new CliError('generate: --model DIR is required');
    for (const [flag, dir] of [['model', modelDir], ['adapter', v.adapter]] as const) {
      if (dir !== undefined && !(existsSync(dir) && statSync(dir).isDirectory())) throw new CliError(`generate: --${flag} ${dir} is not a directory`);
    }
    if ((v.prompt === undefined) === (v.chat === undefined)) throw new CliError('generate: give exactly one of --prompt TEXT or --chat TEXT');
    if (v.system !== undefined && v.chat === undefined) throw new CliError('generate: --system needs --chat');
    const maxNewTokens = num('generate', 'max-new-tokens', v['max-new-tokens'], 64, { int: true, min: 1 });
    const sampling = v.temperature !== undefined || v['top-k'] !== undefined || v['top-p'] !== undefined;
    if (sampling && v.greedy) throw new CliError('generate: --greedy cannot be combined with --temperature, --top-k or --top-p');
    if (!sampling && v.seed !== undefined) throw new CliError('generate: --seed only matters when sampling (--temperature, --top-k or --top-p)');
    const opts = {
      maxNewTokens,
      greedy: !sampling,
      temperature: sampling ? num('generate', 'temperature', v.temperature, 1, { minExclusive: 0 }) : undefined,
      topK: v['top-k'] === undefined ? undefined : num('generate', 'top-k', v['top-k'], 0, { int: true, min: 1 }),
      topP: v['top-p'] === undefined ? undefined : num('generate', 'top-p', v['top-p'], 1, { minExclusive: 0, max: 1 }),
      seed: num('generate', 'seed', v.seed, 0, { int: true, min: 0 }),
    };

    // the GPU stack only once the flags have passed
    const { init, dispose } = await import('@dawngrad/tensor');
    const { loadModel, loadConfig, loadGenerationConfig, HfTokenizer, checkVocab, generate } = await import('@dawngrad/model');
    const { loadAdapter } = await import('@dawngrad/lora');
    const tokenizer = HfTokenizer.fromDir(modelDir);
    const cfg = loadConfig(join(modelDir, 'config.json'));
    checkVocab(tokenizer, cfg);
    const stop = new Set([...cfg.eosTokenIds, ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId])]);
    const genCfg = join(modelDir, 'generation_config.json');
    if (existsSync(genCfg)) for (const id of loadGenerationConfig(genCfg).eosTokenIds) stop.add(id);
    let ids: number[];
    if (v.chat !== undefined) {
      if (!tokenizer.chatTemplate) throw new Error(`${modelDir}: the tokenizer has no chat_template; use --prompt`);
      const messages = [...(v.system !== undefined ? [{ role: 'system', content: v.system }] : []), { role: 'user', content: v.chat }];
      const rendered = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
      // <s> once: from the template when it writes it, else from the tokenizer (as the training prompts get it)
      ids = tokenizer.encode(rendered, { addSpecialTokens: !(tokenizer.bosToken && rendered.startsWith(tokenizer.bosToken)) });
      const end = turnEndToken(tokenizer);
      if (end !== undefined) stop.add(end);
    } else {
      ids = tokenizer.encode(v.prompt!, { addSpecialTokens: true });
    }
    if (ids.length === 0) throw new CliError('generate: the prompt encodes to no tokens');
    await init();
    try {
      const model = await loadModel(modelDir);
      if (v.adapter) (await loadAdapter(v.adapter, model)).eval();
      const g = await generate(model, [ids], { ...opts, stopTokens: [...stop] });
      const out = g.ids[0]!;
      const text = tokenizer.decode(stop.has(out[out.length - 1]!) ? out.slice(0, -1) : out, { skipSpecialTokens: true });
      console.log(text);
      return 0;
    } finally {
      dispose();
    }
  },
};

/**
 * The special token a chat template writes right after a message's content (ChatML: <|im_end|>), found by rendering
 * a marker message; undefined when the template closes turns with plain text.
 */
function turnEndToken(tokenizer: import('@dawngrad/model').HfTokenizer): number | undefined {
  const marker = 'dawngrad-marker';
  const text = tokenizer.applyChatTemplate([{ role: 'user', content: marker }, { role: 'assistant', content: marker }]);
  const after = text.slice(text.lastIndexOf(marker) + marker.length);
  const first = tokenizer.encode(after, { addSpecialTokens: false })[0];
  const token = first === undefined ? undefined : tokenizer.idToToken(first);
  return token !== undefined && /^<.+>$/.test(token) ? first : undefined;
}
