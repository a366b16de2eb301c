// Tweets as chat prompts: the model's own chat template with a system message, the tweet as the user turn and the
// generation prompt; the answer is the label word followed by the template's end token. Tokenised once, cached.
import type { HfTokenizer } from '@dawngrad/model';
import { LABEL_NAMES } from './labels.ts';

export const DEFAULT_SYSTEM = 'Classify the sentiment of the tweet as negative, neutral or positive.';

export interface Example {
  /** prompt ids: <s> + the rendered template up to and including the assistant header */
  prompt: Int32Array;
  /** answer ids: the label word + end token */
  answer: Int32Array;
  label: number;
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
  }

  /** Throw the one-line reason first-token scoring is impossible with this tokenizer (no-op when it is possible). */
  checkFirstTokenScoring(): void {
    if (this.firstTokenAmbiguous) {
      throw new Error(
        `the label answers share their first token (${LABEL_NAMES.map((n, i) => `${n} → ${this.firstTokens[i]}`).join(', ')}): ` +
          'first-token scoring is ambiguous with this tokenizer; use --eval-mode generate',
      );
    }
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

  examples(texts: readonly string[], labels: readonly number[]): Example[] {
    return texts.map((t, i) => ({ prompt: this.prompt(t), answer: this.answers[labels[i]!]!, label: labels[i]! }));
  }

  /** The label a generated answer names: the first word, lower-cased, stripped of . , ! — else -1 (invalid). */
  parseAnswer(ids: readonly number[]): number {
    const text = this.tokenizer.decode(ids.filter((t) => t !== 0 && t !== this.endToken), { skipSpecialTokens: false });
    const word = (text.trim().split(/\s+/)[0] ?? '').toLowerCase().replace(/^[.,!]+|[.,!]+$/g, '');
    return (LABEL_NAMES as readonly string[]).indexOf(word);
  }
}
