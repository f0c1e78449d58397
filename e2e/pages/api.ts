// In-browser test page for the generation API (e2e/api.spec.ts): the sampling
// kernel cases on the page's WebGPU device, and the engine in a dedicated
// worker (loadModelInWorker) with a long-task observer on this main thread.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { runSampleCase, SAMPLE_CASES } from '../../test/api/sample-cases.ts';
import { loadModelInWorker, type WorkerEngine } from '../../src/worker/client.ts';
import type { GenerateOptions, GenerateInput, LoadProgress } from '../../src/api/types.ts';
import { ContextOverflowError, DeviceLostError, InvalidOptionError, SieveError } from '../../src/errors.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

const longTasks: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) longTasks.push(e.duration);
}).observe({ type: 'longtask', buffered: false } as PerformanceObserverInit);

let engine: WorkerEngine | undefined;
const MODEL = '/demo/public/models/stories260k/';

function errInfo(e: unknown) {
  const kind =
    e instanceof ContextOverflowError
      ? 'ContextOverflowError'
      : e instanceof InvalidOptionError
        ? 'InvalidOptionError'
        : e instanceof DeviceLostError
          ? 'DeviceLostError'
          : e instanceof SieveError
            ? 'SieveError'
            : 'other';
  return { name: (e as Error).name, kind, message: (e as Error).message, details: (e as SieveError).details };
}

const api = {
  sampleCases: SAMPLE_CASES.length,
  async sample(i: number) {
    return runSampleCase(await gpu(), SAMPLE_CASES[i]);
  },
  /** Starts measuring long tasks from now. */
  resetLongTasks() {
    longTasks.length = 0;
  },
  longTasks() {
    return longTasks.slice();
  },
  /** Control for the observer: blocks this thread for `ms`. */
  block(ms: number) {
    setTimeout(() => {
      const t = performance.now();
      while (performance.now() - t < ms) {
        /* busy */
      }
    }, 0);
    return PerformanceObserver.supportedEntryTypes.includes('longtask');
  },
  async load(opts: { contextLength?: number } = {}) {
    const progress: LoadProgress[] = [];
    const t0 = performance.now();
    engine = await loadModelInWorker(MODEL, { weights: 'f32', ...opts, onProgress: (p) => progress.push(p) });
    return { ms: performance.now() - t0, progress: progress.length, last: progress.at(-1), model: engine.model };
  },
  /** Collects a generation; `abortAfter` aborts once that many chunks arrived. */
  async generate(input: GenerateInput, opts: GenerateOptions = {}, abortAfter?: number) {
    const ac = new AbortController();
    const chunks: { text: string; ids: number[]; finish?: string }[] = [];
    let stats;
    let n = 0;
    for await (const c of engine!.generate(input, { ...opts, signal: ac.signal })) {
      chunks.push({ text: c.text, ids: c.tokenIds, finish: c.finishReason });
      if (c.stats) stats = c.stats;
      if (abortAfter !== undefined && ++n === abortAfter) ac.abort();
    }
    return { text: chunks.map((c) => c.text).join(''), ids: chunks.flatMap((c) => c.ids), finish: chunks.at(-1)?.finish, chunks: chunks.length, stats };
  },
  async chat(stream: boolean) {
    const req = { messages: [{ role: 'user' as const, content: 'Tom had a red car' }], max_tokens: 12, temperature: 0 };
    if (!stream) return engine!.chat.completions.create(req);
    const out = [];
    for await (const c of await engine!.chat.completions.create({ ...req, stream: true })) out.push(c);
    return out;
  },
  async cached() {
    return engine!.cachedTokens();
  },
  /** The error a call throws, as seen on this side of the boundary. */
  async errorOf(what: 'overflow' | 'option' | 'load-option' | 'lost') {
    try {
      if (what === 'overflow') {
        for await (const _ of engine!.generate({ ids: new Array(600).fill(5) })) {
          /* none */
        }
      } else if (what === 'option') engine!.generate('x', { topP: 7 });
      else if (what === 'load-option') await loadModelInWorker(MODEL, { kvDtype: 'f8' as never });
      else {
        for await (const _ of engine!.generate('Lily', { maxTokens: 3 })) {
          /* none */
        }
      }
    } catch (e) {
      return errInfo(e);
    }
    return null;
  },
  async destroyDevice() {
    await engine!.destroyDevice();
  },
  async unload() {
    await engine?.unload();
    engine = undefined;
  },
};
(window as unknown as { sieveApi: typeof api }).sieveApi = api;
document.getElementById('log')!.textContent = 'ready';
