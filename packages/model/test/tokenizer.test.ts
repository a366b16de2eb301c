import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// Imported from the files themselves, not index.ts: these tests need no GPU runtime.
import { HfTokenizer, checkVocab } from '../src/tokenizer.ts';
import { ChatTemplate, selectChatTemplate } from '../src/chat.ts';
import { loadConfig } from '../src/config.ts';
import { SafetensorsFile } from '../src/safetensors.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const SHARED = resolve(ROOT, '../shared');
const LITE = join(SHARED, 'models/lite-oute-1-300m-instruct');
const TINY = join(SHARED, 'models/tweet-mistral-tiny');
const HF = join(SHARED, 'fixtures/hf-tiny');
const SYSTEM = 'Classify the sentiment of the tweet as negative, neutral or positive.';
const LABELS = ['negative', 'neutral', 'positive'];

const reference = JSON.parse(readFileSync(join(HF, 'reference.json'), 'utf8'));
let rows: { text: string; label: number }[];
let tmp: string;

beforeAll(async () => {
  // hyparquet is a dependency of packages/train; resolve it from there rather than adding it to this package.
  const require = createRequire(join(ROOT, 'packages/train/package.json'));
  const hp = await import(pathToFileURL(require.resolve('hyparquet')).href);
  const file = await hp.asyncBufferFromFile(join(SHARED, 'data/tweet_eval/sentiment/validation.parquet'));
  rows = (await hp.parquetReadObjects({ file, columns: ['text', 'label'], rowEnd: 200 })).map((r: any) => ({ text: r.text, label: Number(r.label) }));
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-tok-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Loading the 32k-piece tokenizer takes about a second on this machine: build each one once.
const cache = new Map<string, HfTokenizer>();
const load = (dir: string) => cache.get(dir) ?? (cache.set(dir, HfTokenizer.fromDir(dir)), cache.get(dir)!);

/**
 * The fixture was made from val_text.txt, whose lines end in one or two spaces that the parquet `text` column strips.
 * Byte-level BPE makes trailing whitespace its own pre-token, so we rebuild the line as text + ' ' (or '  ' where the
 * fixture's last token is a double space) — every other token must come out of our tokenizer unaided.
 */
function fixtureLine(tok: HfTokenizer, i: number): string {
  const ids: number[] = reference.encode_reference.ids[i];
  const tail = tok.idToToken(ids[ids.length - 1]) ?? '';
  expect(/^Ġ{1,2}$/.test(tail)).toBe(true);
  return rows[i].text + ' '.repeat(tail.length);
}

describe('hf-tiny tokenizer against transformers', () => {
  it('encodes the 200 validation tweets to the reference ids', () => {
    const tok = HfTokenizer.fromDir(HF);
    expect(rows.length).toBe(200);
    const ids = reference.encode_reference.ids as number[][];
    let same = 0;
    for (let i = 0; i < 200; i++) if (JSON.stringify(tok.encode(fixtureLine(tok, i))) === JSON.stringify(ids[i])) same++;
    expect(same).toBe(200);
    // Without the trailing spaces the ids are a strict prefix: the tokenizer did the work, not the reconstruction.
    expect(tok.encode(rows[0].text)).toEqual(ids[0].slice(0, -1));
  });

  it('renders the four fixture prompts exactly, and their ids match the fixture batch', async () => {
    const tok = HfTokenizer.fromDir(HF);
    const torchDump = await SafetensorsFile.open(join(HF, 'reference.safetensors'));
    const inputIds = await torchDump.readTensor('input_ids');
    const mask = await torchDump.readTensor('attention_mask');
    await torchDump.close();
    const T = inputIds.shape[1];
    for (let i = 0; i < 4; i++) {
      const prompt = tok.applyChatTemplate([{ role: 'system', content: SYSTEM }, { role: 'user', content: fixtureLine(tok, i) }], { addGenerationPrompt: true });
      expect(prompt).toBe(reference.prompts[i]);
      const ids = [...tok.encode(prompt), ...tok.encode(LABELS[rows[i].label] + '<|im_end|>')];
      const n = [...mask.data.subarray(i * T, (i + 1) * T)].reduce((a, b) => a + b, 0);
      expect(ids).toEqual([...inputIds.data.subarray(i * T, i * T + n)]);
    }
  });

  it('adds no special tokens (no post-processor, no add_bos_token) and decodes back to the text', () => {
    const tok = HfTokenizer.fromDir(HF);
    expect(tok.addBosToken).toBeNull();
    expect(tok.encode('hello', { addSpecialTokens: true })).toEqual(tok.encode('hello', { addSpecialTokens: false }));
    for (const r of rows) expect(tok.decode(tok.encode(r.text))).toBe(r.text);
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([1000])).toThrow(/token id 1000 is outside the vocabulary \(size 1000\)/);
  });
});

describe('Lite-Oute tokenizer', () => {
  it('splits ChatML markers as the published ids show', () => {
    const tok = load(LITE);
    expect(tok.encode('<|im_start|>system', { addSpecialTokens: false })).toEqual([32001, 1587]);
    expect(tok.encode('<|im_end|>\n', { addSpecialTokens: false })).toEqual([32000, 28705, 13]);
  });

  it('adds <s> exactly once with special tokens on, none with them off', () => {
    const tok = load(LITE);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(32000);
    const prompt = tok.applyChatTemplate([{ role: 'system', content: SYSTEM }, { role: 'user', content: rows[0].text }], { addGenerationPrompt: true });
    expect(prompt.startsWith('<|im_start|>system\n')).toBe(true);
    const on = tok.encode(prompt);
    const off = tok.encode(prompt, { addSpecialTokens: false });
    expect(on).toEqual([1, ...off]);
    expect(off.includes(1)).toBe(false);
    // Same answer when the special tokens come from tokenizer.json's own post-processor (the config flags removed).
    const cfg = JSON.parse(readFileSync(join(LITE, 'tokenizer_config.json'), 'utf8'));
    delete cfg.add_bos_token; delete cfg.add_eos_token; cfg.tokenizer_class = 'PreTrainedTokenizerFast';
    const viaPost = new HfTokenizer(JSON.parse(readFileSync(join(LITE, 'tokenizer.json'), 'utf8')), cfg);
    expect(viaPost.addBosToken).toBeNull();
    expect(viaPost.encode(prompt)).toEqual(on);
    // add_bos_token: false wins over the post-processor, as in transformers.
    const noBos = new HfTokenizer(JSON.parse(readFileSync(join(LITE, 'tokenizer.json'), 'utf8')), { ...cfg, add_bos_token: false });
    expect(noBos.encode(prompt)).toEqual(off);
  });

  it('decodes a tweet back to its text (SentencePiece-style ▁ and byte fallback)', () => {
    const tok = load(LITE);
    for (const r of rows.slice(0, 50)) expect(tok.decode(tok.encode(r.text, { addSpecialTokens: false }))).toBe(r.text);
    expect(tok.decode(tok.encode('héllo 🙂'), { skipSpecialTokens: true })).toBe('héllo 🙂');
  });

  it('checkVocab accepts the 32768-row tiny model and refuses a smaller embedding', () => {
    const tok = load(TINY);
    const cfg = loadConfig(join(TINY, 'config.json'));
    expect(checkVocab(tok, cfg)).toBe(cfg.vocabSize - 32002);
    expect(() => checkVocab(tok, loadConfig(join(HF, 'config.json')))).toThrow(/tokenizer has 32002 token ids but the model's embedding has only 1000 rows/);
  });
});

describe('tokenizer_config and chat templates', () => {
  const tj = () => JSON.parse(readFileSync(join(HF, 'tokenizer.json'), 'utf8'));
  const tc = () => JSON.parse(readFileSync(join(HF, 'tokenizer_config.json'), 'utf8'));

  it('puts bos_token / eos_token in the template context, accepts {content} tokens', () => {
    const tok = new HfTokenizer(tj(), { ...tc(), bos_token: { content: '<s>', special: true }, chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}' });
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<s>[user]hi<|im_end|>');
  });

  it('reads chat_template.jinja when tokenizer_config has none, and list-form templates', () => {
    const dir = mkdtempSync(join(tmp, 'jinja-'));
    copyFileSync(join(HF, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const cfg = tc();
    const template = cfg.chat_template;
    delete cfg.chat_template;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    writeFileSync(join(dir, 'chat_template.jinja'), template);
    const msgs = [{ role: 'user', content: 'x' }];
    expect(HfTokenizer.fromDir(dir).applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(HfTokenizer.fromDir(HF).applyChatTemplate(msgs, { addGenerationPrompt: true }));
    expect(selectChatTemplate([{ name: 'tool_use', template: 'a' }, { name: 'default', template: 'b' }], 'x')).toBe('b');
  });

  it('refuses bad special tokens, flags and templates with one clear line', () => {
    expect(() => new HfTokenizer(tj(), { ...tc(), bos_token: '<bos>' }, 'tc.json')).toThrow('tc.json: bos_token "<bos>" is not in the vocabulary');
    expect(() => new HfTokenizer(tj(), { ...tc(), add_bos_token: 'yes' }, 'tc.json')).toThrow('tc.json: "add_bos_token" must be a boolean');
    expect(() => new HfTokenizer(tj(), { ...tc(), chat_template: '{% for %}' }, 'tc.json')).toThrow(/^tc\.json: chat_template: cannot parse the chat template/);
    const t = new ChatTemplate("{{ raise_exception('only user turns') }}", { bos_token: null, eos_token: null, unk_token: null, pad_token: null, additional_special_tokens: [] });
    expect(() => t.render([{ role: 'user', content: 'x' }])).toThrow(/rendering failed .*only user turns/);
    expect(() => HfTokenizer.fromDir(HF).applyChatTemplate([{ role: 'user' } as never])).toThrow('applyChatTemplate: message 0 must be {role: string, content: string}');
  });
});
