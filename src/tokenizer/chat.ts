/**
 * Chat formats rendered with @huggingface/jinja: the model's own
 * `chat_template` (tokenizer_config.json) when it has one; otherwise a
 * built-in template for the family (MODELS.md gives the exact strings);
 * otherwise plain completion (the messages' text joined, no markup).
 */
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.ts';
import type { TokenizerFamily } from './tokenizer.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface ChatFormatOptions {
  /** End with the cue for the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
}

/**
 * ChatGLM2 (chatglm2-6b's build_prompt): past turns as
 * "[Round i]\n\n问：q\n\n答：a\n\n" (i from 1), the open turn as
 * "[Round n]\n\n问：q\n\n答：". ChatGLM2 has no system role: a system message is
 * written before the first round, followed by a blank line.
 */
export const CHATGLM2_TEMPLATE =
  "{% set ns = namespace(round=0) %}" +
  "{% for m in messages %}" +
  "{% if m['role'] == 'system' %}{{ m['content'] + '\n\n' }}" +
  "{% elif m['role'] == 'user' %}{% set ns.round = ns.round + 1 %}" +
  "{{ '[Round ' + ns.round|string + ']\n\n问：' + m['content'] + '\n\n' }}" +
  "{% if loop.last and add_generation_prompt %}{{ '答：' }}{% endif %}" +
  "{% elif m['role'] == 'assistant' %}{{ '答：' + m['content'] + '\n\n' }}" +
  "{% endif %}{% endfor %}";

/** InternLM2's chat_template as its tokenizer_config.json ships it (MODELS.md). */
export const INTERNLM2_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + " +
  "m['content'] + '<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}" +
  "{{'<|im_start|>assistant\n'}}{% endif %}";

export type ChatFormatKind = 'template' | 'chatglm2' | 'internlm2' | 'plain';

export class ChatFormat {
  private readonly template?: Template;

  constructor(readonly kind: ChatFormatKind, source: string | undefined, private readonly vars: Record<string, string>) {
    if (source !== undefined) {
      try {
        this.template = new Template(source);
      } catch (e) {
        throw new TokenizerError(`chat_template could not be parsed: ${(e as Error).message}`, { kind });
      }
    }
  }

  /** Picks the format: the config's chat_template, else the family's, else plain. */
  static select(config: Record<string, unknown>, family: TokenizerFamily, hasImStart: boolean, vars: Record<string, string>): ChatFormat {
    const tpl = pickTemplate(config.chat_template);
    if (tpl !== undefined) return new ChatFormat('template', tpl, vars);
    if (family === 'chatglm2') return new ChatFormat('chatglm2', CHATGLM2_TEMPLATE, vars);
    if (family === 'internlm2' && hasImStart) return new ChatFormat('internlm2', INTERNLM2_TEMPLATE, vars);
    return new ChatFormat('plain', undefined, vars);
  }

  get isChat(): boolean {
    return this.kind !== 'plain';
  }

  render(messages: ChatMessage[], opts: ChatFormatOptions = {}): string {
    if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError('a chat needs at least one message');
    for (const [i, m] of messages.entries()) {
      if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
        throw new TokenizerError(`message ${i} needs a string role and a string content`, { index: i });
      }
    }
    if (!this.template) return messages.map((m) => m.content).join('\n');
    try {
      return this.template.render({
        ...this.vars,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: opts.addGenerationPrompt ?? true,
      });
    } catch (e) {
      throw new TokenizerError(`chat template failed to render: ${(e as Error).message}`, { kind: this.kind });
    }
  }
}

/** chat_template may be a string or a list of {name, template} (use "default"). */
function pickTemplate(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v as { name?: string; template?: string }[];
    return (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}
