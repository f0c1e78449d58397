/**
 * The generation loop over one engine: prefill only what the KV cache lacks
 * (longest common prefix with the cached conversation), then run the
 * engine's decode loop (Engine.decode chooses each token on the GPU), with
 * stop ids, stop strings, max tokens,
 * the context limit and abort. `cached` always equals the ids whose K/V are
 * in the cache, whatever way a call ends (abort, error, a consumer breaking
 * out of the loop), so the next call can trust it.
 */
import { AbortedError, ContextOverflowError, DeviceLostError, SieveError } from '../errors.ts';
import type { AttentionOptions, Engine, PrefillResult } from '../engine/types.ts';
import { StopMatcher } from './stop.ts';
import type { ResolvedGenerate } from './options.ts';
import type { FinishReason, GenerateChunk, GenerationStats } from './types.ts';

/** What the loop needs from a tokenizer (src/api/load.ts adapts the real one). */
export interface StreamDecoder {
  /** Text completed by this id (incomplete UTF-8 is held back). */
  push(id: number): string;
  /** Whatever is still held at the end. */
  flush(): string;
}

export interface GenerationTarget {
  engine: Engine;
  /** Ids in the KV cache, in order. */
  cached: number[];
  eosIds: number[];
  newDecoder(): StreamDecoder;
}

/** Longest common prefix of two id sequences. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function checkLost(t: GenerationTarget, e: unknown): unknown {
  if (t.engine.ctx.isLost && !(e instanceof DeviceLostError)) {
    return new DeviceLostError('the GPU device was lost during generation; load the model again.', { cause: String((e as Error)?.message ?? e) });
  }
  return e;
}

export async function* runGeneration(
  t: GenerationTarget,
  promptIds: number[],
  o: ResolvedGenerate,
  signal: AbortSignal | undefined,
  attention: Partial<AttentionOptions> | undefined,
  /** Additive: per-head stats with column bins for pictures; the caller's tokenize time for the TTFT split. */
  extra: { reportColumns?: boolean; tokenizeMs?: number } = {},
): AsyncGenerator<GenerateChunk> {
  const { engine } = t;
  const contextLength = engine.contextLength;
  if (engine.ctx.isLost) throw new DeviceLostError('the GPU device was lost; load the model again.');
  if (promptIds.length > contextLength) throw new ContextOverflowError(promptIds.length, contextLength);
  const t0 = performance.now();
  const stats: GenerationStats = {
    promptTokens: promptIds.length,
    cachedTokens: 0,
    prefillTokens: 0,
    completionTokens: 0,
    ttftMs: 0,
    prefillTokPerS: 0,
    decodeTokPerS: 0,
    totalMs: 0,
    kernels: engine.kernelTier,
  };
  const final = (reason: FinishReason, text = '', ids: number[] = []): GenerateChunk => {
    stats.totalMs = performance.now() - t0;
    return { text, tokenIds: ids, finishReason: reason, stats };
  };
  if (signal?.aborted) {
    yield final('abort');
    return;
  }

  // Prefill what the cache lacks (at least one token, so the logits are this prompt's).
  const reuse = Math.min(commonPrefix(t.cached, promptIds), promptIds.length - 1);
  engine.truncate(reuse);
  t.cached.length = reuse;
  stats.cachedTokens = reuse;
  stats.prefillTokens = promptIds.length - reuse;
  let pre: PrefillResult;
  try {
    pre = await engine.prefill(promptIds.slice(reuse), { signal, attention, ...(extra.reportColumns ? { reportColumns: true } : {}) });
  } catch (e) {
    // An abort between prefill chunks keeps the chunks done (details.done); any other failure keeps the reused prefix.
    const done = e instanceof AbortedError && typeof e.details.done === 'number' ? e.details.done : 0;
    const keep = Math.min(reuse + done, promptIds.length);
    if (!engine.ctx.isLost) engine.truncate(Math.min(keep, engine.kvLength));
    appendIds(t.cached, promptIds, reuse, Math.min(keep, engine.kvLength));
    stats.prefillTokens = done;
    if (e instanceof AbortedError || (signal?.aborted && !(e instanceof SieveError))) {
      yield final('abort');
      return;
    }
    throw checkLost(t, e);
  }
  appendIds(t.cached, promptIds, reuse, promptIds.length);
  const prefillEnd = performance.now();
  stats.tokenizeMs = extra.tokenizeMs;
  stats.prefillMs = prefillEnd - t0;
  if (pre.sparsity) {
    stats.sparsity = { mode: pre.sparsity.mode, seqLen: pre.sparsity.seqLen, meanAreaFraction: pre.sparsity.meanAreaFraction };
    if (extra.reportColumns && pre.sparsity.heads.length > 0) stats.sparsity.heads = pre.sparsity.heads;
  }

  const stopIds = new Set([...(o.ignoreEos ? [] : t.eosIds), ...o.stopIds]);
  const matcher = new StopMatcher(o.stop);
  const decoder = t.newDecoder();
  // Prime with the prompt's last token so the first new token keeps its leading space
  // ("Lily" -> " and", not "and"); its own text is not emitted.
  decoder.push(promptIds[promptIds.length - 1]);
  // The engine chooses the tokens and runs the decode steps (Engine.decode); this loop turns ids into
  // text, stop strings and stats. The cache holds every yielded id but the last.
  const generated: number[] = [];
  let decodeStart = 0;
  let last: GenerateChunk | undefined;
  try {
    for await (const id of engine.decode({ choice: o.sample, seed: o.seed, history: promptIds, maxTokens: o.maxTokens, stopIds })) {
      generated.push(id);
      stats.completionTokens++;
      if (stats.completionTokens === 1) {
        const now = performance.now();
        stats.ttftMs = now - t0;
        stats.firstDecodeMs = now - prefillEnd;
        stats.prefillTokPerS = stats.prefillTokens / Math.max(1e-3, (now - t0) / 1000);
        decodeStart = now;
      } else {
        stats.decodeTokPerS = (stats.completionTokens - 1) / Math.max(1e-3, (performance.now() - decodeStart) / 1000);
      }
      if (stopIds.has(id)) {
        last = final('stop', matcher.push(decoder.flush()) + matcher.flush(), [id]);
        break;
      }
      const text = matcher.push(decoder.push(id));
      if (matcher.stopped) {
        last = final('stop', text, [id]);
        break;
      }
      if (stats.completionTokens >= o.maxTokens || engine.kvLength >= contextLength) {
        // The engine's loop ends here too (maxTokens, or a full cache).
        last = final('length', text + matcher.push(decoder.flush()) + matcher.flush(), [id]);
        break;
      }
      if (signal?.aborted) {
        last = final('abort', text, [id]);
        break;
      }
      yield { text, tokenIds: [id] };
      if (signal?.aborted) {
        last = final('abort');
        break;
      }
    }
  } catch (e) {
    // A decode step failed: the engine kept its cache to what is known good.
    throw checkLost(t, e);
  } finally {
    // However the loop ended (done, a stop, an error, a consumer that stopped reading).
    syncCached(t, generated);
  }
  yield last ?? final('length');
}

/** After a decode loop: `cached` = the ids whose K/V the engine holds (the prompt, then every generated id but the last). */
function syncCached(t: GenerationTarget, generated: number[]): void {
  appendIds(t.cached, generated, 0, generated.length);
  t.cached.length = Math.min(t.cached.length, t.engine.kvLength);
}

/**
 * Appends ids[from, to) to dst in place. A loop, not push(...slice): spreading a
 * 128K-token prompt as call arguments overflows the JS stack (seen in Chromium
 * at 131072 tokens, after the whole prefill had run).
 */
export function appendIds(dst: number[], ids: ArrayLike<number>, from: number, to: number): void {
  for (let i = from; i < to; i++) dst.push(ids[i]);
}
