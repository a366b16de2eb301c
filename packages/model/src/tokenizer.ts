// Tokenizer: tokenizer.json through @huggingface/tokenizers, plus what transformers adds on top from
// tokenizer_config.json: the special tokens (bos/eos/pad/unk), whether encode adds <s> / </s>, and the chat template.
//
// Adding special tokens, as transformers does it:
// - Llama-style configs (tokenizer_class LlamaTokenizer[Fast], or an explicit add_bos_token / add_eos_token) decide
//   themselves: transformers rebuilds the post-processor from add_bos_token (default true for Llama) and add_eos_token
//   (default false). We do the same: encode without the post-processor, then put bos/eos around the ids. That way <s>
//   is added exactly once whatever tokenizer.json's own post_processor says.
// - Otherwise tokenizer.json's post_processor decides (none -> nothing is added), which the library applies.
import { Tokenizer } from '@huggingface/tokenizers';
import { nodeApi } from '@dawngrad/tensor';
import { readJsonObject, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, CHAT_TEMPLATE_FILE } from './files.ts';
import { readSourceJson, type FileSource } from './sources.ts';
import { ChatTemplate, selectChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat.ts';
import type { ModelConfig } from './config.ts';

export interface EncodeOptions {
  /** Add the special tokens the tokenizer adds by default (HF's add_special_tokens, default true as in HF). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

type Json = Record<string, unknown>;

const LLAMA_CLASSES = ['LlamaTokenizer', 'LlamaTokenizerFast', 'CodeLlamaTokenizer', 'CodeLlamaTokenizerFast'];

/** A special token in tokenizer_config.json: a string, an AddedToken-like {content}, or null. */
function tokenString(v: unknown, key: string, source: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  throw new Error(`${source}: "${key}" must be a string or {content}, got ${JSON.stringify(v)}`);
}

export class HfTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** null: tokenizer.json's post_processor decides; otherwise whether encode() adds bos / eos itself. */
  readonly addBosToken: boolean | null;
  readonly addEosToken: boolean | null;
  /** Number of ids the tokenizer can produce: highest id (vocabulary and added tokens) + 1. */
  readonly vocabSize: number;
  readonly chatTemplate: ChatTemplate | null;
  private readonly tok: Tokenizer;
  private readonly cleanUpSpaces: boolean;

  /**
   * @param tokenizerJson parsed tokenizer.json
   * @param tokenizerConfig parsed tokenizer_config.json ({} if the model has none)
   * @param source where they came from, for error messages
   * @param chatTemplateFile text of chat_template.jinja, used when tokenizer_config has no chat_template
   */
  constructor(tokenizerJson: Json, tokenizerConfig: Json, source = 'tokenizer', chatTemplateFile: string | null = null) {
    checkTokenizerModel(tokenizerJson, source);
    try {
      this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new Error(`${source}: cannot build the tokenizer (${(e as Error).message.split('\n')[0]})`);
    }
    const cfg = tokenizerConfig;
    const idOf = (key: string, token: string | null): number | null => {
      if (token === null) return null;
      const id = this.tok.token_to_id(token);
      if (id === undefined) throw new Error(`${source}: ${key} ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    this.bosToken = tokenString(cfg.bos_token, 'bos_token', source);
    this.eosToken = tokenString(cfg.eos_token, 'eos_token', source);
    this.padToken = tokenString(cfg.pad_token, 'pad_token', source);
    this.unkToken = tokenString(cfg.unk_token, 'unk_token', source);
    this.bosTokenId = idOf('bos_token', this.bosToken);
    this.eosTokenId = idOf('eos_token', this.eosToken);
    this.padTokenId = idOf('pad_token', this.padToken);
    this.unkTokenId = idOf('unk_token', this.unkToken);

    for (const key of ['add_bos_token', 'add_eos_token']) {
      if (cfg[key] !== undefined && cfg[key] !== null && typeof cfg[key] !== 'boolean') throw new Error(`${source}: "${key}" must be a boolean`);
    }
    const llama = LLAMA_CLASSES.includes(String(cfg.tokenizer_class));
    const explicit = typeof cfg.add_bos_token === 'boolean' || typeof cfg.add_eos_token === 'boolean';
    if (llama || explicit) {
      this.addBosToken = (cfg.add_bos_token as boolean | undefined) ?? llama;
      this.addEosToken = (cfg.add_eos_token as boolean | undefined) ?? false;
      if (this.addBosToken && this.bosTokenId === null) throw new Error(`${source}: add_bos_token is set but there is no bos_token`);
      if (this.addEosToken && this.eosTokenId === null) throw new Error(`${source}: add_eos_token is set but there is no eos_token`);
    } else {
      this.addBosToken = null;
      this.addEosToken = null;
    }
    // transformers' default is no clean-up (it would turn " ." into "." and change the decoded text).
    this.cleanUpSpaces = cfg.clean_up_tokenization_spaces === true;

    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const additional = Array.isArray(cfg.additional_special_tokens)
      ? cfg.additional_special_tokens.map((t, i) => tokenString(t, `additional_special_tokens[${i}]`, source) ?? '')
      : [];
    const template = selectChatTemplate(cfg.chat_template, source) ?? chatTemplateFile;
    this.chatTemplate = template === null ? null : new ChatTemplate(template, {
      bos_token: this.bosToken, eos_token: this.eosToken, unk_token: this.unkToken, pad_token: this.padToken,
      additional_special_tokens: additional,
    }, `${source}: chat_template`);
  }

  /** Load tokenizer.json, tokenizer_config.json (optional) and chat_template.jinja (optional) from a model directory (Node). */
  static fromDir(dir: string): HfTokenizer {
    const { existsSync, readFileSync } = nodeApi.fs;
    const { join } = nodeApi.path;
    const tj = join(dir, TOKENIZER_FILE);
    if (!existsSync(tj)) throw new Error(`model directory ${dir}: no ${TOKENIZER_FILE}`);
    const tc = join(dir, TOKENIZER_CONFIG_FILE);
    const ct = join(dir, CHAT_TEMPLATE_FILE);
    const json = readJsonObject(tj, 'tokenizer');
    checkTokenizerModel(json, tj); // here, so the message names the file rather than the directory
    return new HfTokenizer(json, existsSync(tc) ? readJsonObject(tc, 'tokenizer config') : {}, dir, existsSync(ct) ? readFileSync(ct, 'utf8') : null);
  }

  /** The same files from a FileSource: a URL or picked files in a browser, or dirSource(dir) in Node. */
  static async load(src: FileSource): Promise<HfTokenizer> {
    if (!(await src.has(TOKENIZER_FILE))) throw new Error(`model ${src.name}: no ${TOKENIZER_FILE}`);
    const [tj, tc, ct] = await Promise.all([
      readSourceJson(src, TOKENIZER_FILE, 'tokenizer'),
      src.has(TOKENIZER_CONFIG_FILE).then((has) => (has ? readSourceJson(src, TOKENIZER_CONFIG_FILE, 'tokenizer config') : {})),
      src.has(CHAT_TEMPLATE_FILE).then((has) => (has ? src.text(CHAT_TEMPLATE_FILE, 'chat template') : null)),
    ]);
    return new HfTokenizer(tj, tc, src.name, ct);
  }

  /** Token ids of `text`. With addSpecialTokens (the HF default) the tokenizer's bos/eos are added as HF adds them. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`encode: text must be a string, got ${typeof text}`);
    const add = opts.addSpecialTokens ?? true;
    if (this.addBosToken === null) return this.tok.encode(text, { add_special_tokens: add }).ids;
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (add && this.addBosToken) ids.unshift(this.bosTokenId as number);
    if (add && this.addEosToken) ids.push(this.eosTokenId as number);
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`decode: token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    }
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Render a conversation with the chat template (the prompt string; encode it to get ids). */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (!this.chatTemplate) throw new Error('applyChatTemplate: this tokenizer has no chat_template');
    return this.chatTemplate.render(messages, opts);
  }
}

/** The tokenizer models @huggingface/tokenizers builds as transformers does. */
const TOKENIZER_MODELS = ['BPE', 'WordPiece', 'Unigram'];

/**
 * Refuse a tokenizer.json whose model would turn every text into <unk>: an empty vocabulary, or a `model.type` the
 * library does not know (it would fall back to a guess). An untyped model is left to the library, as transformers does.
 */
function checkTokenizerModel(json: Json, source: string): void {
  const model = json.model;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) throw new Error(`${source}: "model" must be an object`);
  const m = model as Json;
  if (m.type !== undefined && !TOKENIZER_MODELS.includes(m.type as string)) {
    throw new Error(`${source}: model.type ${JSON.stringify(m.type)} is not supported (supported: ${TOKENIZER_MODELS.join(', ')})`);
  }
  const vocab = m.vocab;
  const size = Array.isArray(vocab) ? vocab.length : typeof vocab === 'object' && vocab !== null ? Object.keys(vocab).length : 0;
  if (size === 0) throw new Error(`${source}: model.vocab is empty (every text would become <unk>); the tokenizer file is damaged`);
}

/** Refuse a tokenizer that can produce ids the model's embedding has no row for. Returns the unused row count. */
export function checkVocab(tokenizer: HfTokenizer, cfg: ModelConfig, source?: string): number {
  if (tokenizer.vocabSize > cfg.vocabSize) {
    throw new Error(
      `${source ? `${source}: ` : ''}tokenizer has ${tokenizer.vocabSize} token ids but the model's embedding has only ${cfg.vocabSize} rows (vocab_size)`,
    );
  }
  return cfg.vocabSize - tokenizer.vocabSize;
}
