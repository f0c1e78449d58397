/**
 * The adapter from the public API (src/api/types.ts: loadModel -> SieveEngine)
 * to what <sieve-chat> drives (link.ts). Kept apart from the element so the
 * element has no import of the runtime and the entry module picks the engine
 * (in a Web Worker in the browser: index.ts).
 */
import type { GenerateOptions, GenerationStats, LoadProgress, SieveEngine } from '../api/types.ts';
import type { AttentionOptions } from '../engine/types.ts';
import type { ChatEngine, FileProgress, ReplyStats } from './link.ts';
import type { ChatOptions } from './options.ts';

export function attentionOf(o: ChatOptions): Partial<AttentionOptions> {
  return {
    attention: o.attention,
    alpha: o.alpha,
    windowRatio: o.windowRatio,
    sampleRatio: o.sampleRatio,
    ...(o.minSampleRows > 0 ? { minSampleRows: o.minSampleRows } : {}),
    ...(o.selection !== 'auto' ? { selection: o.selection } : {}),
    ...(o.minSparseLen > 0 ? { minSparseLen: o.minSparseLen } : {}),
  };
}

/**
 * Load progress arrives as (file, bytesDone, bytesTotal), either per file
 * (downloads) or cumulative over the whole load (weights upload). Turns both
 * into per-file loaded bytes: in the cumulative case, each event's growth is
 * credited to the file it names, and a file's total is known once the next
 * file starts (until then its bar shows the whole load's remaining bytes).
 */
export function perFileProgress(onFile: (p: FileProgress) => void): (p: LoadProgress) => void {
  let lastDone = 0;
  let lastTotal = -1;
  let lastFile = '';
  let cumulative = false;
  const loaded = new Map<string, number>();
  let lastOut: FileProgress | undefined;
  const emit = (f: FileProgress) => {
    lastOut = { file: f.file, loadedBytes: f.loadedBytes, totalBytes: f.totalBytes };
    onFile(f);
  };
  return (p) => {
    const staged = p.stages ? { stage: p.stage, stages: p.stages } : {};
    if (p.stages && p.stage && p.stage !== 'read' && lastOut) {
      // Upload/compile events repeat the bytes read so far: pass the stage counts on under the last file's figures.
      onFile({ ...lastOut, ...staged });
      return;
    }
    if (lastFile && p.file !== lastFile && p.bytesTotal === lastTotal && p.bytesDone >= lastDone) cumulative = true;
    if (!cumulative) {
      emit({ file: p.file, loadedBytes: p.bytesDone, totalBytes: p.bytesTotal, ...staged });
    } else {
      if (p.file !== lastFile && lastFile) {
        const prev = loaded.get(lastFile) ?? 0;
        emit({ file: lastFile, loadedBytes: prev, totalBytes: prev });
      }
      const mine = (loaded.get(p.file) ?? 0) + Math.max(0, p.bytesDone - lastDone);
      loaded.set(p.file, mine);
      emit({ file: p.file, loadedBytes: mine, totalBytes: mine + Math.max(0, p.bytesTotal - p.bytesDone), ...staged });
    }
    if (!cumulative && p.file === lastFile) loaded.set(p.file, p.bytesDone);
    lastDone = p.bytesDone;
    lastTotal = p.bytesTotal;
    lastFile = p.file;
  };
}

function toStats(s: GenerationStats): ReplyStats {
  const sp = s.sparsity;
  return {
    promptTokens: s.promptTokens,
    completionTokens: s.completionTokens,
    cachedTokens: s.cachedTokens,
    prefillTokens: s.prefillTokens ?? s.promptTokens - s.cachedTokens,
    ttftMs: s.ttftMs,
    tokenizeMs: s.tokenizeMs,
    prefillMs: s.prefillMs,
    firstDecodeMs: s.firstDecodeMs,
    prefillTokPerS: s.prefillTokPerS,
    decodeTokPerS: s.decodeTokPerS,
    kernels: s.kernels,
    areaFraction: sp?.meanAreaFraction,
    sparsity: sp && { mode: sp.mode, seqLen: sp.seqLen, meanAreaFraction: sp.meanAreaFraction, heads: sp.heads ?? [] },
  };
}

export function adaptEngine(e: SieveEngine): ChatEngine {
  return {
    get hasChatTemplate() {
      return e.model.hasChatFormat;
    },
    get contextLength() {
      return e.model.contextLength;
    },
    get description() {
      return `${e.model.id} (${e.model.family}, context ${e.model.contextLength}${e.model.kernels ? `, kernels ${e.model.kernels}` : ''})`;
    },
    get kernels() {
      return e.model.kernels;
    },
    async *generate(input, { options: o, signal }) {
      const opts: GenerateOptions = {
        maxTokens: o.maxTokens,
        temperature: o.temperature,
        topP: o.topP,
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        attention: attentionOf(o),
        reportColumns: true,
        signal,
      };
      for await (const c of e.generate(input, opts)) {
        yield { text: c.text, ids: c.tokenIds, finishReason: c.finishReason, stats: c.stats && toStats(c.stats) };
      }
    },
    resetChat: () => e.resetChat(),
    unload: () => e.unload(),
  };
}
