/**
 * <sieve-chat>: a chat box over the sieve runtime, as a custom element with
 * shadow DOM. Options are attributes (options.ts), the model is the `model`
 * attribute (a URL of a Hugging Face-style folder) or `load(files | handle)`.
 * Events (bubbling, composed): `progress` (per file bytes, and the load's
 * stages with their counts when the engine reports them), `ready`, `token`
 * (each streamed chunk), `done` (reply text, finish reason, stats, TTFT seen
 * by the page), `error` (plain words + the runtime's message).
 * Model output is untrusted: it only ever reaches the DOM as text nodes.
 * A model without a chat template (or mode="completion") is presented as text
 * continuation: the prompt and the model's continuation in one bubble, with
 * suggested openings on an empty conversation.
 */
import { ATTRIBUTES, readOptions, type ChatOptions } from './options.ts';
import { plainError, type PlainError } from './plain-errors.ts';
import type { ChatEngine, ChatMessage, FileProgress, LoadFn, LoadStages, ModelInput, ReplyStats } from './link.ts';
import { renderFile, renderStages, stagesSummary } from './progress.ts';
import { STYLES } from './styles.ts';

/** Openings offered for a text-continuation model (one trained on stories, like the bundled stories260k, continues them best). */
export const CONTINUATION_SUGGESTIONS = [
  'Once upon a time, there was a little girl named Lily.',
  'One day, a big dog found a red ball in the park.',
  'Tom and his mom went to the store to buy',
];

export interface ReplyResult {
  text: string;
  /** 'stop' | 'length' | 'abort' | 'error' (or what the engine reported). */
  finishReason: string;
  stats?: ReplyStats;
  /** Submit to first token painted, measured by the page (ms). */
  pageTtftMs?: number;
  error?: PlainError;
}

const TEMPLATE = `
<div part="progress" class="progress" hidden></div>
<div part="error" class="error" role="alert" hidden>
  <button type="button" class="dismiss" aria-label="Dismiss">×</button>
  <div class="title"></div><div class="detail"></div>
</div>
<div part="messages" class="messages" aria-live="polite"><div class="empty" part="intro">No model loaded yet.</div></div>
<div part="status" class="status"></div>
<form part="form">
  <textarea part="input" rows="2" placeholder="Type a message (Enter sends, Shift+Enter: new line)"></textarea>
  <button part="send" class="primary" type="submit">Send</button>
  <button part="stop" type="button" disabled>Stop</button>
  <button part="clear" type="button" title="Forget the conversation">Clear</button>
</form>`;

const CHAT_PLACEHOLDER = 'Type a message (Enter sends, Shift+Enter: new line)';
const CONTINUATION_PLACEHOLDER = 'Start a text for the model to continue (Enter sends, Shift+Enter: new line)';

/** Resolves just after the browser has painted the current DOM state. */
function afterPaint(): Promise<number> {
  if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return Promise.resolve(performance.now());
  return new Promise((r) => requestAnimationFrame(() => setTimeout(() => r(performance.now()), 0)));
}

export class SieveChatElement extends HTMLElement {
  /** The runtime link (set by the entry module, src/component/index.ts). */
  static loadModel: LoadFn | undefined;
  static get observedAttributes(): string[] {
    return ['model', ...Object.keys(ATTRIBUTES)];
  }

  private readonly root: ShadowRoot;
  private readonly $: {
    progress: HTMLElement;
    error: HTMLElement;
    messages: HTMLElement;
    status: HTMLElement;
    form: HTMLFormElement;
    input: HTMLTextAreaElement;
    send: HTMLButtonElement;
    stop: HTMLButtonElement;
  };
  private engine_: ChatEngine | undefined;
  private loadCtl: AbortController | undefined;
  private replyCtl: AbortController | undefined;
  private loadSeq = 0;
  private history: ChatMessage[] = [];
  private files = new Map<string, FileProgress>();
  private stages: LoadStages | undefined;
  private busy_ = false;
  private loading_ = false;
  private lastReply_: ReplyResult | undefined;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
    this.root.innerHTML = `<style>${STYLES}</style>${TEMPLATE}`;
    const q = <T extends Element>(s: string) => this.root.querySelector(s) as T;
    this.$ = {
      progress: q('.progress'),
      error: q('.error'),
      messages: q('.messages'),
      status: q('.status'),
      form: q('form'),
      input: q('textarea'),
      send: q('[part=send]'),
      stop: q('[part=stop]'),
    };
    this.$.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = this.$.input.value.trim();
      if (!text || this.busy_ || !this.engine_ || this.loading_) return;
      this.$.input.value = '';
      void this.send(text);
    });
    this.$.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.$.form.requestSubmit();
      }
    });
    this.$.stop.addEventListener('click', () => this.stop());
    this.root.querySelector('[part=clear]')!.addEventListener('click', () => void this.clear().catch((e) => this.showError(e)));
    this.$.error.querySelector('.dismiss')!.addEventListener('click', () => (this.$.error.hidden = true));
    this.sync();
  }

  /** The loaded engine (undefined until `ready`). */
  get engine(): ChatEngine | undefined {
    return this.engine_;
  }
  get busy(): boolean {
    return this.busy_;
  }
  get loading(): boolean {
    return this.loading_;
  }
  get lastReply(): ReplyResult | undefined {
    return this.lastReply_;
  }
  /** Current options read from the attributes (throws on an invalid one). */
  get options(): ChatOptions {
    return readOptions(this);
  }
  /**
   * Whether prompts are continued as raw text (mode="completion", or "auto"
   * with a model that has no chat template) rather than answered as chat.
   */
  get continuation(): boolean {
    let mode: ChatOptions['mode'] = 'auto';
    try {
      mode = readOptions(this).mode;
    } catch {
      /* shown as an error already */
    }
    return mode === 'completion' || (mode === 'auto' && !!this.engine_ && !this.engine_.hasChatTemplate);
  }

  connectedCallback(): void {
    if (this.getAttribute('model') && !this.engine_ && !this.loading_) queueMicrotask(() => void this.load());
  }

  disconnectedCallback(): void {
    // Moving the element in the DOM disconnects and reconnects it: release the GPU only if it stays out.
    setTimeout(() => {
      if (!this.isConnected) void this.unload();
    }, 0);
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (name === 'model') {
      if (value && value !== old && this.isConnected) void this.load();
      return;
    }
    try {
      readOptions(this);
    } catch (e) {
      this.showError(e);
      return;
    }
    if (name === 'mode' || name === 'suggestions') this.present();
  }

  /**
   * Loads a model: a folder URL (default: the `model` attribute), files of a
   * folder, or a directory handle. The source is checked first (its
   * config.json must be there and be JSON): a mistyped URL or a folder that is
   * not a model leaves the loaded model in place. Never rejects: failures go
   * to the `error` event; resolves to whether it loaded.
   */
  async load(source?: ModelInput): Promise<boolean> {
    const seq = ++this.loadSeq;
    this.loadCtl?.abort();
    this.stop();
    const old = this.engine_;
    let committed = false;
    this.hideError();
    const ctl = new AbortController();
    this.loadCtl = ctl;
    this.loading_ = true;
    this.sync();
    try {
      const src = source ?? this.getAttribute('model');
      if (!src) throw Object.assign(new Error('no model given: set the model attribute to a folder URL or choose a folder'), { code: 'INVALID_OPTION' });
      const loader = SieveChatElement.loadModel;
      if (!loader) throw new Error('the sieve runtime is not linked (import src/component/index.ts, not sieve-chat.ts)');
      const options = readOptions(this);
      this.setStatus(`Checking ${describe(src)}…`);
      await checkSource(src, ctl.signal);
      if (seq !== this.loadSeq) return false;
      // The new source looks like a model: only now release the old one.
      committed = true;
      this.engine_ = undefined;
      this.history = [];
      this.sync();
      if (old) await old.unload();
      this.files.clear();
      this.stages = undefined;
      this.$.progress.replaceChildren();
      this.$.progress.hidden = false;
      this.setStatus(`Loading ${describe(src)}…`);
      const engine = await loader(
        src,
        options,
        (p) => {
          if (seq === this.loadSeq) this.onProgress(p);
        },
        ctl.signal,
      );
      if (seq !== this.loadSeq) {
        await engine.unload();
        return false;
      }
      this.engine_ = engine;
      this.$.progress.hidden = true;
      this.setStatus(`Ready: ${engine.description}${this.stages ? ` · loaded: ${stagesSummary(this.stages)}` : ''}`);
      this.present(true);
      // Ready before the event: a 'ready' listener may call send() at once.
      this.loading_ = false;
      this.sync();
      this.emit('ready', { description: engine.description, contextLength: engine.contextLength, kernels: engine.kernels, stages: this.stages });
      return true;
    } catch (e) {
      if (seq !== this.loadSeq) return false;
      if (this.files.size === 0 && !this.stages) this.$.progress.hidden = true;
      if (!committed && old) this.setStatus(`Ready: ${old.description} (kept: the new model did not load)`);
      else this.setStatus('No model loaded.');
      this.showError(e);
      return false;
    } finally {
      if (seq === this.loadSeq) {
        this.loading_ = false;
        this.sync();
      }
    }
  }

  /** Sends a user message and streams the reply. Never rejects; an error is in the result and the `error` event. */
  async send(prompt: string | { ids: number[] }): Promise<ReplyResult> {
    const text = typeof prompt === 'string' ? prompt : `[${prompt.ids.length} token ids]`;
    const engine = this.engine_;
    if (!engine || this.busy_ || this.loading_) {
      const why = !engine ? 'no model is loaded' : this.loading_ ? 'a model is loading' : 'a reply is still being written';
      const error = plainError(Object.assign(new Error(why), { code: 'INVALID_OPTION' }));
      this.showError(error);
      return { text: '', finishReason: 'error', error };
    }
    const t0 = performance.now();
    this.hideError();
    this.$.messages.querySelector('.empty')?.remove();
    let options: ChatOptions | undefined;
    let optionsError: unknown;
    try {
      options = readOptions(this);
    } catch (e) {
      optionsError = e;
    }
    const continuation = typeof prompt === 'string' && this.continuation;
    const chat = typeof prompt === 'string' && !continuation;
    // Text continuation: one bubble, the prompt then what the model wrote after it.
    const userEl = continuation ? undefined : this.addMessage('user', text);
    const bubble = this.addMessage('assistant', '', continuation ? text : undefined);
    const textNode = bubble.querySelector('.text')!.firstChild as Text;
    bubble.classList.add('streaming');
    const ctl = new AbortController();
    this.replyCtl = ctl;
    this.busy_ = true;
    this.sync();
    let out = '';
    let finishReason = 'stop';
    let stats: ReplyStats | undefined;
    let firstPaint: Promise<number> | undefined;
    let error: PlainError | undefined;
    try {
      if (!options) throw optionsError;
      const input: string | ChatMessage[] | { ids: number[] } =
        typeof prompt !== 'string'
          ? prompt
          : chat
            ? [...(options.systemPrompt ? [{ role: 'system' as const, content: options.systemPrompt }] : []), ...this.history, { role: 'user', content: text }]
            : text;
      for await (const chunk of engine.generate(input, { options, signal: ctl.signal })) {
        if (chunk.text) {
          const follow = this.atBottom();
          textNode.data += chunk.text;
          out += chunk.text;
          if (follow) this.scrollToEnd();
        }
        if (!firstPaint && (chunk.text || chunk.ids.length)) firstPaint = afterPaint().then((t) => t - t0);
        if (chunk.finishReason) {
          finishReason = chunk.finishReason;
          stats = chunk.stats;
        }
        this.emit('token', { text: chunk.text, ids: chunk.ids });
      }
      if (ctl.signal.aborted) finishReason = 'abort';
    } catch (e) {
      if (ctl.signal.aborted || (e as { code?: string }).code === 'ABORTED' || (e as Error).name === 'AbortError') {
        finishReason = 'abort';
      } else {
        finishReason = 'error';
        error = this.showError(turnError(e, chat && this.history.length > 0));
        if (out === '') {
          // Nothing was written: the turn did not happen. Its bubbles go, and the text returns to the input to edit.
          bubble.remove();
          userEl?.remove();
          if (typeof prompt === 'string' && !this.$.input.value) this.$.input.value = text;
          if (!this.$.messages.querySelector('.message')) this.present(true);
        } else {
          bubble.classList.add('failed');
        }
      }
    } finally {
      this.replyCtl = undefined;
      this.busy_ = false;
      bubble.classList.remove('streaming');
      this.sync();
    }
    const pageTtftMs = firstPaint ? await firstPaint : undefined;
    if (chat && finishReason !== 'error') this.history.push({ role: 'user', content: text }, { role: 'assistant', content: out });
    if (bubble.isConnected) {
      const follow = this.atBottom(48);
      const statsEl = bubble.querySelector('.stats') as HTMLElement;
      statsEl.textContent = statsLine(finishReason, stats, pageTtftMs);
      statsEl.hidden = false;
      // The newest reply ends with its stats line: keep it in view.
      if (follow) this.scrollToEnd();
    }
    const result: ReplyResult = { text: out, finishReason, stats, pageTtftMs, error };
    this.lastReply_ = result;
    this.emit('done', result);
    return result;
  }

  /** Stops the reply being written (the engine ends within one decode step). */
  stop(): void {
    this.replyCtl?.abort();
  }

  /** Forgets the conversation, on the page and in the engine's KV cache (the next prompt is prefilled in full). */
  async clear(): Promise<void> {
    this.stop();
    this.history = [];
    this.present(true);
    await this.engine_?.resetChat();
  }

  /** Releases the model's GPU memory. */
  async unload(): Promise<void> {
    this.loadSeq++;
    this.loadCtl?.abort();
    this.stop();
    const e = this.engine_;
    this.engine_ = undefined;
    this.loading_ = false;
    this.sync();
    if (e) await e.unload();
  }

  /**
   * The empty conversation and the input's placeholder, for how prompts are
   * taken: chat, or text continuation with suggested openings (clicking one
   * puts it in the input). `reset` clears the messages first.
   */
  private present(reset = false): void {
    const continuation = this.continuation;
    this.$.input.placeholder = continuation ? CONTINUATION_PLACEHOLDER : CHAT_PLACEHOLDER;
    if (reset) this.$.messages.replaceChildren();
    if (this.$.messages.querySelector('.message')) return;
    const intro = document.createElement('div');
    intro.className = 'empty';
    intro.setAttribute('part', 'intro');
    const engine = this.engine_;
    if (!engine) {
      intro.textContent = 'No model loaded yet.';
    } else {
      let suggestions: string[] | undefined;
      try {
        suggestions = readOptions(this).suggestions;
      } catch {
        /* reported */
      }
      suggestions ??= continuation ? CONTINUATION_SUGGESTIONS : [];
      const name = engine.description.replace(/ \(.*$/, '');
      intro.append(
        Object.assign(document.createElement('p'), {
          textContent: continuation
            ? engine.hasChatTemplate
              ? `Text continuation: ${name} continues the text you start.`
              : `${name} has no chat template: it does not answer questions, it continues the text you start. Begin a story, or pick an opening:`
            : `Chat with ${name}.`,
        }),
      );
      if (suggestions.length > 0) {
        const list = Object.assign(document.createElement('div'), { className: 'suggestions' });
        for (const s of suggestions) {
          const b = Object.assign(document.createElement('button'), { type: 'button', textContent: s });
          b.setAttribute('part', 'suggestion');
          b.addEventListener('click', () => {
            this.$.input.value = s;
            this.$.input.focus();
          });
          list.append(b);
        }
        intro.append(list);
      }
    }
    this.$.messages.replaceChildren(intro);
  }

  private onProgress(p: FileProgress): void {
    this.files.set(p.file, { file: p.file, loadedBytes: p.loadedBytes, totalBytes: p.totalBytes });
    if (p.stages) {
      if (!this.stages) this.$.progress.replaceChildren();
      this.stages = p.stages;
      renderStages(this.$.progress, p.stages, p.stage, p.file);
    } else if (!this.stages) {
      renderFile(this.$.progress, p);
    }
    const files = [...this.files.values()];
    const loadedBytesAll = files.reduce((s, f) => s + f.loadedBytes, 0);
    const totalBytesAll = files.reduce((s, f) => s + f.totalBytes, 0);
    if (!this.stages && totalBytesAll > 0 && loadedBytesAll >= totalBytesAll) {
      // Bytes-only engines go quiet here while they upload and compile: say so.
      this.setStatus('Weights read; preparing the model on the GPU (upload, shader compile)…');
    }
    this.emit('progress', { ...p, files, loadedBytesAll, totalBytesAll });
  }

  private addMessage(role: 'user' | 'assistant', text: string, echo?: string): HTMLElement {
    const el = document.createElement('div');
    el.className = `message ${role}${echo !== undefined ? ' continuation' : ''}`;
    el.setAttribute('part', `message ${role}${echo !== undefined ? ' continuation' : ''}`);
    if (echo !== undefined) {
      const e = Object.assign(document.createElement('span'), { className: 'echo' });
      e.setAttribute('part', 'echo');
      e.append(document.createTextNode(echo));
      el.append(e);
    }
    const body = document.createElement(echo !== undefined ? 'span' : 'div');
    body.className = 'text';
    body.append(document.createTextNode(text));
    el.append(body);
    if (role === 'assistant') {
      const stats = Object.assign(document.createElement('div'), { className: 'stats', hidden: true });
      stats.setAttribute('part', 'stats');
      el.append(stats);
    }
    this.$.messages.append(el);
    this.scrollToEnd();
    return el;
  }

  private atBottom(slack = 24): boolean {
    const m = this.$.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight <= slack;
  }

  private scrollToEnd(): void {
    this.$.messages.scrollTop = this.$.messages.scrollHeight;
  }

  private showError(e: unknown): PlainError {
    const p = (e as PlainError)?.title !== undefined ? (e as PlainError) : plainError(e);
    this.$.error.querySelector('.title')!.textContent = p.title;
    this.$.error.querySelector('.detail')!.textContent = p.detail;
    this.$.error.hidden = false;
    this.emit('error', p);
    return p;
  }

  private hideError(): void {
    this.$.error.hidden = true;
  }

  private setStatus(s: string): void {
    this.$.status.textContent = s;
  }

  private sync(): void {
    this.$.send.disabled = this.busy_ || this.loading_ || !this.engine_;
    this.$.stop.disabled = !this.busy_;
    this.toggleAttribute('busy', this.busy_);
    this.toggleAttribute('loading', this.loading_);
    this.toggleAttribute('ready', !!this.engine_ && !this.loading_);
    if (!this.engine_ && !this.loading_ && !this.$.status.textContent) this.setStatus('No model loaded.');
  }

  private emit(type: string, detail: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

/**
 * Before a loaded model is released for a new one: the source must have a
 * config.json that parses as JSON. A URL that answers 404 (or an HTML page,
 * as a dev server's fallback does) is a mistyped URL; a network failure is
 * accepted when the browser's cache holds the file (a model loaded before,
 * offline now), and the loader has the last word on everything else.
 */
async function checkSource(src: ModelInput, signal: AbortSignal): Promise<void> {
  const fail = (code: string, msg: string): never => {
    throw Object.assign(new Error(msg), { name: 'ModelSourceError', code });
  };
  let text: string;
  if (typeof src === 'string') {
    let url: string;
    try {
      url = new URL('config.json', new URL(src.endsWith('/') ? src : `${src}/`, globalThis.location?.href)).href;
    } catch {
      return fail('INVALID_OPTION', `'${src}' is not a URL`);
    }
    let r: Response;
    try {
      r = await fetch(url, { signal });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      const cached = await (globalThis as { caches?: CacheStorage }).caches?.match(url).catch(() => undefined);
      if (cached) return;
      return fail('NETWORK', `${url} could not be fetched (${(e as Error).message}): no model folder at ${src}`);
    }
    if (!r.ok) return fail('NETWORK', `${url} answered ${r.status} ${r.statusText}: no model folder at ${src}`);
    text = await r.text();
    if (!looksJson(text))
      return fail('NETWORK', `${url} is not JSON (${(r.headers.get('content-type') ?? 'no content type').split(';')[0]}): no model folder at ${src}`);
  } else if ('kind' in src) {
    try {
      text = await (await (await src.getFileHandle('config.json')).getFile()).text();
    } catch {
      return fail('MISSING_FILE', `config.json is missing from folder ${src.name}`);
    }
  } else {
    const files = Array.from(src as ArrayLike<File>);
    const config = files.find((f) => f.name === 'config.json');
    if (!config) return fail('MISSING_FILE', `config.json is missing from the ${files.length} file(s) chosen`);
    text = await config.text();
  }
  if (!looksJson(text)) fail('CONFIG', 'config.json is not valid JSON');
}

function looksJson(text: string): boolean {
  try {
    const x = JSON.parse(text);
    return typeof x === 'object' && x !== null && !Array.isArray(x);
  } catch {
    return false;
  }
}

/**
 * A failed turn in plain words. A prompt over the context length is said as
 * what it is: one message too long for the model (shorten it), or a
 * conversation grown too long (clear it).
 */
function turnError(e: unknown, hadHistory: boolean): PlainError {
  const p = plainError(e);
  if (p.code !== 'CONTEXT_OVERFLOW') return p;
  const d = (e as { details?: { promptTokens?: number; contextLength?: number } }).details ?? {};
  const m = /prompt of (\d+) tokens exceeds the context length of (\d+)/.exec(p.detail);
  const n = d.promptTokens ?? (m ? Number(m[1]) : undefined);
  const ctx = d.contextLength ?? (m ? Number(m[2]) : undefined);
  const figures = n !== undefined && ctx !== undefined ? ` (${n} tokens; the model's context holds ${ctx})` : '';
  return {
    ...p,
    title: hadHistory
      ? `The conversation is now longer than the context length${figures}. Clear the chat to start over, or send a shorter message.`
      : `This message is too long for the model${figures}. Shorten it and send it again.`,
  };
}

function describe(src: ModelInput): string {
  if (typeof src === 'string') return src;
  if ('kind' in src) return `folder ${src.name}`;
  const first = (src as ArrayLike<File>)[0] as (File & { webkitRelativePath?: string }) | undefined;
  return `folder ${first?.webkitRelativePath?.split('/')[0] || 'from disk'}`;
}

/**
 * "9 prompt tokens · 100 new · TTFT 41 ms (engine 35 ms) · prefill 220 tok/s · decode 120.0 tok/s · kernels f32 · dense prefill".
 * A turn that reused the KV cache says how many prompt tokens were cached and
 * prefilled, and gives no prefill rate: a rate over the few new tokens of an
 * appended turn measures the call's overhead, not prefill.
 */
export function statsLine(finishReason: string, s: ReplyStats | undefined, pageTtftMs: number | undefined): string {
  const parts: string[] = [];
  const cached = s?.cachedTokens ?? 0;
  const prefilled = s ? (s.prefillTokens ?? s.promptTokens - cached) : 0;
  if (s) parts.push(`${s.promptTokens} prompt tokens${cached > 0 ? ` (${cached} cached, ${prefilled} prefilled)` : ''}`, `${s.completionTokens} new`);
  if (pageTtftMs !== undefined) parts.push(`TTFT ${pageTtftMs.toFixed(0)} ms${s ? ` (engine ${s.ttftMs.toFixed(0)} ms)` : ''}`);
  if (s && cached === 0 && s.prefillTokPerS > 0) parts.push(`prefill ${s.prefillTokPerS.toFixed(0)} tok/s`);
  if (s && s.completionTokens > 1) parts.push(`decode ${s.decodeTokPerS.toFixed(1)} tok/s`);
  if (s?.kernels) parts.push(`kernels ${s.kernels}`);
  const sp = s?.sparsity;
  if (sp && sp.mode === 'sample') parts.push(`sparse prefill: ${(100 * sp.meanAreaFraction).toFixed(0)}% of attention computed`);
  else if (s) parts.push('dense prefill');
  if (finishReason === 'abort') parts.push('stopped');
  else if (finishReason === 'length') parts.push('max tokens reached');
  return parts.join(' · ');
}
