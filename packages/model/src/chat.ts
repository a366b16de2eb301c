// Chat templates: the Jinja `chat_template` of tokenizer_config.json (or chat_template.jinja), rendered with
// @huggingface/jinja the way transformers' apply_chat_template does: trim_blocks + lstrip_blocks (the library's
// defaults), `messages`, `add_generation_prompt`, and the special tokens (bos_token, eos_token, unk_token, pad_token,
// additional_special_tokens) in the context.
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string; // 'system' | 'user' | 'assistant' in practice
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the opening of an assistant turn (ChatML: `<|im_start|>assistant\n`) so the model writes the answer. */
  addGenerationPrompt?: boolean;
  /** More variables for the template (transformers passes extra kwargs through the same way). */
  extra?: Record<string, unknown>;
}

/** The special-token strings a template may use, as transformers' special_tokens_map provides them. */
export interface TemplateTokens {
  bos_token: string | null;
  eos_token: string | null;
  unk_token: string | null;
  pad_token: string | null;
  additional_special_tokens: string[];
}

/**
 * Pick the template from a tokenizer_config `chat_template` value: a string, or a list of {name, template} from which
 * the one named "default" is used (as transformers does). Returns null when there is none.
 */
export function selectChatTemplate(value: unknown, source: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default');
    const tpl = (named as { template?: unknown } | undefined)?.template;
    if (typeof tpl === 'string') return tpl;
    throw new Error(`${source}: chat_template is a list without a "default" template`);
  }
  throw new Error(`${source}: chat_template must be a string or a list of {name, template}`);
}

export class ChatTemplate {
  private readonly template: Template;

  /** Parse the template now, so a broken one fails at load time with the file named. */
  constructor(
    readonly source: string,
    private readonly tokens: TemplateTokens,
    /** Where it came from, for error messages. */
    readonly where = 'chat_template',
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`${where}: cannot parse the chat template (${(e as Error).message.split('\n')[0]})`);
    }
  }

  /** Render messages to the prompt string (not tokenized; encode it with the tokenizer). */
  render(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (!Array.isArray(messages)) throw new Error('applyChatTemplate: messages must be an array');
    messages.forEach((m, i) => {
      if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
        throw new Error(`applyChatTemplate: message ${i} must be {role: string, content: string}`);
      }
    });
    try {
      return this.template.render({
        ...this.tokens,
        ...opts.extra,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new Error(`${this.where}: rendering failed (${(e as Error).message.split('\n')[0]})`);
    }
  }
}
