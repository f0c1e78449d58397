/**
 * The zero-compile scenario (issue 16), shared by test/engine/zero-compile.test.ts (Node + Dawn) and
 * e2e/zero-compile.spec.ts (Chromium): load stories260k, then wrap the device's create* methods and
 * run new prompt lengths (1, 2, 7, 13, 300, 301, a chunk + 1), greedy; after 13 and 300 tokens an
 * appended turn (only the new tail prefilled), sampled; dense below 256 tokens, SampleAttention from 256.
 * Every shader module or pipeline created after the load is listed by label, and the pipelines the
 * load put in the cache are counted (want: the compile stage's total, so none was built outside the
 * counted precompile, e.g. in a launcher's create()).
 */
import { loadModel } from '../../src/api/load.ts';
import type { LoadProgress, LoadTimes } from '../../src/api/types.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { Rng } from '../../src/util/rng.ts';
import { pipelineCount } from '../../src/gpu/pipelines.ts';

export const ZERO_COMPILE_CHUNK = 64;
export const ZERO_COMPILE_LENGTHS = [1, 2, 7, 13, 300, 301, ZERO_COMPILE_CHUNK + 1];

/** Counts shader-module and pipeline creations on `device` (labels kept) until restore(). */
export function countCreations(device: GPUDevice): { labels: string[]; restore(): void } {
  const labels: string[] = [];
  const d = device as unknown as Record<string, (...a: unknown[]) => unknown>;
  const names = ['createShaderModule', 'createComputePipeline', 'createComputePipelineAsync'];
  const saved = names.map((n) => d[n]);
  for (const [i, n] of names.entries()) {
    d[n] = (...a: unknown[]) => {
      labels.push(`${n}: ${(a[0] as { label?: string } | undefined)?.label ?? '?'}`);
      return saved[i].call(device, ...a);
    };
  }
  return {
    labels,
    restore: () =>
      names.forEach((n, i) => {
        d[n] = saved[i];
      }),
  };
}

export interface ZeroCompileResult {
  /** Modules / pipelines created after the load (want: none). */
  created: string[];
  /** Pipelines the load added to the device's cache (want: the compile stage's total). */
  loadPipelines: number;
  /** The last progress event of each stage. */
  progress: Partial<Record<LoadProgress['stage'], LoadProgress>>;
  events: number;
  loadTimes?: LoadTimes;
  /** Tokens generated per request (the scenario really ran). */
  generated: number[];
}

export async function runZeroCompile(ctx: GpuContext, model: string): Promise<ZeroCompileResult> {
  const progress: ZeroCompileResult['progress'] = {};
  let events = 0;
  const before = pipelineCount(ctx);
  const eng = await loadModel(model, {
    gpu: ctx,
    contextLength: 400,
    prefillChunk: ZERO_COMPILE_CHUNK,
    attention: { attention: 'sample', minSparseLen: 256 },
    onProgress: (p) => {
      progress[p.stage] = p;
      events++;
    },
  });
  const loadPipelines = pipelineCount(ctx) - before;
  const generated: number[] = [];
  let counter: ReturnType<typeof countCreations> | undefined;
  try {
    counter = countCreations(ctx.device);
    const rng = new Rng(16);
    const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(500));
    for (const [i, n] of ZERO_COMPILE_LENGTHS.entries()) {
      const prompt = ids(n);
      const out: number[] = [];
      for await (const c of eng.generate({ ids: prompt }, { maxTokens: 2, temperature: 0 })) out.push(...c.tokenIds);
      generated.push(out.length);
      if (n !== 13 && n !== 300) continue;
      // The next turn appends to the cached conversation (only the new tail is prefilled), sampled.
      let m = 0;
      for await (const c of eng.generate({ ids: [...prompt, ...out, ...ids(5)] }, { maxTokens: 2, temperature: 0.8, topK: 20, topP: 0.9, seed: i }))
        m += c.tokenIds.length;
      generated.push(m);
    }
  } finally {
    counter?.restore();
    await eng.unload();
  }
  return { created: counter.labels, loadPipelines, progress, events, loadTimes: eng.model.loadTimes, generated };
}
