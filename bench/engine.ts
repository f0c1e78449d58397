/**
 * bench/engine: prefill and decode throughput of the dense engine on synthetic
 * models with the shapes of InternLM2-1.8B and -7B (random weights made on the
 * GPU, never stored), in f16 and q4.
 *   npm run bench -- bench/engine.ts [--json FILE] [--shapes internlm2-1.8b,internlm2-7b]
 *     [--formats f16,q4] [--prompt 4096] [--decode 32] [--chunk 512] [--kv f16] [--attention dense|sample]
 *     [--decode-attn tiled,simple] [--decode-splits 128,32] [--profile] [--no-greedy]
 *     [--decode-variant plain,fused] [--kernels auto,f32,tensor]
 *     [--skip-validation] [--decode-only] [--decode-qg default,1,2] [--repeat 3]
 * Decode sweeps: every combination of --decode-variant (engine decodeVariant:
 * plain = separate norm / RoPE / residual passes, fused = in the projections'
 * epilogues), --repeat R (stepped and greedy decode measured R times per
 * configuration, medians in the table, every run in the JSON), --decode-attn
 * --decode-splits and --decode-qg (query heads per decode-attention workgroup)
 * builds one engine on the same weights, as does each --kernels tier (src/gpu/tier.ts; the
 * variant column names the tier that ran). --skip-validation:
 * Dawn's skip_validation toggle (Node only), which cuts the CPU cost of
 * recording a dispatch 2-4x (SwiftShader host: 1.7 vs 3.5-7 us).
 * --decode-only: no prefill warm-up (the prompt's prefill only fills the cache;
 * its time is printed but includes pipeline compiles), for quick decode sweeps.
 * On the GPU machine: npm run gpu:bundle -- bench/engine.ts, then node .gpu/engine.mjs --json $OUT/engine.json
 * Prefill: one prompt of --prompt tokens in chunks (TTFT-like: wall time to the
 * last row's logits on the GPU). Decode: --decode greedy steps after it, each
 * decodeStep + argmax read back (what generation pays per token). One warm-up
 * pass of each (pipelines compiled) is excluded. Greedy: the same number of
 * steps through engine.decode, the decode loop generate() runs (greedy: ids
 * stay on the GPU, read back a few steps behind; the CPU records ahead; timed
 * from the first token, chosen from the prompt's logits). decode cpu ms: time spent in decodeStep
 * (recording + submit) per token. --profile: one decode step at the prompt's
 * end and the last prefill chunk (attending the whole prompt) with every op
 * in its own timestamped pass, summed per op family over the layers (timestamp
 * passes add a little per-pass overhead; the sum is not the wall time).
 * On a software adapter the defaults shrink to a tiny model.
 */
import { getGpu } from '../src/gpu/device.ts';
import { createEngine } from '../src/engine/engine.ts';
import { releaseWeight } from '../src/engine/weights.ts';
import { SHAPES, syntheticSpec, syntheticWeights } from './synthetic/weights.ts';
import type { WeightFormat } from '../src/loader/formats.ts';
import type { KvDtype } from '../src/engine/types.ts';
import { Rng } from '../src/util/rng.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { GpuTimer, type PassTiming } from '../src/gpu/timing.ts';
import { DECODE_VARIANTS, type DecodeVariant } from '../src/engine/engine.ts';
import { KERNELS_OPTIONS, type KernelsOption } from '../src/gpu/tier.ts';

const args = benchArgs({
  shapes: { type: 'string' },
  formats: { type: 'string' },
  prompt: { type: 'string' },
  decode: { type: 'string' },
  chunk: { type: 'string' },
  kv: { type: 'string' },
  attention: { type: 'string' },
  'decode-attn': { type: 'string' },
  'decode-splits': { type: 'string' },
  profile: { type: 'boolean' },
  'no-greedy': { type: 'boolean' },
  'decode-variant': { type: 'string' },
  'skip-validation': { type: 'boolean' },
  'decode-only': { type: 'boolean' },
  'decode-qg': { type: 'string' },
  repeat: { type: 'string' },
  kernels: { type: 'string' },
});
const ctx = await getGpu(args['skip-validation'] ? { dawnFlags: ['enable-dawn-features=allow_unsafe_apis,skip_validation'] } : {});
const soft = ctx.info.isSoftware;
const shapes = String(args.shapes ?? (soft ? 'tiny' : 'internlm2-1.8b,internlm2-7b')).split(',');
const formats = String(args.formats ?? 'f16,q4').split(',') as WeightFormat[];
const promptLen = Number(args.prompt ?? (soft ? 96 : 4096));
const decodeSteps = Number(args.decode ?? (soft ? 4 : 32));
const chunk = Number(args.chunk ?? (soft ? 32 : 512));
const kvDtype = String(args.kv ?? 'f16') as KvDtype;
const attention = String(args.attention ?? 'dense') as 'dense' | 'sample';
const decodeAttns = String(args['decode-attn'] ?? 'tiled').split(',') as ('tiled' | 'simple')[];
const profile = !!args.profile;
const splitCaps = String(args['decode-splits'] ?? '128')
  .split(',')
  .map(Number);
const greedy = !args['no-greedy'];
const decodeVariants = String(args['decode-variant'] ?? 'fused').split(',') as DecodeVariant[];
for (const v of decodeVariants) if (!DECODE_VARIANTS.includes(v)) throw new Error(`unknown --decode-variant '${v}' (known: ${DECODE_VARIANTS.join(', ')})`);
const qgs = String(args['decode-qg'] ?? 'default')
  .split(',')
  .map((q) => (q === 'default' ? undefined : Number(q)));
const kernelsList = String(args.kernels ?? 'auto').split(',') as KernelsOption[];
for (const k of kernelsList) if (!KERNELS_OPTIONS.includes(k)) throw new Error(`unknown --kernels '${k}' (known: ${KERNELS_OPTIONS.join(', ')})`);
const repeat = Number(args.repeat ?? 1);
if (!(Number.isInteger(repeat) && repeat >= 1)) throw new Error(`--repeat takes a positive integer (got ${args.repeat})`);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];

// Round trip of the queue with nothing to do (what each awaited submit/map pays at least).
const tEmpty = performance.now();
for (let i = 0; i < 20; i++) await ctx.device.queue.onSubmittedWorkDone();
const emptyRoundTripMs = (performance.now() - tEmpty) / 20;
const profiles: unknown[] = [];
const profileRows: (string | number)[][] = [];

/** Sums a profile's passes per label; rows (label, ms, %, passes). */
function split(passes: PassTiming[]): { label: string; ms: number; n: number }[] {
  const m = new Map<string, { ms: number; n: number }>();
  for (const p of passes) {
    const e = m.get(p.label) ?? { ms: 0, n: 0 };
    e.ms += p.ms;
    e.n++;
    m.set(p.label, e);
  }
  return [...m].map(([label, e]) => ({ label, ...e })).sort((a, b) => b.ms - a.ms);
}

const rows: (string | number)[][] = [];
const results: unknown[] = [];
/** Stepped greedy ids of the first variant per shape/format (the others are compared with them). */
const firstIds = new Map<string, number[]>();
for (const name of shapes) {
  const shape = SHAPES[name];
  if (!shape) throw new Error(`unknown shape '${name}' (known: ${Object.keys(SHAPES).join(', ')})`);
  const spec = syntheticSpec(shape);
  for (const format of formats) {
    const weights = await syntheticWeights(ctx, spec, { format, seed: 1 });
    let weightBytes = 0;
    for (const w of weights.values()) for (const p of w.parts) weightBytes += p.data.size + (p.scales?.size ?? 0);
    for (const decodeAttn of decodeAttns)
      for (const decodeSplits of splitCaps)
        for (const decodeVariant of decodeVariants)
          for (const decodeQg of qgs)
            for (const kernels of kernelsList) {
              const engine = await createEngine(ctx, {
                kernels,
                spec,
                weights,
                contextLength: promptLen + decodeSteps + 1,
                kvDtype,
                prefillChunk: chunk,
                attention: { attention },
                decodeAttention: decodeAttn,
                decodeSplits,
                decodeQg,
                ownsWeights: false,
                decodeVariant,
              });
              const variant = `${decodeVariant}${decodeQg ? ` qg ${decodeQg}` : ''} ${engine.kernelTier}`;
              if (decodeVariant !== 'plain' && !engine.fusedDecode) console.warn(`${name} ${format}: fused decode not available on this device (plain used)`);
              try {
                const rng = new Rng(3);
                const ids = Array.from({ length: promptLen }, () => 3 + rng.int(spec.vocabSize - 3));
                // Warm-up: every plan the measured runs use (full chunk, remainder, decode).
                if (!args['decode-only']) {
                  await engine.prefill(ids.slice(0, Math.min(chunk, promptLen)));
                  if (promptLen % chunk) await engine.prefill(ids.slice(0, promptLen % chunk));
                }
                await engine.decodeStep(1);
                await engine.argmax();
                engine.truncate(0);

                const pre = await engine.prefill(ids);
                const prefillMs = pre.ms;
                const first = await engine.argmax();
                // --repeat R: the stepped and greedy decodes R times each from the prompt's end; medians reported (runs in the JSON).
                let id = first;
                const stepped = [first];
                const decodeRuns: number[] = [];
                const cpuRuns: number[] = [];
                for (let rep = 0; rep < repeat; rep++) {
                  if (rep > 0) engine.truncate(promptLen);
                  let cur = first;
                  let cpuMs = 0;
                  const t0 = performance.now();
                  for (let i = 0; i < decodeSteps; i++) {
                    const c0 = performance.now();
                    await engine.decodeStep(cur);
                    cpuMs += performance.now() - c0;
                    cur = await engine.argmax();
                    if (rep === 0) stepped.push(cur);
                  }
                  decodeRuns.push((performance.now() - t0) / decodeSteps);
                  cpuRuns.push(cpuMs / decodeSteps);
                  if (rep === 0) id = cur;
                }
                const decodeMs = median(decodeRuns);
                const dispatches = engine.decodeDispatches;
                // Every variant on these weights should pick the same ids (random weights may hold near-ties: a warning, not a failure).
                const ref = firstIds.get(`${name}/${format}`) ?? (firstIds.set(`${name}/${format}`, stepped), stepped);
                const agree = stepped.findIndex((t, i) => t !== ref[i]);
                const sameIdsAsFirstVariant = agree < 0 ? stepped.length : agree;
                if (agree >= 0) console.warn(`${name} ${format} ${variant}: ids agree with the first variant for ${agree} of ${stepped.length} steps`);
                const decodeCpuMs = median(cpuRuns);
                const greedyRuns: number[] = [];
                if (greedy) {
                  for (let rep = 0; rep < repeat; rep++) {
                    // The user's path: Engine.decode, the loop generate() runs (first token from the prompt's logits).
                    engine.truncate(promptLen - 1);
                    await engine.prefill(ids.slice(promptLen - 1));
                    const got: number[] = [];
                    let g0 = 0;
                    for await (const t of engine.decode({ maxTokens: decodeSteps + 1 })) {
                      if (got.length === 0) g0 = performance.now(); // timed from the first token: decodeSteps steps
                      got.push(t);
                    }
                    greedyRuns.push((performance.now() - g0) / decodeSteps);
                    if (got.length !== decodeSteps + 1 || got[decodeSteps] !== id)
                      console.warn(`greedy ids differ from the stepped ones (${got.at(-1)} vs ${id})`);
                  }
                }
                const greedyMs = greedyRuns.length ? median(greedyRuns) : NaN;
                if (profile) {
                  const timer = new GpuTimer(ctx, 1024);
                  try {
                    engine.truncate(promptLen);
                    const dec = await engine.profileForward([first], timer);
                    engine.truncate(promptLen - Math.min(chunk, promptLen));
                    const pre = await engine.profileForward(ids.slice(promptLen - Math.min(chunk, promptLen)), timer);
                    for (const [what, r] of [
                      ['decode step', dec],
                      [`prefill chunk ${Math.min(chunk, promptLen)}`, pre],
                    ] as const) {
                      const parts = split(r.passes);
                      const sum = parts.reduce((a, p) => a + p.ms, 0);
                      profiles.push({
                        kind: 'profile',
                        shape: name,
                        format,
                        decodeAttn,
                        variant,
                        what,
                        source: r.source,
                        spanMs: r.totalMs,
                        sumMs: sum,
                        parts,
                      });
                      for (const p of parts)
                        profileRows.push([
                          name,
                          format,
                          `${decodeAttn} ${variant}`,
                          what,
                          p.label,
                          p.n,
                          (p.ms * 1000).toFixed(1),
                          ((100 * p.ms) / sum).toFixed(1),
                        ]);
                      profileRows.push([
                        name,
                        format,
                        `${decodeAttn} ${variant}`,
                        what,
                        `sum (span ${r.totalMs.toFixed(3)} ms)`,
                        r.passes.length,
                        (sum * 1000).toFixed(1),
                        '100',
                      ]);
                    }
                  } finally {
                    timer.destroy();
                  }
                }

                const params = weightBytes; // for GB/s: bytes read per decoded token (weights dominate)
                const linearFlops =
                  2 *
                  promptLen *
                  (spec.nLayers *
                    ((spec.nHeads + 2 * spec.nKvHeads) * spec.headDim * spec.dim + spec.dim * spec.nHeads * spec.headDim + 3 * spec.ffnDim * spec.dim) +
                    (spec.vocabSize * spec.dim) / promptLen);
                const attnFlops = (4 * spec.nLayers * spec.nHeads * spec.headDim * (promptLen * (promptLen + 1))) / 2;
                const prefillTflops = (linearFlops + attnFlops) / (prefillMs * 1e-3) / 1e12;
                const r = {
                  shape: name,
                  format,
                  kvDtype,
                  attention,
                  decodeAttn,
                  decodeSplits,
                  decodeVariant,
                  fusedDecode: engine.fusedDecode,
                  decodeQg: decodeQg ?? 'default',
                  prompt: promptLen,
                  chunk,
                  decodeSteps,
                  decodeCpuMsPerToken: decodeCpuMs,
                  greedyMsPerToken: greedyMs,
                  greedyTokPerS: 1000 / greedyMs,
                  emptyRoundTripMs,
                  weightBytes,
                  prefillMs,
                  prefillTokPerS: promptLen / (prefillMs / 1000),
                  prefillTflops,
                  decodeMsPerToken: decodeMs,
                  decodeTokPerS: 1000 / decodeMs,
                  decodeGBPerS: params / (decodeMs * 1e-3) / 1e9,
                  kvLengthAtDecode: promptLen,
                  sameIdsAsFirstVariant,
                  dispatchesPerStep: dispatches,
                  repeat,
                  decodeMsRuns: decodeRuns,
                  greedyMsRuns: greedyRuns,
                };
                results.push(r);
                rows.push([
                  name,
                  format,
                  `${decodeAttn}/${decodeSplits}`,
                  variant,
                  promptLen,
                  prefillMs.toFixed(1),
                  r.prefillTokPerS.toFixed(1),
                  prefillTflops.toFixed(2),
                  decodeMs.toFixed(2),
                  r.decodeTokPerS.toFixed(2),
                  decodeCpuMs.toFixed(2),
                  greedyMs.toFixed(2),
                  (1000 / greedyMs).toFixed(1),
                  r.decodeGBPerS.toFixed(1),
                  (weightBytes / 2 ** 30).toFixed(2),
                  dispatches,
                ]);
              } finally {
                engine.destroy();
              }
            }
    for (const w of weights.values()) releaseWeight(ctx, w);
  }
}
if (profileRows.length) {
  console.log('\nprofile (timestamp per pass, summed over layers; us):');
  console.log(['shape', 'weights', 'decode attn', 'pass', 'op', 'passes', 'us', '%'].join('\t'));
  for (const r of profileRows) console.log(r.join('\t'));
}
console.log(`empty queue round trip: ${emptyRoundTripMs.toFixed(3)} ms`);
finish(
  {
    bench: 'engine',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: `wall (queue.onSubmittedWorkDone / mapAsync)${args['skip-validation'] ? ', Dawn skip_validation' : ''}`,
    header: [
      'shape',
      'weights',
      'decode attn/splits',
      'decode variant',
      'prompt',
      'prefill ms',
      'prefill tok/s',
      'prefill TFLOP/s',
      'decode ms/tok',
      'decode tok/s',
      'decode cpu ms/tok',
      'greedy ms/tok',
      'greedy tok/s',
      'decode GB/s',
      'weights GiB',
      'dispatches/step',
    ],
    rows,
    results: [...results, ...profiles],
  },
  args.json,
);
ctx.destroy();
