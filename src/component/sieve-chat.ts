/**
 * <sieve-chat>: a chat box over the sieve runtime, as a custom element with
 * shadow DOM. Options are attributes (options.ts), the model is the `model`
 * attribute (a URL of a Hugging Face-style folder) or `load(files | handle)`.
 * Events (bubbling, composed): `progress` (per file bytes), `ready`, `token`
 * (each streamed chunk), `done` (reply text, finish reason, stats, TTFT seen
 * by the page), `error` (plain words + the runtime's message).
 * Model output is untrusted: it only ever reaches the DOM as text nodes.
 */
import { ATTRIBUTES, readOptions, type ChatOptions } from './options.ts';
import { plainError, type PlainError } from './plain-errors.ts';
import type { ChatEngine, ChatMessage, FileProgress, LoadFn, ModelInput, ReplyStats } from './link.ts';
import { STYLES } from './styles.ts';

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
<div part="messages" class="messages" aria-live="polite"><div class="empty">No messages yet.</div></div>
<div part="status" class="status"></div>
<form part="form">
  <textarea part="input" rows="2" placeholder="Type a message (Enter sends, Shift+Enter: new line)"></textarea>
  <button part="send" class="primary" type="submit">Send</button>
  <button part="stop" type="button" disabled>Stop</button>
  <button part="clear" type="button" title="Forget the conversation">Clear</button>
</form>`;

const fmtBytes = (n: number) =>
  n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

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
    progress: HTMLElement; error: HTMLElement; messages: HTMLElement; status: HTMLElement;
    form: HTMLFormElement; input: HTMLTextAreaElement; send: HTMLButtonElement; stop: HTMLButtonElement;
  };
  private engine_: ChatEngine | undefined;
  private loadCtl: AbortController | undefined;
  private replyCtl: AbortController | undefined;
  private loadSeq = 0;
  private history: ChatMessage[] = [];
  private files = new Map<string, FileProgress>();
  private busy_ = false;
  private loading_ = false;
  private lastReply_: ReplyResult | undefined;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
    this.root.innerHTML = `<style>${STYLES}</style>${TEMPLATE}`;
    const q = <T extends Element>(s: string) => this.root.querySelector(s) as T;
    this.$ = {
      progress: q('.progress'), error: q('.error'), messages: q('.messages'), status: q('.status'),
      form: q('form'), input: q('textarea'), send: q('[part=send]'), stop: q('[part=stop]'),
    };
    this.$.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = this.$.input.value.trim();
      if (!text || this.busy_ || !this.engine_) return;
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
  get engine(): ChatEngine | undefined { return this.engine_; }
  get busy(): boolean { return this.busy_; }
  get loading(): boolean { return this.loading_; }
  get lastReply(): ReplyResult | undefined { return this.lastReply_; }
  /** Current options read from the attributes (throws on an invalid one). */
  get options(): ChatOptions { return readOptions(this); }

  connectedCallback(): void {
    if (this.getAttribute('model') && !this.engine_ && !this.loading_) queueMicrotask(() => void this.load());
  }

  disconnectedCallback(): void {
    // Moving the element in the DOM disconnects and reconnects it: release the GPU only if it stays out.
    setTimeout(() => { if (!this.isConnected) void this.unload(); }, 0);
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
    }
  }

  /** Loads a model: a folder URL (default: the `model` attribute), files of a folder, or a directory handle. Never rejects: failures go to the `error` event; resolves to whether it loaded. */
  async load(source?: ModelInput): Promise<boolean> {
    const seq = ++this.loadSeq;
    this.loadCtl?.abort();
    this.stop();
    const old = this.engine_;
    this.engine_ = undefined;
    this.history = [];
    this.hideError();
    const ctl = new AbortController();
    this.loadCtl = ctl;
    this.loading_ = true;
    this.sync();
    try {
      if (old) await old.unload();
      const src = source ?? this.getAttribute('model');
      if (!src) throw Object.assign(new Error('no model given: set the model attribute to a folder URL or choose a folder'), { code: 'INVALID_OPTION' });
      const loader = SieveChatElement.loadModel;
      if (!loader) throw new Error('the sieve runtime is not linked (import src/component/index.ts, not sieve-chat.ts)');
      const options = readOptions(this);
      this.files.clear();
      this.$.progress.replaceChildren();
      this.$.progress.hidden = false;
      this.setStatus(`Loading ${describe(src)}…`);
      const engine = await loader(src, options, (p) => { if (seq === this.loadSeq) this.onProgress(p); }, ctl.signal);
      if (seq !== this.loadSeq) {
        await engine.unload();
        return false;
      }
      this.engine_ = engine;
      this.$.progress.hidden = true;
      this.setStatus(`Ready: ${engine.description}`);
      this.emit('ready', { description: engine.description, contextLength: engine.contextLength });
      return true;
    } catch (e) {
      if (seq !== this.loadSeq) return false;
      if (this.files.size === 0) this.$.progress.hidden = true;
      this.setStatus('No model loaded.');
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
    if (!engine || this.busy_) {
      const error = plainError(Object.assign(new Error(engine ? 'a reply is still being written' : 'no model is loaded'), { code: 'INVALID_OPTION' }));
      this.showError(error);
      return { text: '', finishReason: 'error', error };
    }
    const t0 = performance.now();
    this.hideError();
    this.$.messages.querySelector('.empty')?.remove();
    this.addMessage('user', text);
    const bubble = this.addMessage('assistant', '');
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
    let chat = false;
    try {
      const options = readOptions(this);
      chat = typeof prompt === 'string' && (options.mode === 'chat' || (options.mode === 'auto' && engine.hasChatTemplate));
      const input: string | ChatMessage[] | { ids: number[] } = typeof prompt !== 'string' ? prompt : chat
        ? [...(options.systemPrompt ? [{ role: 'system' as const, content: options.systemPrompt }] : []), ...this.history, { role: 'user', content: text }]
        : text;
      for await (const chunk of engine.generate(input, { options, signal: ctl.signal })) {
        if (chunk.text) {
          textNode.data += chunk.text;
          out += chunk.text;
          this.$.messages.scrollTop = this.$.messages.scrollHeight;
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
        error = this.showError(e);
        bubble.classList.add('failed');
      }
    } finally {
      this.replyCtl = undefined;
      this.busy_ = false;
      bubble.classList.remove('streaming');
      this.sync();
    }
    const pageTtftMs = firstPaint ? await firstPaint : undefined;
    if (chat && finishReason !== 'error') this.history.push({ role: 'user', content: text }, { role: 'assistant', content: out });
    const statsEl = bubble.querySelector('.stats') as HTMLElement;
    statsEl.textContent = statsLine(finishReason, stats, pageTtftMs);
    statsEl.hidden = false;
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
    this.$.messages.replaceChildren(Object.assign(document.createElement('div'), { className: 'empty', textContent: 'No messages yet.' }));
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

  private onProgress(p: FileProgress): void {
    this.files.set(p.file, p);
    let row = this.$.progress.querySelector<HTMLElement>(`[data-file="${CSS.escape(p.file)}"]`);
    if (!row) {
      row = document.createElement('div');
      row.className = 'file';
      row.dataset.file = p.file;
      row.setAttribute('part', 'file');
      const name = Object.assign(document.createElement('span'), { className: 'name', textContent: p.file, title: p.file });
      const bar = document.createElement('progress');
      bar.setAttribute('part', 'progress-bar');
      row.append(name, bar, Object.assign(document.createElement('span'), { className: 'bytes' }));
      this.$.progress.append(row);
    }
    const bar = row.querySelector('progress')!;
    bar.max = Math.max(1, p.totalBytes);
    bar.value = Math.min(p.loadedBytes, bar.max);
    const pct = p.totalBytes > 0 ? Math.floor((100 * p.loadedBytes) / p.totalBytes) : 100;
    row.querySelector('.bytes')!.textContent = `${fmtBytes(p.loadedBytes)} / ${fmtBytes(p.totalBytes)} (${pct}%)`;
    const files = [...this.files.values()];
    this.emit('progress', {
      ...p, files,
      loadedBytesAll: files.reduce((s, f) => s + f.loadedBytes, 0),
      totalBytesAll: files.reduce((s, f) => s + f.totalBytes, 0),
    });
  }

  private addMessage(role: 'user' | 'assistant', text: string): HTMLElement {
    const el = document.createElement('div');
    el.className = `message ${role}`;
    el.setAttribute('part', `message ${role}`);
    const body = document.createElement('div');
    body.className = 'text';
    body.append(document.createTextNode(text));
    el.append(body);
    if (role === 'assistant') {
      const stats = Object.assign(document.createElement('div'), { className: 'stats', hidden: true });
      stats.setAttribute('part', 'stats');
      el.append(stats);
    }
    this.$.messages.append(el);
    this.$.messages.scrollTop = this.$.messages.scrollHeight;
    return el;
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
    this.toggleAttribute('ready', !!this.engine_);
    if (!this.engine_ && !this.loading_ && !this.$.status.textContent) this.setStatus('No model loaded.');
  }

  private emit(type: string, detail: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

function describe(src: ModelInput): string {
  if (typeof src === 'string') return src;
  if ('kind' in src) return `folder ${src.name}`;
  const first = (src as ArrayLike<File>)[0] as (File & { webkitRelativePath?: string }) | undefined;
  return `folder ${first?.webkitRelativePath?.split('/')[0] || 'from disk'}`;
}

/** "9 prompt tokens · TTFT 41 ms (page) / 35 ms (engine) · 120 tok/s · 38% of attention computed" */
export function statsLine(finishReason: string, s: ReplyStats | undefined, pageTtftMs: number | undefined): string {
  const parts: string[] = [];
  if (s) parts.push(`${s.promptTokens} prompt tokens`, `${s.completionTokens} new`);
  if (pageTtftMs !== undefined) parts.push(`TTFT ${pageTtftMs.toFixed(0)} ms${s ? ` (engine ${s.ttftMs.toFixed(0)} ms)` : ''}`);
  if (s) parts.push(`prefill ${s.prefillTokPerS.toFixed(0)} tok/s`, `decode ${s.decodeTokPerS.toFixed(1)} tok/s`);
  const sp = s?.sparsity;
  if (sp && sp.mode === 'sample') parts.push(`sparse prefill: ${(100 * sp.meanAreaFraction).toFixed(0)}% of attention computed`);
  else if (s) parts.push('dense prefill');
  if (finishReason === 'abort') parts.push('stopped');
  else if (finishReason === 'length') parts.push('max tokens reached');
  return parts.join(' · ');
}
