/**
 * Entry of the <sieve-chat> component (and of `npm run build`, which bundles
 * this file, the runtime and its worker into one ES module, dist/sieve-chat.js).
 * The model runs in a dedicated Web Worker (src/worker/), inlined in the
 * bundle so one script tag is all a page needs.
 */
import { GpuUnavailableError } from '../errors.ts';
import { loadModelInWorker } from '../worker/client.ts';
import EngineWorker from '../worker/worker.ts?worker&inline';
import { adaptEngine, attentionOf, perFileProgress } from './runtime.ts';
import { SieveChatElement } from './sieve-chat.ts';
import type { LoadFn } from './link.ts';

export { SieveChatElement, statsLine, type ReplyResult } from './sieve-chat.ts';
export { drawSparsity } from './heatmap.ts';
export { plainError, type PlainError } from './plain-errors.ts';
export type { ChatOptions } from './options.ts';

const loadInWorker: LoadFn = async (source, o, onProgress, signal) => {
  const gpu = typeof navigator === 'undefined' ? undefined : (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new GpuUnavailableError('navigator.gpu is undefined: this browser has no WebGPU (or it is turned off).');
  // Asked here, in the page, so the answer is a browser's (the worker's own
  // message would also cover Node's setup, which means nothing to a page's user).
  if (!(await gpu.requestAdapter().catch(() => null))) {
    throw new GpuUnavailableError(
      'navigator.gpu.requestAdapter() found no GPU adapter: WebGPU is present but this GPU or its driver is not supported (or is blocklisted).',
    );
  }
  const worker = new EngineWorker();
  try {
    const engine = await loadModelInWorker(
      source,
      {
        ...(o.weights !== 'auto' ? { weights: o.weights } : {}),
        ...(o.kernels !== 'auto' ? { kernels: o.kernels } : {}),
        ...(o.contextLength > 0 ? { contextLength: o.contextLength } : {}),
        ...(o.prefillChunk > 0 ? { prefillChunk: o.prefillChunk } : {}),
        attention: attentionOf(o),
        ...(o.cache ? {} : { cache: false }),
        onProgress: perFileProgress(onProgress),
        signal,
      },
      worker,
    );
    const chat = adaptEngine(engine);
    return {
      ...chat,
      unload: async () => {
        try {
          await engine.unload();
        } finally {
          worker.terminate();
        }
      },
    };
  } catch (e) {
    worker.terminate();
    throw e;
  }
};

SieveChatElement.loadModel ??= loadInWorker;
if (!customElements.get('sieve-chat')) customElements.define('sieve-chat', SieveChatElement);

declare global {
  interface HTMLElementTagNameMap {
    'sieve-chat': SieveChatElement;
  }
}
