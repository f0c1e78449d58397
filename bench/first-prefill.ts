/**
 * bench/first-prefill: does a prompt length the engine has not seen before pay for compiles
 * (issue 16)? Loads a generated InternLM2-1.8B-shape checkpoint (bf16 on disk, q4 on the GPU)
 * through loadEngine, records the per-stage load times, then for each length times the first
 * prefill of that length and the same length again (a fresh cache each time), and counts
 * pipelines compiled after the load (src/gpu/pipelines.ts lateCompiles: 0 expected).
 *   npm run bench -- bench/first-prefill.ts [--json FILE] [--lengths 1,7,13,300,2048,4100,8192]
 *     [--weights q4] [--attention dense|sample] [--kernels auto|f32|f16|tensor] [--quick]
 * --quick: a tiny shape and lengths 1,7,13,65 (SwiftShader, CI machines).
 * On the GPU machine: npm run gpu:bundle -- bench/first-prefill.ts, then
 *   source .gpu/setup.sh && node .gpu/first-prefill.mjs --json $OUT/first-prefill.json
 * Timing: wall time from prefill() to the GPU's work done (queue.onSubmittedWorkDone), so a
 * compile on the request path shows in the first column. The checkpoint is written to a temp
 * folder (untimed; ~3.6 GB for the full shape) and removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { getGpu } from '../src/gpu/device.ts';
import { loadEngine } from '../src/engine/load.ts';
import { lateCompiles } from '../src/gpu/pipelines.ts';
import { writeSyntheticModel, type SyntheticOptions } from './synthetic/checkpoint.ts';
import type { LoadFormat } from '../src/loader/layout.ts';
import type { LoadProgress } from '../src/api/types.ts';
import { Rng } from '../src/util/rng.ts';
import type { KernelsOption } from '../src/gpu/tier.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({
  lengths: { type: 'string' },
  weights: { type: 'string' },
  attention: { type: 'string' },
  quick: { type: 'boolean' },
  kernels: { type: 'string' },
});
const quick = args.quick === true;
const ctx = await getGpu();
const lengths = String(args.lengths ?? (quick ? '1,7,13,65' : '1,7,13,300,2048,4100,8192'))
  .split(',')
  .map(Number);
const weights = String(args.weights ?? 'q4') as LoadFormat;
const attention = String(args.attention ?? 'dense') as 'dense' | 'sample';
const shape: SyntheticOptions = quick
  ? { family: 'internlm2', dim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 256, vocabSize: 512, dtype: 'BF16', seed: 3 }
  : { family: 'internlm2', dim: 2048, nLayers: 24, nHeads: 16, nKvHeads: 8, ffnDim: 8192, vocabSize: 92544, dtype: 'BF16', shards: 8, seed: 3 };
const maxLen = Math.max(...lengths);
const contextLength = maxLen + 1;

const dir = mkdtempSync(`${tmpdir()}/sieve-bench-first-prefill-`);
try {
  const tGen = performance.now();
  await writeSyntheticModel(dir, { ...shape, contextLength });
  console.error(`# generated the checkpoint in ${((performance.now() - tGen) / 1000).toFixed(1)} s (${dir})`);
  let last: LoadProgress | undefined;
  const engine = await loadEngine(ctx, dir, {
    weights,
    contextLength,
    kvDtype: 'f16',
    prefillChunk: quick ? 64 : undefined,
    attention: { attention },
    kernels: String(args.kernels ?? 'auto') as KernelsOption,
    onProgress: (p) => {
      last = p;
    },
  });
  const load = { ...engine.loadTimes!, stages: last?.stages };
  const lateAtLoad = lateCompiles(ctx);
  const rng = new Rng(7);
  const header = ['length', 'first ms', 'repeat ms', 'first / repeat', 'compiles'];
  const rows: (string | number)[][] = [];
  const results: Record<string, unknown>[] = [];
  const timePrefill = async (ids: number[]) => {
    engine.truncate(0);
    const t0 = performance.now();
    await engine.prefill(ids);
    await ctx.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  try {
    for (const n of lengths) {
      const ids = Array.from({ length: n }, () => 3 + rng.int(shape.vocabSize - 3));
      const before = lateCompiles(ctx);
      const first = await timePrefill(ids);
      const repeat = await timePrefill(ids);
      const compiles = lateCompiles(ctx) - before;
      rows.push([n, first.toFixed(1), repeat.toFixed(1), (first / repeat).toFixed(2), compiles]);
      results.push({ length: n, firstMs: first, repeatMs: repeat, ratio: first / repeat, compiles });
      console.error(`# ${n}: first ${first.toFixed(1)} ms, repeat ${repeat.toFixed(1)} ms, ${compiles} compiles`);
    }
  } finally {
    engine.destroy();
  }
  rows.push([
    'load',
    `read ${load.readMs.toFixed(0)} ms`,
    `upload ${load.uploadMs.toFixed(0)} ms`,
    `compile ${load.compileMs.toFixed(0)} ms`,
    `total ${load.totalMs.toFixed(0)} ms`,
  ]);
  finish(
    {
      bench: 'first-prefill',
      kernels: engine.kernelTier,
      date: new Date().toISOString(),
      adapter: adapterRecord(ctx),
      timing: 'wall',
      header,
      rows,
      results: [{ shape, weights, attention, contextLength, load, lateCompilesAtLoad: lateAtLoad }, ...results],
    },
    args.json,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
  ctx.destroy();
}
