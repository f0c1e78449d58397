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
 *     [--repeat 1] [--warmup 1]
 * On the GPU machine: npm run gpu:bundle -- bench/ttft/node.ts, then node .gpu/node.mjs --json $OUT/ttft.json.
 * The measurement loop, table and JSON (ttft.json + ttft.svg) are the Chromium runner's too
 * (bench/ttft/report.ts). Per length and mode, from an empty KV cache: TTFT ms (prefill of the
 * whole prompt through the first token's argmax read back), 2nd token ms (that plus the first
 * decode step and its argmax), then greedy decode to --steps tokens; the sample row reports how
 * many of its first --steps greedy ids equal dense's (same prompt), the mean fraction of the
 * causal area computed and the mean CRA reached on the sampled rows. Each warm-up run prefills
 * one chunk of the prompt. A length whose KV cache does not fit is reported as skipped.
 * Prompts: syntheticPrompt with --needles needle tokens at 40% depth and 8
 * question rows at the end (the first greedy token is the needle's successor).
 * On a software adapter the defaults shrink: --shape tiny, lengths 512,1024,
 * chunk 512, minSparseLen 256.
 * Load: --presynth auto|on|ahead|off (auto) --synth-workers N (cores - 1): the weight bytes are
 * made by N worker threads (bench/ttft/synthetic.ts, as the Chromium harness does; 'on' keeps the
 * whole model in memory, 'ahead' at most 2 GiB, auto picks 'on' when it takes under half the free
 * memory), or in this thread while loading ('off', the old way). The load time is printed and in
 * the JSON (load.ms, with the synthesis figures).
 */
import type { KernelsOption } from '../../src/gpu/tier.ts';
import { getGpu } from '../../src/gpu/device.ts';
import { loadEngine, type DenseEngine } from '../../src/engine/index.ts';
import { DEFAULT_ATTENTION, type AttentionOptions, type KvDtype, type PrefillResult } from '../../src/engine/types.ts';
import type { WeightFormat } from '../../src/loader/formats.ts';
import { syntheticPrompt } from '../synthetic/prompt.ts';
import { structuredSource } from '../synthetic/source.ts';
import { PRESETS, type StructuredOptions } from '../synthetic/structured.ts';
import { adapterRecord, benchArgs } from '../common.ts';
import { availableParallelism } from 'node:os';
import { prepareSynthetic, type PresynthMode } from './synthetic.ts';
import { measure, printReport, serveSynthWorker, synthWorkerUrl, writeReport, type TtftMode, type TtftReport } from './report.ts';

// A synthesis worker (this bundle run again in a worker thread): serve chunks until terminated.
if (serveSynthWorker()) await new Promise(() => undefined);

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
  repeat: { type: 'string' },
  warmup: { type: 'string' },
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
const modes = String(args.modes ?? 'dense,sample').split(',') as TtftMode[];
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
const folder =
  presynth === 'off'
    ? undefined
    : await prepareSynthetic(shape, { dtype: 'BF16', seed, background }, synthContext, {
        mode: presynth,
        workers: Number(args['synth-workers'] ?? Math.max(1, availableParallelism() - 1)),
        workerUrl: synthWorkerUrl(),
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

const attentionOf = (mode: TtftMode) => ({ attention: mode, alpha, minSparseLen, selection });
const repeat = Number(args.repeat ?? 1);
const warmup = Number(args.warmup ?? 1);

const rows = await measure({
  lengths,
  modes,
  repeat,
  warmup,
  prompt: (seqLen) => Array.from(syntheticPrompt({ seqLen, vocabSize: V, seed, needles }).ids),
  // Warm-up on one chunk of the prompt (sparse when it reaches minSparseLen).
  warmupPrompt: (ids) => ids.slice(0, Math.min(prefillChunk, ids.length)),
  async run(ids, mode) {
    engine.truncate(0);
    const t0 = performance.now();
    const p: PrefillResult = await engine.prefill(ids, { attention: attentionOf(mode) });
    const prefillMs = performance.now() - t0;
    const greedy = [await engine.argmax()];
    const ttftMs = performance.now() - t0;
    await engine.decodeStep(greedy[0]);
    greedy.push(await engine.argmax());
    const secondTokenMs = performance.now() - t0;
    const tDecode = performance.now();
    while (greedy.length < steps) {
      await engine.decodeStep(greedy[greedy.length - 1]);
      greedy.push(await engine.argmax());
    }
    const heads = p.sparsity?.heads ?? [];
    return {
      ttftMs,
      prefillMs,
      secondTokenMs,
      decodeMsPerToken: greedy.length > 2 ? (performance.now() - tDecode) / (greedy.length - 2) : undefined,
      greedy: greedy.slice(0, steps),
      promptTokens: ids.length,
      areaFraction: p.sparsity ? p.sparsity.meanAreaFraction : 1,
      cra: heads.length ? heads.reduce((s, h) => s + h.cra, 0) / heads.length : undefined,
      prefillRan: p.sparsity?.mode ?? 'dense',
    };
  },
});
engine.destroy();

const report: TtftReport = {
  bench: 'ttft',
  runner: 'node',
  date: new Date().toISOString(),
  adapter: adapterRecord(ctx),
  timing: 'wall clock from an empty KV cache: TTFT = prefill awaited + the argmax read back (the first token); 2nd token = + one decode step and its argmax',
  kernels: engine.kernelTier,
  options: { shape, weights, kvDtype, prefillChunk, alpha, selection, minSparseLen, steps, seed, needles, background, repeat, warmup },
  model: { description: `${shape} (structured synthetic)`, contextLength: engine.contextLength, spec: engine.spec },
  load: { ms: loadMs, bytes: src.totalBytes, synth: synthStats },
  rows,
};
const json = typeof args.json === 'string' ? args.json : undefined;
if (json) writeReport(report, json, `TTFT dense vs sample (Node): ${shape} ${weights} on ${ctx.info.vendor} ${ctx.info.description}`);
printReport(report, json);
