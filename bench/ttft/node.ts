/**
 * bench/ttft: time to first token, dense vs SampleAttention prefill, on the
 * structured synthetic model (bench/synthetic: weights synthesized on the fly
 * by structuredSource, nothing on disk), in Node + Dawn.
 *   npm run bench -- bench/ttft/node.ts [--json FILE] [--shape internlm2-7b|internlm2-1.8b|chatglm2-6b|tiny]
 *     [--lengths 8192,32768[,65536,131072]] [--weights q4] [--prefill-chunk 4096] [--alpha 0.95] [--selection auto|topup|group|head]
 *     [--modes dense,sample] [--steps 16] [--kv f16] [--min-sparse-len N] [--seed 1] [--needles 1]
 *     [--kernels auto|f32|f16|tensor] (the kernel tier, src/gpu/tier.ts)
 *     [--background heavy|flat] (the model's background: heavy-tailed per-token salience, the
 *     default, or the older flat one; bench/synthetic/structured.ts)
 * On the GPU machine: npm run gpu:bundle -- bench/ttft/node.ts, then node .gpu/node.mjs --json $OUT/ttft.json.
 * Per length and mode, from an empty KV cache: prefill ms (prefill of the
 * whole prompt through the first token's argmax read back), TTFT ms (that plus
 * the first decode step and its argmax: the second token ready), then greedy
 * decode to --steps tokens; the sample row reports how many of its first
 * --steps greedy ids equal dense's (same prompt), the mean fraction of the
 * causal area computed and the mean CRA reached on the sampled rows. Before
 * the measured runs, one short prefill per mode (one chunk) compiles the
 * pipelines. A length whose KV cache does not fit is reported as skipped.
 * Prompts: syntheticPrompt with --needles needle tokens at 40% depth and 8
 * question rows at the end (the first greedy token is the needle's successor).
 * On a software adapter the defaults shrink: --shape tiny, lengths 512,1024,
 * chunk 512, minSparseLen 256.
 * Load: --presynth auto|on|ahead|off (auto) --synth-workers N (cores - 1): the weight bytes are
 * made by N worker threads (bench/ttft/synthetic.ts, as the Chromium harness does; 'on' keeps the
 * whole model in memory, 'ahead' at most 2 GiB, auto picks 'on' when it takes under half the free
 * memory), or in this thread while loading ('off', the old way). The load time is printed and in
 * the JSON (loadMs, with the synthesis figures).
 */
import type { KernelsOption } from '../../src/gpu/tier.ts';
import { getGpu } from '../../src/gpu/device.ts';
import { loadEngine, type DenseEngine } from '../../src/engine/index.ts';
import { DEFAULT_ATTENTION, type AttentionOptions, type KvDtype, type PrefillResult } from '../../src/engine/types.ts';
import type { WeightFormat } from '../../src/loader/formats.ts';
import { syntheticPrompt } from '../synthetic/prompt.ts';
import { structuredSource } from '../synthetic/source.ts';
import { PRESETS, type StructuredOptions } from '../synthetic/structured.ts';
import { adapterRecord, benchArgs, finish } from '../common.ts';
import { availableParallelism } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import { prepareSynthetic, runSynthWorker, type PresynthMode } from './synthetic.ts';

if (!isMainThread && workerData?.ttftSynthWorker) {
  // A synthesis worker (this bundle run again in a worker thread): serve chunks until terminated.
  runSynthWorker(workerData.ttftSynthWorker);
  await new Promise(() => undefined);
}

const args = benchArgs({
  shape: { type: 'string' },
  lengths: { type: 'string' },
  weights: { type: 'string' },
  'prefill-chunk': { type: 'string' },
  alpha: { type: 'string' },
  selection: { type: 'string' },
  modes: { type: 'string' },
  steps: { type: 'string' },
  kv: { type: 'string' },
  'min-sparse-len': { type: 'string' },
  seed: { type: 'string' },
  needles: { type: 'string' },
  background: { type: 'string' },
  presynth: { type: 'string' },
  'synth-workers': { type: 'string' },
  kernels: { type: 'string' },
});
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const shapeArg = String(args.shape ?? (soft ? 'tiny' : 'internlm2-7b'));
const shape = shapeArg === 'tiny' ? 'internlm2-tiny' : shapeArg;
const preset = (PRESETS as Record<string, StructuredOptions>)[shape];
if (!preset) throw new Error(`--shape: unknown '${shapeArg}' (one of tiny, ${Object.keys(PRESETS).join(', ')})`);
const lengths = String(args.lengths ?? (soft ? '512,1024' : '8192,32768'))
  .split(',')
  .map(Number);
if (lengths.some((n) => !Number.isInteger(n) || n < 2)) throw new Error(`--lengths: integers >= 2 expected, got '${args.lengths}'`);
const weights = String(args.weights ?? 'q4') as WeightFormat;
const prefillChunk = Number(args['prefill-chunk'] ?? (soft ? 512 : 4096));
const alpha = Number(args.alpha ?? DEFAULT_ATTENTION.alpha);
const modes = String(args.modes ?? 'dense,sample').split(',') as ('dense' | 'sample')[];
const steps = Number(args.steps ?? 16);
const kvDtype = String(args.kv ?? 'f16') as KvDtype;
const minSparseLen = Number(args['min-sparse-len'] ?? (soft ? 256 : DEFAULT_ATTENTION.minSparseLen));
const seed = Number(args.seed ?? 1);
// One needle by default: with several needles of different tokens the answer is a near tie between them
// (tiny q4 at 512 tokens, 4 needles: dense answered needle 0's successor, sample needle 3's, then the chains differ).
const needles = Number(args.needles ?? 1);
const maxLen = Math.max(...lengths);

const tLoad = performance.now();
const background = String(args.background ?? 'heavy') as 'heavy' | 'flat';
const synthContext = Math.max(maxLen + steps, preset.contextLength ?? 0);
const src = structuredSource({ dtype: 'BF16', ...preset, seed, background, contextLength: synthContext });
const presynth = String(args.presynth ?? 'auto') as PresynthMode;
if (!['auto', 'on', 'ahead', 'off'].includes(presynth)) throw new Error(`--presynth: '${presynth}' is not auto, on, ahead or off`);
// Workers run this file again: the bundle itself, or (under tsx) the harness script, which registers tsx.
const workerUrl = import.meta.url.endsWith('.ts') ? new URL('./chromium.mjs', import.meta.url) : new URL(import.meta.url);
const folder =
  presynth === 'off'
    ? undefined
    : await prepareSynthetic(shape, { dtype: 'BF16', seed, background }, synthContext, {
        mode: presynth,
        workers: Number(args['synth-workers'] ?? Math.max(1, availableParallelism() - 1)),
        workerUrl,
      });
const source = folder ? { ...src, read: (p: string, o: number, n: number) => (folder.files.includes(p) ? folder.read(p, o, n) : src.read(p, o, n)) } : src;
await folder?.ready;
const synthMs = performance.now() - tLoad;
const engine: DenseEngine = await loadEngine(ctx, source, {
  weights,
  kvDtype,
  contextLength: maxLen + steps,
  prefillChunk,
  kernels: String(args.kernels ?? 'auto') as KernelsOption,
});
const loadMs = performance.now() - tLoad;
const synthStats = folder ? { ...folder.stats } : undefined;
await folder?.close();
console.log(
  `# ${shape} ${weights} loaded in ${(loadMs / 1000).toFixed(1)} s (${(src.totalBytes / 1e9).toFixed(2)} GB, ${(src.totalBytes / 1e3 / loadMs).toFixed(0)} MB/s; ` +
    `synthesis ${synthStats ? `${synthStats.mode} by ${synthStats.workers} workers, ${(synthMs / 1000).toFixed(1)} s before the upload began` : 'on the fly in this thread'}), ` +
    `KV ${kvDtype} x ${maxLen + steps}, chunk ${prefillChunk}, background ${background}, kernels ${engine.kernelTier}`,
);
const V = engine.spec.vocabSize;

const selection = (args.selection ?? DEFAULT_ATTENTION.selection) as AttentionOptions['selection'];
const attentionOf = (mode: 'dense' | 'sample') => ({ attention: mode, alpha, minSparseLen, selection });

// Warm-up: compile the pipelines of each mode with one chunk (sparse when it reaches minSparseLen).
for (const mode of modes) {
  const n = Math.min(prefillChunk, maxLen);
  engine.truncate(0);
  await engine.prefill(Array.from(syntheticPrompt({ seqLen: n, vocabSize: V, seed: seed + 100 }).ids), { attention: attentionOf(mode) });
  await engine.decodeStep(await engine.argmax());
  await engine.argmax();
}

interface Result {
  shape: string;
  weights: WeightFormat;
  seqLen: number;
  mode: 'dense' | 'sample';
  alpha: number;
  prefillChunk: number;
  prefillMs?: number;
  ttftMs?: number;
  decodeMsPerToken?: number;
  greedy?: number[];
  sameGreedy?: number;
  meanAreaFraction?: number;
  meanCra?: number;
  skipped?: string;
}
const results: Result[] = [];
const rows: (string | number)[][] = [];
for (const seqLen of lengths) {
  const ids = Array.from(syntheticPrompt({ seqLen, vocabSize: V, seed, needles }).ids);
  let dense: number[] | undefined;
  for (const mode of modes) {
    const r: Result = { shape, weights, seqLen, mode, alpha, prefillChunk };
    results.push(r);
    try {
      engine.truncate(0);
      const t0 = performance.now();
      const p: PrefillResult = await engine.prefill(ids, { attention: attentionOf(mode) });
      const greedy = [await engine.argmax()];
      r.prefillMs = performance.now() - t0;
      await engine.decodeStep(greedy[0]);
      greedy.push(await engine.argmax());
      r.ttftMs = performance.now() - t0;
      const tDecode = performance.now();
      while (greedy.length < steps) {
        await engine.decodeStep(greedy[greedy.length - 1]);
        greedy.push(await engine.argmax());
      }
      r.decodeMsPerToken = greedy.length > 2 ? (performance.now() - tDecode) / (greedy.length - 2) : undefined;
      r.greedy = greedy.slice(0, steps);
      if (mode === 'dense') dense = r.greedy;
      else if (dense) r.sameGreedy = r.greedy.filter((t, k) => t === dense![k]).length;
      const heads = p.sparsity?.heads ?? [];
      r.meanAreaFraction = p.sparsity ? p.sparsity.meanAreaFraction : 1;
      r.meanCra = heads.length ? heads.reduce((s, h) => s + h.cra, 0) / heads.length : undefined;
    } catch (e) {
      r.skipped = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      console.log(`# ${seqLen} ${mode}: skipped (${r.skipped})`);
    }
    const base = results.find((x) => x.seqLen === seqLen && x.mode === 'dense' && x.ttftMs !== undefined);
    rows.push([
      seqLen,
      mode,
      r.prefillMs?.toFixed(1) ?? '-',
      r.ttftMs?.toFixed(1) ?? '-',
      mode === 'sample' && base?.ttftMs && r.ttftMs ? (base.ttftMs / r.ttftMs).toFixed(2) : '-',
      r.decodeMsPerToken?.toFixed(2) ?? '-',
      r.meanAreaFraction?.toFixed(3) ?? '-',
      r.meanCra?.toFixed(4) ?? '-',
      r.sameGreedy !== undefined ? `${r.sameGreedy}/${steps}` : '-',
    ]);
  }
}
engine.destroy();

finish(
  {
    bench: 'ttft',
    kernels: engine.kernelTier,
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: 'wall clock: prefill awaited + argmax read back (prefill ms); + first decode step + argmax (TTFT ms)',
    header: ['seqLen', 'mode', 'prefill ms', 'TTFT ms', 'speedup', 'decode ms/tok', 'area', 'CRA (sampled)', `greedy = dense`],
    rows,
    results: [
      {
        shape,
        weights,
        kvDtype,
        prefillChunk,
        alpha,
        selection,
        minSparseLen,
        steps,
        seed,
        needles,
        background,
        loadMs,
        loadBytes: src.totalBytes,
        synth: synthStats,
        spec: engine.spec,
      },
      ...results,
    ],
  },
  args.json,
);
