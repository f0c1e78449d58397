/**
 * Chat formats rendered with @huggingface/jinja: the model's own
 * `chat_template` (tokenizer_config.json) when it has one; otherwise a
 * built-in template for the family (MODELS.md gives the exact strings);
 * otherwise plain completion (the messages' text joined, no markup).
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { TemplateError, TokenizerError } from '../errors.ts';
import type { TokenizerFamily } from './tokenizer.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface ChatFormatOptions {
  /** End with the cue for the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
  /**
   * Let special-token strings written in message content (`<|im_start|>`,
   * `</s>`...) become special tokens. Default false: content is text, and only
   * the template's own markup yields special tokens.
   */
  allowSpecialTokens?: boolean;
}

/**
 * What one render of a chat template may cost. A template past a limit fails
 * with a TemplateError naming it; the process and other requests carry on.
 */
export interface TemplateLimits {
  /** Interpreter steps (node evaluations, loop iterations, range() items). */
  steps: number;
  /** Characters of any string the template builds, output included. */
  outputChars: number;
  /** Wall time of one render, in milliseconds. */
  millis: number;
  /** Nesting of evaluations (macro recursion, deep expressions). */
  depth: number;
  /** Items of one range() or list. */
  items: number;
}

export const TEMPLATE_LIMITS: Readonly<TemplateLimits> = Object.freeze({
  steps: 1_000_000,
  outputChars: 1 << 24,
  millis: 1000,
  depth: 400,
  items: 100_000,
});

/** Where each message's content sits in a rendered prompt ([start, end) in UTF-16 units). */
export type ContentSpan = [number, number];

export interface RenderedChat {
  text: string;
  /**
   * The messages' contents in `text`, when the template inserted every one
   * verbatim; undefined when it transformed them (then where content ends and
   * markup starts is unknown).
   */
  spans?: ContentSpan[];
}

/**
 * ChatGLM2 (chatglm2-6b's build_prompt): past turns as
 * "[Round i]\n\n问：q\n\n答：a\n\n" (i from 1), the open turn as
 * "[Round n]\n\n问：q\n\n答：". ChatGLM2 has no system role: a system message is
 * written before the first round, followed by a blank line.
 */
export const CHATGLM2_TEMPLATE =
  '{% set ns = namespace(round=0) %}' +
  '{% for m in messages %}' +
  "{% if m['role'] == 'system' %}{{ m['content'] + '\n\n' }}" +
  "{% elif m['role'] == 'user' %}{% set ns.round = ns.round + 1 %}" +
  "{{ '[Round ' + ns.round|string + ']\n\n问：' + m['content'] + '\n\n' }}" +
  "{% if loop.last and add_generation_prompt %}{{ '答：' }}{% endif %}" +
  "{% elif m['role'] == 'assistant' %}{{ '答：' + m['content'] + '\n\n' }}" +
  '{% endif %}{% endfor %}';

/** InternLM2's chat_template as its tokenizer_config.json ships it (MODELS.md). */
export const INTERNLM2_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + " +
  "m['content'] + '<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}" +
  "{{'<|im_start|>assistant\n'}}{% endif %}";

export type ChatFormatKind = 'template' | 'chatglm2' | 'internlm2' | 'plain';

export class ChatFormat {
  private readonly template?: Template;

  constructor(
    readonly kind: ChatFormatKind,
    source: string | undefined,
    private readonly vars: Record<string, string>,
  ) {
    if (source !== undefined) {
      try {
        this.template = new Template(source);
      } catch (e) {
        throw new TemplateError(`chat_template could not be parsed: ${(e as Error)?.message ?? String(e)}`, { kind });
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

  render(messages: ChatMessage[], opts: ChatFormatOptions = {}, limits: Partial<TemplateLimits> = {}): string {
    checkMessages(messages);
    if (!this.template) return messages.map((m) => m.content).join('\n');
    return this.run(messages, opts, limits);
  }

  /**
   * Renders and finds where each message's content landed: the template runs
   * a second time with a placeholder for each content; when substituting the
   * contents back gives the same text, the placeholders' places are the spans.
   */
  renderWithSpans(messages: ChatMessage[], opts: ChatFormatOptions = {}, limits: Partial<TemplateLimits> = {}): RenderedChat {
    checkMessages(messages);
    if (!this.template) {
      const spans: ContentSpan[] = [];
      let at = 0;
      for (const m of messages) {
        spans.push([at, at + m.content.length]);
        at += m.content.length + 1;
      }
      return { text: messages.map((m) => m.content).join('\n'), spans };
    }
    const text = this.run(messages, opts, limits);
    const marked = this.run(messages, opts, limits, (_, i) => `${MARK_OPEN}${i}${MARK_CLOSE}`);
    const spans: ContentSpan[] = [];
    let out = '';
    let last = 0;
    for (const m of marked.matchAll(MARK_RE)) {
      const content = messages[Number(m[1])]?.content;
      if (content === undefined) return { text };
      out += marked.slice(last, m.index);
      spans.push([out.length, out.length + content.length]);
      out += content;
      last = m.index + m[0].length;
      if (out.length > text.length) return { text };
    }
    out += marked.slice(last);
    return out === text ? { text, spans } : { text };
  }

  /** Runs the template; `content` replaces each message's content (renderWithSpans' placeholders). */
  private run(messages: ChatMessage[], opts: ChatFormatOptions, limits: Partial<TemplateLimits>, content = (m: ChatMessage, _i: number) => m.content): string {
    const contents = messages.map(content);
    const lim: TemplateLimits = { ...TEMPLATE_LIMITS, ...limits };
    // The output may grow with the conversation: the length limit scales with its text.
    let inputChars = 0;
    for (const c of contents) inputChars += c.length;
    lim.outputChars = Math.max(lim.outputChars, 8 * inputChars);
    const env = new Environment();
    const globals: Record<string, unknown> = {
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
      raise_exception: (msg: unknown) => {
        throw new TemplateError(`chat template raised an exception: ${String(msg).slice(0, 500)}`, { kind: this.kind });
      },
      strftime_now: strftimeNow,
      ...this.vars,
      messages: messages.map((m, i) => ({ role: m.role, content: contents[i] })),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
    };
    for (const [k, v] of Object.entries(globals)) env.set(k, v);
    const interp = new LimitedInterpreter(env, lim, this.kind);
    env.set('range', (...a: unknown[]) => interp.range(a));
    try {
      const v = interp.run(this.template!.parsed);
      return (v as { value: string }).value;
    } catch (e) {
      if (e instanceof TemplateError) throw e;
      if (e instanceof RangeError) {
        throw new TemplateError(`chat template failed to render: ${e.message} (too large or too deep)`, { kind: this.kind, limit: 'memory' });
      }
      throw new TemplateError(`chat template failed to render: ${(e as Error)?.message ?? String(e)}`, { kind: this.kind });
    }
  }
}

function checkMessages(messages: ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError('a chat needs at least one message');
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new TokenizerError(`message ${i} needs a string role and a string content`, { index: i });
    }
  }
}

/** Placeholders for contents (private-use characters): never markup, never special tokens. */
const MARK_OPEN = '\u{F8FF0}';
const MARK_CLOSE = '\u{F8FF1}';
const MARK_RE = /\u{F8FF0}(\d+)\u{F8FF1}/gu;

type Node = Parameters<Interpreter['evaluate']>[0];

/**
 * @huggingface/jinja's interpreter with a meter: every evaluation and every
 * block (one per loop iteration, even of an empty body) costs a step; the
 * clock is read every 256 steps; strings and lists it builds are measured;
 * range() is sized before anything is allocated.
 */
class LimitedInterpreter extends Interpreter {
  private steps = 0;
  private depth = 0;
  private readonly deadline: number;

  constructor(
    env: Environment,
    private readonly lim: TemplateLimits,
    private readonly kind: string,
  ) {
    super(env);
    this.deadline = performance.now() + lim.millis;
    // evaluateBlock runs once per loop iteration (also for an empty body); it is private in the typings.
    type Block = (statements: Node[], environment: Environment) => unknown;
    const self = this as unknown as { evaluateBlock: Block };
    const base = (Interpreter.prototype as unknown as { evaluateBlock: Block }).evaluateBlock;
    self.evaluateBlock = (statements, environment) => {
      this.charge(1);
      return this.measure(base.call(this, statements, environment));
    };
  }

  private fail(limit: keyof TemplateLimits, what: string): never {
    throw new TemplateError(`chat template stopped: ${what} (limit '${limit}' = ${this.lim[limit]})`, { kind: this.kind, limit, value: this.lim[limit] });
  }

  private charge(n: number): void {
    const before = this.steps;
    this.steps += n;
    if (this.steps > this.lim.steps) this.fail('steps', `more than ${this.lim.steps} interpreter steps`);
    if (before >>> 8 !== this.steps >>> 8 && performance.now() > this.deadline) this.fail('millis', `rendering took more than ${this.lim.millis} ms`);
  }

  private measure<T>(v: T): T {
    const r = v as { type?: string; value?: unknown };
    if (typeof r?.value === 'string' && r.value.length > this.lim.outputChars) {
      this.fail('outputChars', `a string of ${r.value.length} characters`);
    }
    if (Array.isArray(r?.value) && r.value.length > this.lim.items) this.fail('items', `a list of ${r.value.length} items`);
    return v;
  }

  override evaluate(statement: Node, environment: Environment): ReturnType<Interpreter['evaluate']> {
    this.charge(1);
    if (++this.depth > this.lim.depth) this.fail('depth', `evaluation nested more than ${this.lim.depth} deep`);
    try {
      return this.measure(super.evaluate(statement, environment));
    } finally {
      this.depth--;
    }
  }

  /** Python's range(), sized first: a huge range is a TemplateError, not an allocation. */
  range(args: unknown[]): number[] {
    for (const a of args) {
      if (typeof a !== 'number' || !Number.isSafeInteger(a)) {
        throw new TemplateError(`range() takes integers, got ${typeof a === 'number' ? String(a) : typeof a}`, { kind: this.kind });
      }
    }
    const nums = args as number[];
    const [start, stop, step] = nums.length === 1 ? [0, nums[0], 1] : [nums[0], nums[1], nums[2] ?? 1];
    if (nums.length === 0 || nums.length > 3) throw new TemplateError(`range() takes 1 to 3 arguments, got ${nums.length}`, { kind: this.kind });
    if (step === 0) throw new TemplateError('range() step must not be zero', { kind: this.kind });
    const count = step > 0 ? Math.max(0, Math.ceil((stop - start) / step)) : Math.max(0, Math.ceil((start - stop) / -step));
    if (count > this.lim.items) this.fail('items', `range() of ${count} items`);
    this.charge(count);
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(start + i * step);
    return out;
  }
}

function strftimeNow(format: unknown): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const long = d.toLocaleString('en-US', { month: 'long' });
  return String(format).replace(
    /%[YmdbBHM%]/g,
    (t) =>
      ({
        '%Y': String(d.getFullYear()),
        '%m': pad(d.getMonth() + 1),
        '%d': pad(d.getDate()),
        '%b': long.slice(0, 3),
        '%B': long,
        '%H': pad(d.getHours()),
        '%M': pad(d.getMinutes()),
        '%%': '%',
      })[t] ?? t,
  );
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
