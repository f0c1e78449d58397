/**
 * LocalEngine: a loaded model in this thread (the page, a worker, Node)
 * behind the SieveEngine interface. Calls are serialized by a FIFO lock; the
 * conversation's ids stay cached for multi-turn reuse; device loss turns
 * every later call into DeviceLostError.
 */
import { DeviceLostError, SieveError } from '../errors.ts';
import type { AttentionOptions, Engine } from '../engine/types.ts';
import type { GpuContext } from '../gpu/device.ts';
import { runGeneration, type StreamDecoder } from './generate.ts';
import { makeChatCompletions } from './openai.ts';
import { resolveGenerate, validateInput } from './options.ts';
import { SerialQueue } from './queue.ts';
import type { ChatMessage, GenerateChunk, GenerateInput, GenerateOptions, ModelInfo, SieveEngine } from './types.ts';

/** What the API needs from a tokenizer; src/api/load.ts adapts src/tokenizer's. */
export interface TokenizerAdapter {
  /** Completion prompt -> ids (with BOS when the model wants one). */
  encode(text: string): number[];
  /** Chat messages -> ids in the model's chat format, ending with the assistant prompt. */
  encodeChat(messages: ChatMessage[]): number[];
  newDecoder(): StreamDecoder;
  eosIds: number[];
  hasChatFormat: boolean;
}

export interface EngineParts {
  ctx: GpuContext;
  engine: Engine;
  tokenizer: TokenizerAdapter;
  modelId: string;
  /** Destroy the device on unload (loadModel made it). */
  ownsDevice: boolean;
  attention?: Partial<AttentionOptions>;
}

const unloadedError = () => new SieveError('INTERNAL', 'the model was unloaded; call loadModel again', { unloaded: true });

export class LocalEngine implements SieveEngine {
  readonly model: ModelInfo;
  readonly chat;
  private readonly queue = new SerialQueue();
  private readonly cached: number[] = [];
  private lostError?: DeviceLostError;
  private unloaded = false;
  /** Set when unload() starts: queued generations fail at once instead of running first. */
  private unloading = false;
  /** Generations started and not finished (a consumer may hold one paused between chunks). */
  private readonly active = new Set<AsyncGenerator<GenerateChunk>>();

  private constructor(private parts: EngineParts) {
    const { engine, tokenizer, modelId } = parts;
    this.model = {
      id: modelId,
      family: engine.spec.family,
      vocabSize: engine.spec.vocabSize,
      contextLength: engine.contextLength,
      hasChatFormat: tokenizer.hasChatFormat,
      kernels: engine.kernelTier,
      ...(engine.loadTimes ? { loadTimes: engine.loadTimes } : {}),
    };
    this.chat = {
      completions: makeChatCompletions(
        (i, o) => this.generate(i, o),
        () => this.model.id,
      ),
    };
    parts.ctx.lost.then((e) => {
      this.lostError = e;
    });
  }

  static async create(parts: EngineParts): Promise<LocalEngine> {
    return new LocalEngine(parts);
  }

  get engine(): Engine {
    return this.parts.engine;
  }

  /** Prompt ids for an input (no GPU work). */
  tokenize(input: GenerateInput): number[] {
    const tok = this.parts.tokenizer;
    if (typeof input === 'string') return tok.encode(input);
    if (Array.isArray(input)) return tok.encodeChat(input);
    return input.ids.slice();
  }

  /**
   * Options are checked now (InvalidOptionError names the option); the work starts on the first next(),
   * where a lost device or an unloaded model is reported.
   */
  generate(input: GenerateInput, options: GenerateOptions = {}): AsyncGenerator<GenerateChunk> {
    const resolved = resolveGenerate(options);
    const checked = validateInput(input);
    const g: AsyncGenerator<GenerateChunk> = this.run(checked, resolved, options, () => this.active.delete(g));
    this.active.add(g);
    return g;
  }

  private async *run(
    input: GenerateInput,
    resolved: ReturnType<typeof resolveGenerate>,
    options: GenerateOptions,
    done: () => void,
  ): AsyncGenerator<GenerateChunk> {
    let release: (() => void) | undefined;
    try {
      release = await this.queue.acquire();
      this.assertUsable();
      const tokenizeStart = performance.now();
      const ids = this.tokenize(input);
      const tokenizeMs = performance.now() - tokenizeStart;
      const { engine, tokenizer } = this.parts;
      const attention = options.attention ?? this.parts.attention;
      yield* runGeneration(
        { engine, cached: this.cached, eosIds: tokenizer.eosIds, newDecoder: () => tokenizer.newDecoder() },
        ids,
        resolved,
        options.signal,
        attention,
        { reportColumns: options.reportColumns, tokenizeMs },
      );
    } catch (e) {
      if (this.lostError && !(e instanceof DeviceLostError)) throw this.lostError;
      throw e;
    } finally {
      release?.();
      done();
    }
  }

  async cachedTokens(): Promise<number> {
    return this.cached.length;
  }

  async resetChat(): Promise<void> {
    await this.queue.run(async () => {
      this.cached.length = 0;
      if (!this.lostError && !this.unloaded) this.parts.engine.truncate(0);
    });
  }

  /**
   * Releases the model. A generation a caller holds paused between chunks is
   * ended (its next next() reports done) instead of being waited for; queued
   * ones fail with the unloaded error.
   */
  async unload(): Promise<void> {
    if (this.unloaded) return;
    this.unloading = true;
    for (const g of [...this.active]) {
      this.active.delete(g);
      // A generator paused at a yield runs its finally (releasing the lock) now;
      // one still working ends at its next yield.
      g.return(undefined).catch(() => {});
    }
    await this.queue.run(async () => {
      if (this.unloaded) return;
      this.unloaded = true;
      this.parts.engine.destroy();
      if (this.parts.ownsDevice) this.parts.ctx.destroy();
    });
  }

  private assertUsable(): void {
    if (this.unloaded || this.unloading) throw unloadedError();
    if (this.lostError || this.parts.ctx.isLost) throw this.lostError ?? new DeviceLostError('the GPU device was lost; load the model again.');
  }
}
