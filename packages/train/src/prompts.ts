// Tweets as chat prompts: the model's own chat template with a system message, the tweet as the user turn and the
// generation prompt; the answer is the label word followed by the template's end token.
//
// Length: a model sees at most maxLength positions (--max-length, at most max_position_embeddings). A training row is
// prompt ‖ answer and an evaluated prompt is followed by up to GENERATED_TOKENS new ones, so every prompt must leave
// answerRoom tokens free. A longer prompt gets its tweet cut from the end — never the system turn, the template or the
// answer — to the longest prefix that fits (fitPrompt); callers count and report the cuts.
import type { HfTokenizer } from '@dawngrad/model';
import { LABEL_NAMES } from './labels.ts';
import type { TrainOptions } from './options.ts';

export const DEFAULT_SYSTEM = 'Classify the sentiment of the tweet as negative, neutral or positive.';

/** Tokens generated to read an answer (evaluation and predict): the label word and the end token fit in far fewer. */
export const GENERATED_TOKENS = 4;

/** Tweets that say nothing, for contextual calibration (Zhao et al. 2021): the label prior the model shows on them. */
export const CONTENT_FREE_TEXTS: readonly string[] = ['', 'N/A', '[MASK]'];

export interface Example {
  /** prompt ids: <s> + the rendered template up to and including the assistant header */
  prompt: Int32Array;
  /** answer ids: the label word + end token */
  answer: Int32Array;
  label: number;
  /** the tweet was cut (from its end) to fit the length limit */
  cut?: boolean;
}

export class PromptFormat {
  /** ids of each label's answer ("negative<|im_end|>", ...) */
  readonly answers: Int32Array[];
  /** the first id of each answer: what first-token scoring compares */
  readonly firstTokens: number[];
  /** the end-of-answer token (<|im_end|>) */
  readonly endToken: number;
  /** true when two label answers start with the same token, so first-token scoring cannot separate them */
  readonly firstTokenAmbiguous: boolean;
  /** tokens a prompt must leave free: the longest answer (training) or GENERATED_TOKENS (evaluation), whichever is more */
  readonly answerRoom: number;

  constructor(
    readonly tokenizer: HfTokenizer,
    readonly system = DEFAULT_SYSTEM,
  ) {
    if (!tokenizer.chatTemplate) throw new Error('the tokenizer has no chat_template: cannot build prompts');
    const end = tokenizer.eosToken;
    if (!end || tokenizer.eosTokenId === null) throw new Error('tokenizer_config.json has no eos_token: cannot end answers');
    this.endToken = tokenizer.eosTokenId;
    this.answers = LABEL_NAMES.map((n) => Int32Array.from(tokenizer.encode(`${n}${end}`, { addSpecialTokens: false })));
    this.firstTokens = this.answers.map((a) => a[0]!);
    // a small vocabulary may split "negative" and "neutral" into the same first piece: training still works, only
    // first-token scoring cannot tell them apart (evaluate() refuses it then; generation still works)
    this.firstTokenAmbiguous = new Set(this.firstTokens).size !== this.firstTokens.length;
    this.answerRoom = Math.max(GENERATED_TOKENS, ...this.answers.map((a) => a.length));
  }

  /** Why first-token scoring cannot work here: the label answers that share a first token (read when firstTokenAmbiguous). */
  get firstTokenClash(): string {
    return `the label answers share their first token (${LABEL_NAMES.map((n, i) => `${n} → ${this.firstTokens[i]}`).join(', ')})`;
  }

  /** Throw the one-line reason first-token scoring is impossible with this tokenizer (no-op when it is possible). */
  checkFirstTokenScoring(): void {
    if (this.firstTokenAmbiguous) throw new Error(`${this.firstTokenClash}: first-token scoring is ambiguous with this tokenizer; use --eval-mode generate`);
  }

  prompt(text: string): Int32Array {
    const rendered = this.tokenizer.applyChatTemplate(
      [
        { role: 'system', content: this.system },
        { role: 'user', content: text },
      ],
      { addGenerationPrompt: true },
    );
    return Int32Array.from(this.tokenizer.encode(rendered, { addSpecialTokens: true }));
  }

  /**
   * The prompt of `text` in at most `maxTokens` tokens: as prompt() when it fits, else with the tweet cut from its end to
   * the longest prefix (in code points) that fits. Throws when even an empty tweet does not fit (the system message and
   * the template alone are too long). A huge text is never tokenised whole (200 KB takes seconds): prefixes of doubling
   * length are tried until one does not fit, then the cut is found between the last two by bisection.
   */
  fitPrompt(text: string, maxTokens: number): { ids: Int32Array; cut: boolean } {
    const chars = Array.from(text);
    const fit = (n: number): Int32Array | null => {
      const ids = this.prompt(n === chars.length ? text : chars.slice(0, n).join(''));
      return ids.length <= maxTokens ? ids : null;
    };
    // a tweet (typically) has fewer code points than the prompt may have tokens: one tokenisation decides
    let n = Math.min(chars.length, Math.max(1, maxTokens));
    let ids = fit(n);
    if (ids && n === chars.length) return { ids, cut: false };
    let [lo, best] = [0, fit(0)]; // prefix lengths: lo fits, with ids best
    if (!best) {
      throw new Error(`the prompt without any tweet (system message and chat template) is ${this.prompt('').length} tokens, over the ${maxTokens} a prompt may have`);
    }
    // longer prefixes, doubling, until one does not fit (or the whole text does)
    while (ids) {
      [lo, best] = [n, ids];
      if (n === chars.length) return { ids, cut: false };
      n = Math.min(chars.length, 2 * n);
      ids = fit(n);
    }
    // then bisect between the last prefix that fits and the first that does not (a prompt's length grows with its
    // tweet's, up to BPE merges at the cut)
    let hi = n;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      const m = fit(mid);
      if (m) [lo, best] = [mid, m];
      else hi = mid;
    }
    return { ids: best, cut: true };
  }

  /** Training examples, each prompt cut to fit `maxLength` with its answer (fitPrompt with maxLength − answerRoom). */
  examples(texts: readonly string[], labels: readonly number[], maxLength = Infinity): Example[] {
    return texts.map((t, i) => {
      const { ids, cut } = this.fitPrompt(t, maxLength - this.answerRoom);
      return { prompt: ids, answer: this.answers[labels[i]!]!, label: labels[i]!, cut };
    });
  }

  /** The prompts to evaluate `texts` on within `maxLength` positions (fitPrompt leaving answerRoom free). */
  evalPrompts(texts: readonly string[], maxLength = Infinity): { ids: Int32Array; cut: boolean }[] {
    return texts.map((t) => this.fitPrompt(t, maxLength - this.answerRoom));
  }

  /** The label a generated answer names: the first word, lower-cased, stripped of . , ! — else -1 (invalid). */
  parseAnswer(ids: readonly number[]): number {
    const text = this.tokenizer.decode(ids.filter((t) => t !== 0 && t !== this.endToken), { skipSpecialTokens: false });
    const word = (text.trim().split(/\s+/)[0] ?? '').toLowerCase().replace(/^[.,!]+|[.,!]+$/g, '');
    return (LABEL_NAMES as readonly string[]).indexOf(word);
  }
}

/** The longest sequence the run may make: --max-length, or the model's max_position_embeddings. */
export function checkMaxLength(o: Pick<TrainOptions, 'maxLength' | 'system'>, fmt: Pick<PromptFormat, 'prompt' | 'answerRoom'>, maxPositions: number): number {
  const maxLength = o.maxLength ?? maxPositions;
  if (maxLength > maxPositions) throw new Error(`--max-length ${maxLength} is over the model's max_position_embeddings (${maxPositions})`);
  const bare = fmt.prompt('').length; // the system message and the template, without any tweet
  if (bare + fmt.answerRoom > maxLength) {
    throw new Error(
      `${o.system !== undefined ? '--system' : 'the prompt'}: with an empty tweet the prompt is already ${bare} tokens; with ` +
        `${fmt.answerRoom} for the answer that is over the ${maxLength} positions allowed (${o.maxLength ? '--max-length' : 'max_position_embeddings'}): ` +
        (o.system !== undefined ? 'shorten --system' : 'raise --max-length'),
    );
  }
  return maxLength;
}
