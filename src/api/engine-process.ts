/**
 * ProcessEngine: `sieve serve`'s model in a child process, behind the
 * SieveEngine interface, so no request can take the HTTP server down.
 *
 * Why a process and not a worker thread: Dawn runs in a worker thread, but a
 * V8 fatal error there (a chat template's `range(1000000000)` ends in "invalid
 * size" or "Reached heap limit", even under the worker's resourceLimits)
 * aborts the whole process. A child process contains that, native crashes
 * and memory blow-ups alike.
 *
 * Requests run one at a time (a FIFO queue here, so a request's time budget
 * starts when it reaches the engine, not while it waits). Past `budgetMs` the
 * request is aborted through the engine's AbortSignal and fails with
 * RequestTimeoutError (HTTP 504); if the child does not finish it within
 * `graceMs` more (a template or tokenizer stuck in a loop), the child is
 * killed and started again (the model reloads) and the request fails with
 * EngineRestartedError (503). A child that dies is restarted the same way;
 * requests queued meanwhile wait for the reload.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { reviveError, SieveError } from '../errors.ts';
import type { FromWorker, ToWorker, WireGenerateOptions, WireLoadOptions } from '../worker/protocol.ts';
import { makeChatCompletions } from './openai.ts';
import { resolveGenerate, validateInput } from './options.ts';
import { SerialQueue } from './queue.ts';
import type { GenerateChunk, GenerateInput, GenerateOptions, LoadProgress, ModelInfo, SieveEngine } from './types.ts';

export interface ProcessEngineOptions {
  /** Time one request may run on the engine (default 300 s). */
  budgetMs?: number;
  /** Time after the budget's abort before the child counts as stuck and is restarted (default 15 s). */
  graceMs?: number;
  /** Module URL exporting loadModel(source, options) (tests: a scripted engine); default src/api/load.ts. */
  loader?: string;
  /** V8 heap limit of the child in MiB (default 4096). */
  maxHeapMb?: number;
  /** Restarts and their causes. */
  log?: (line: string) => void;
  /** The child's stderr (default: inherited). */
  stderr?: 'inherit' | 'ignore';
  /** Load progress of the first load. */
  onProgress?: (p: LoadProgress) => void;
}

/** A request ran past its time budget and was stopped. */
export class RequestTimeoutError extends SieveError {
  readonly httpStatus = 504;
  readonly httpCode = 'timeout';
  constructor(budgetMs: number) {
    super('ABORTED', `the request ran past its time budget of ${budgetMs} ms and was stopped`, { budgetMs });
  }
}

/** The engine process had to be restarted (stuck or died) while this request ran. */
export class EngineRestartedError extends SieveError {
  readonly httpStatus = 503;
  readonly httpCode = 'engine_restarted';
  constructor(why: string) {
    super('INTERNAL', `${why}; the engine process was restarted (the model reloads), try again`, { restarted: true });
  }
}

/** The engine process could not be (re)started. */
export class EngineUnavailableError extends SieveError {
  readonly httpStatus = 503;
  readonly httpCode = 'engine_unavailable';
  constructor(why: string) {
    super('INTERNAL', `the engine is not available: ${why}`);
  }
}

type Listener = (m: FromWorker) => void;
// The model process's entry: dist/engine-child.js in the built package (this code may sit in
// dist/ or dist/chunks/), src/api/engine-child.mjs (tsx) in the source tree.
const CHILD =
  [new URL('./engine-child.js', import.meta.url), new URL('../engine-child.js', import.meta.url)].map((u) => fileURLToPath(u)).find((p) => existsSync(p)) ??
  fileURLToPath(new URL('./engine-child.mjs', import.meta.url));

/** One child process and the pending calls on it. */
class Child {
  readonly proc: ChildProcess;
  readonly listeners = new Map<number, Listener>();
  dead = false;
  readonly exited: Promise<void>;

  constructor(opts: ProcessEngineOptions, onExit: (why: string) => void) {
    this.proc = fork(CHILD, opts.loader ? [opts.loader] : [], {
      execArgv: [`--max-old-space-size=${opts.maxHeapMb ?? 4096}`],
      stdio: ['ignore', 'ignore', opts.stderr ?? 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.proc.on('message', (m: FromWorker) => this.listeners.get(m.id)?.(m));
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.dead = true;
        const why = `the engine process exited (${signal ?? `code ${code}`})`;
        for (const [id, fn] of [...this.listeners]) fn({ type: 'error', id, error: { name: 'EngineRestartedError', message: why } });
        onExit(why);
        resolve();
      });
    });
    this.proc.on('error', () => {
      /* reported by 'exit' */
    });
  }

  post(msg: ToWorker): void {
    if (!this.dead && this.proc.connected)
      this.proc.send(msg, () => {
        /* a closing channel is reported by 'exit' */
      });
  }

  /** Resolves with a 'loaded'/'done' value; `onOther` sees chunks and progress. */
  call(msg: ToWorker, onOther?: Listener): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(new SieveError('INTERNAL', 'the engine process is gone'));
        return;
      }
      this.listeners.set(msg.id, (m) => {
        if (m.type === 'loaded') {
          this.listeners.delete(msg.id);
          resolve(m.model);
        } else if (m.type === 'done') {
          this.listeners.delete(msg.id);
          resolve(m.value);
        } else if (m.type === 'error') {
          this.listeners.delete(msg.id);
          reject(reviveError(m.error));
        } else onOther?.(m);
      });
      this.post(msg);
    });
  }

  kill(): void {
    if (!this.dead) this.proc.kill('SIGKILL');
  }
}

export class ProcessEngine implements SieveEngine {
  model!: ModelInfo;
  readonly chat;
  /** Times the child was restarted. */
  restarts = 0;
  private child!: Child;
  private ready!: Promise<void>;
  private loading = false;
  private closed = false;
  private nextId = 1;
  private readonly queue = new SerialQueue();
  private readonly budgetMs: number;
  private readonly graceMs: number;

  private constructor(
    private source: string,
    private loadOptions: WireLoadOptions,
    private opts: ProcessEngineOptions,
  ) {
    this.budgetMs = opts.budgetMs ?? 300_000;
    this.graceMs = opts.graceMs ?? 15_000;
    this.chat = {
      completions: makeChatCompletions(
        (i, o) => this.generate(i, o),
        () => this.model.id,
      ),
    };
  }

  /** Starts the child and loads the model in it; a load error is thrown here with its class. */
  static async start(source: string, loadOptions: WireLoadOptions = {}, opts: ProcessEngineOptions = {}): Promise<ProcessEngine> {
    const e = new ProcessEngine(source, loadOptions, opts);
    try {
      await e.spawn();
    } catch (err) {
      e.closed = true;
      e.child.kill();
      throw err;
    }
    return e;
  }

  private spawn(): Promise<void> {
    const child = new Child(this.opts, (why) => {
      if (!this.closed && this.child === child) this.restart(why);
    });
    this.child = child;
    this.loading = true;
    const id = this.nextId++;
    this.ready = new Promise<void>((resolve, reject) => {
      // the child says 'done' for id -1 once it listens; then the load goes over
      child.listeners.set(-1, () => {
        child.listeners.delete(-1);
        const first = this.restarts === 0;
        child
          .call({ type: 'load', id, source: this.source, options: this.loadOptions }, (m) => {
            if (m.type === 'progress' && first) this.opts.onProgress?.(m.progress);
          })
          .then((model) => {
            this.model = model as ModelInfo;
            resolve();
          }, reject);
      });
      child.exited.then(() => reject(new SieveError('INTERNAL', 'the engine process exited while loading the model')));
    }).finally(() => {
      this.loading = false;
    });
    this.ready.catch(() => {});
    return this.ready;
  }

  private restart(why: string): void {
    if (this.closed) return;
    this.restarts++;
    this.opts.log?.(`engine: ${why}; restarting it (restart ${this.restarts})`);
    this.child.kill();
    void this.spawn().catch((e) => this.opts.log?.(`engine: restart failed: ${(e as Error).message}`));
  }

  /** Waits for the child's model; after a failed (re)start, tries once more. */
  private async ensureReady(): Promise<Child> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new EngineUnavailableError('the model was unloaded');
      const ready = this.ready;
      try {
        await ready;
      } catch (e) {
        if (attempt > 0) throw new EngineUnavailableError((e as Error).message);
        if (this.ready === ready) {
          this.child.kill();
          this.spawn();
        }
        continue;
      }
      if (!this.child.dead) return this.child;
      // it died after loading: its exit handler is starting a new one
      if (attempt > 0) throw new EngineUnavailableError('the engine process died again after its restart');
      await new Promise((r) => setImmediate(r));
    }
  }

  /** For GET /health. */
  health(): Record<string, unknown> {
    return { engine: this.closed ? 'closed' : this.loading ? 'loading' : 'ready', restarts: this.restarts, queued: this.queue.pending };
  }

  generate(input: GenerateInput, options: GenerateOptions = {}): AsyncGenerator<GenerateChunk> {
    resolveGenerate(options);
    validateInput(input);
    const { signal, ...wire } = options;
    return this.run(input, wire, signal);
  }

  private async *run(input: GenerateInput, wire: WireGenerateOptions, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const release = await this.queue.acquire();
    try {
      const child = await this.ensureReady();
      const id = this.nextId++;
      const queue: GenerateChunk[] = [];
      let wake: (() => void) | undefined;
      let finished = false;
      let failure: unknown;
      let timedOut = false;
      let grace: ReturnType<typeof setTimeout> | undefined;
      const stop = (e: unknown) => {
        if (!finished) {
          failure = e;
          finished = true;
          wake?.();
        }
      };
      const done = child
        .call({ type: 'generate', id, input, options: wire }, (m) => {
          if (m.type === 'chunk') {
            queue.push(m.chunk);
            wake?.();
          }
        })
        .then(
          () => stop(undefined),
          (e) => stop(e.name === 'EngineRestartedError' ? new EngineRestartedError(e.message) : e),
        );
      const stuck = () => {
        grace = setTimeout(() => {
          stop(new EngineRestartedError(`the request did not stop within ${this.graceMs} ms of its abort`));
          if (this.child === child) this.restart(`a request did not stop within ${this.graceMs} ms of its abort`);
        }, this.graceMs);
      };
      const onAbort = () => {
        child.post({ type: 'abort', id });
        if (!grace) stuck();
      };
      signal?.addEventListener('abort', onAbort);
      if (signal?.aborted) onAbort();
      const budget = setTimeout(() => {
        timedOut = true;
        onAbort();
      }, this.budgetMs);
      try {
        for (;;) {
          while (queue.length) {
            const c = queue.shift()!;
            if (timedOut && c.finishReason === 'abort') continue; // reported as RequestTimeoutError instead
            yield c;
          }
          if (finished) break;
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = undefined;
        }
        if (failure) throw failure;
        if (timedOut) throw new RequestTimeoutError(this.budgetMs);
      } finally {
        clearTimeout(budget);
        if (!finished) {
          // the consumer stopped early: stop the child's loop too, and wait for it (or restart it)
          onAbort();
          await done;
        }
        clearTimeout(grace);
        signal?.removeEventListener('abort', onAbort);
      }
    } finally {
      release();
    }
  }

  private async simple(type: 'cached' | 'reset'): Promise<unknown> {
    return this.queue.run(async () => (await this.ensureReady()).call({ type, id: this.nextId++ }));
  }

  async cachedTokens(): Promise<number> {
    return (await this.simple('cached')) as number;
  }
  async resetChat(): Promise<void> {
    await this.simple('reset');
  }

  /** Unloads the model and ends the child (killed if it does not answer within the grace time). */
  async unload(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const child = this.child;
    const t = setTimeout(() => child.kill(), this.graceMs);
    try {
      if (!child.dead) await child.call({ type: 'unload', id: this.nextId++ }).catch(() => {});
      child.proc.disconnect?.();
      child.kill();
      await child.exited;
    } finally {
      clearTimeout(t);
    }
  }
}
