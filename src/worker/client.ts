/**
 * WorkerEngine: the SieveEngine interface in the page, with the model in a
 * dedicated Web Worker so the page's main thread never runs GPU setup,
 * tokenization or the decode loop. Progress and streamed chunks come back as
 * messages; an AbortSignal is forwarded as an 'abort' message; errors keep
 * their class (reviveError).
 */
import { reviveError, SieveError } from '../errors.ts';
import { makeChatCompletions } from '../api/openai.ts';
import { resolveGenerate, validateInput, validateLoadOptions } from '../api/options.ts';
import type { GenerateChunk, GenerateInput, GenerateOptions, LoadOptions, ModelInfo, SieveEngine } from '../api/types.ts';
import type { FromWorker, Port, ToWorker, WireSource } from './protocol.ts';

type Listener = (m: FromWorker) => void;

export class WorkerEngine implements SieveEngine {
  readonly chat;
  model!: ModelInfo;
  private nextId = 1;
  private listeners = new Map<number, Listener>();

  private constructor(
    private port: Port,
    private terminate?: () => void,
  ) {
    port.addEventListener('message', (e: MessageEvent) => {
      const m = e.data as FromWorker;
      this.listeners.get(m.id)?.(m);
    });
    this.chat = {
      completions: makeChatCompletions(
        (i, o) => this.generate(i, o),
        () => this.model.id,
      ),
    };
  }

  /**
   * Loads a model in a worker. `port`: an existing Worker or MessagePort
   * (default: a new module worker running src/worker/worker.ts).
   */
  static async load(source: WireSource | URL, options: LoadOptions = {}, port?: Port): Promise<WorkerEngine> {
    validateLoadOptions(options);
    let terminate: (() => void) | undefined;
    if (!port) {
      const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'sieve-engine' });
      port = w;
      terminate = () => w.terminate();
    }
    const eng = new WorkerEngine(port, terminate);
    if (typeof Worker !== 'undefined' && port instanceof Worker) {
      // a worker that fails to start or crashes fails every pending call instead of leaving it waiting
      port.addEventListener('error', (e: ErrorEvent) => eng.failAll(new SieveError('INTERNAL', `the engine worker failed: ${e.message || 'script error'}`)));
    }
    const { onProgress, signal, gpu: _gpu, ...wire } = options;
    let src: WireSource = source instanceof URL ? source.href : source;
    if (typeof src === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(src) && typeof location !== 'undefined') {
      src = new URL(src, location.href).href; // the worker resolves URLs against its own script
    }
    try {
      eng.model = (await eng.call({ type: 'load', id: 0, source: src, options: wire }, signal, (m) => {
        if (m.type === 'progress') onProgress?.(m.progress);
      })) as ModelInfo;
    } catch (e) {
      terminate?.();
      throw e;
    }
    return eng;
  }

  private failAll(err: Error): void {
    for (const [id, fn] of [...this.listeners]) fn({ type: 'error', id, error: { name: err.name, message: err.message, code: 'INTERNAL' } });
  }

  /** Sends a request and resolves with its 'loaded'/'done' value; `onOther` sees progress/chunks. */
  private call(msg: ToWorker, signal?: AbortSignal, onOther?: Listener, id = this.nextId++): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onAbort = () => this.port.postMessage({ type: 'abort', id } satisfies ToWorker);
      const finish = () => {
        this.listeners.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
      this.listeners.set(id, (m) => {
        if (m.type === 'progress' || m.type === 'chunk') return onOther?.(m);
        finish();
        if (m.type === 'error') reject(reviveError(m.error));
        else resolve(m.type === 'loaded' ? m.model : m.value);
      });
      signal?.addEventListener('abort', onAbort);
      this.port.postMessage({ ...msg, id });
      if (signal?.aborted) onAbort();
    });
  }

  generate(input: GenerateInput, options: GenerateOptions = {}): AsyncGenerator<GenerateChunk> {
    resolveGenerate(options); // InvalidOptionError here, in the caller's stack
    validateInput(input);
    const { signal, ...wire } = options;
    return this.stream(input, wire, signal);
  }

  private async *stream(input: GenerateInput, options: Omit<GenerateOptions, 'signal'>, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const queue: GenerateChunk[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const id = this.nextId++;
    const done = this.call(
      { type: 'generate', id, input, options },
      signal,
      (m) => {
        if (m.type === 'chunk') {
          queue.push(m.chunk);
          wake?.();
        }
      },
      id,
    )
      .catch((e) => {
        failure = e;
      })
      .finally(() => {
        finished = true;
        wake?.();
      });
    try {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (finished) break;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
      await done;
      if (failure) throw failure;
    } finally {
      if (!finished) {
        // the consumer stopped early: stop the worker's loop too (its KV stays consistent)
        this.port.postMessage({ type: 'abort', id } satisfies ToWorker);
      }
    }
  }

  async cachedTokens(): Promise<number> {
    return (await this.call({ type: 'cached', id: 0 })) as number;
  }
  async resetChat(): Promise<void> {
    await this.call({ type: 'reset', id: 0 });
  }

  /** Test hook: destroys the worker's GPU device (device-loss tests). */
  async destroyDevice(): Promise<void> {
    await this.call({ type: 'destroyDevice', id: 0 });
  }

  async unload(): Promise<void> {
    try {
      await this.call({ type: 'unload', id: 0 });
    } finally {
      this.terminate?.();
    }
  }
}

/** loadModel's counterpart that runs the model in a dedicated worker. */
export function loadModelInWorker(source: WireSource | URL, options: LoadOptions = {}, port?: Port): Promise<WorkerEngine> {
  return WorkerEngine.load(source, options, port);
}
