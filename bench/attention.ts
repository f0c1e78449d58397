/**
 * bench/attention: prefill attention-op time, dense vs SampleAttention, on
 * structured (bench/synthetic/qkv.ts 'realistic': sink/band/stripes with a
 * heavy-tailed per-key salience and a length-stable background share),
 * structured-flat (the older 'planted': its thin background grows with S) and
 * unstructured (random) Q/K/V, with the split per phase (sampling, selection,
 * sparse; the K/V gather is fused into the sparse pass's tile loads).
 *   npm run bench -- bench/attention.ts [--sizes 4096,8192] [--alphas 0.95,0.8]
 *     [--inputs structured,structured-flat,random] [--heads 32] [--kv-heads 8] [--dim 128]
 *     [--chunk 32768] [--iters N] [--tile QRxTPRxBC[xRPT[xPF]][,...]] [--modes dense] [--check] [--json FILE]
 *     [--fallback A] [--selection auto,group,topup,head] [--sample-only]
 * --sample-only skips the dense runs (speedup and TFLOP/s then read '-'); for quick sweeps at 128K
 * where one dense iteration takes ~5 s.
 * --selection sweeps AttentionOptions.selection (default 'auto'); with several, the mode gains '/head' etc.
 * --fallback A[,B...] sweeps denseFallbackArea (1: never; with several, the mode reads 'sample@A').
 * GPU machine: npm run gpu:bundle -- bench/attention.ts, then
 *   node .gpu/attention.mjs --json $OUT/attention.json
 * --check compares 8 rows of the dense output (every head) with an f64 CPU reference.
 * Inputs are generated for one KV group and repeated over the groups (so
 * generation stays fast at 128K). Sequences longer than --chunk rows run as
 * consecutive chunks (pos > 0), as the engine's chunked prefill does; the time
 * is the sum over chunks. Median of --iters after one warm-up. Dense TFLOP/s
 * counts the causal work: 4 * headDim * nHeads * sum_i (i + 1).
 * --kernels auto|f32|tensor (src/gpu/tier.ts; default auto): the tier's prefill attention; the
 * tensor tier runs the dense passes on kernels/attention_tensor.wgsl (head dim 128) and needs the
 * f16 KV cache, which --kv f16 selects (default: f16 for the tensor tier, else f32).
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer, writeBuffer } from '../src/gpu/buffers.ts';
import type { GpuTimer } from '../src/gpu/timing.ts';
import { timeGpu } from './timing.ts';
import { PrefillAttention } from '../src/attention/index.ts';
import { syntheticQkv } from './synthetic/qkv.ts';
import { DEFAULT_ATTENTION, type AttentionOptions } from '../src/engine/types.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { resolveKernelTier, type KernelsOption } from '../src/gpu/tier.ts';
import { f32ToF16 } from '../src/loader/quant.ts';

const args = benchArgs({
  sizes: { type: 'string' },
  alphas: { type: 'string' },
  inputs: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  dim: { type: 'string' },
  chunk: { type: 'string' },
  iters: { type: 'string' },
  tile: { type: 'string' },
  modes: { type: 'string' },
  check: { type: 'boolean' },
  fallback: { type: 'string' },
  selection: { type: 'string' },
  'sample-only': { type: 'boolean' },
  kernels: { type: 'string' },
  kv: { type: 'string' },
});
const fallbacks = String(args.fallback ?? DEFAULT_ATTENTION.denseFallbackArea)
  .split(',')
  .map(Number);
const selections = String(args.selection ?? DEFAULT_ATTENTION.selection).split(',') as ('auto' | 'group' | 'topup' | 'head')[];
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const tier = resolveKernelTier(ctx, String(args.kernels ?? 'auto') as KernelsOption);
const kvDtype = String(args.kv ?? (tier === 'tensor' ? 'f16' : 'f32')) as 'f16' | 'f32';
if (kvDtype !== 'f16' && kvDtype !== 'f32') throw new Error(`--kv: f16 or f32, got '${kvDtype}'`);
const kvBytes = kvDtype === 'f16' ? 2 : 4;
/** K or V rows of one KV head as the cache holds them (f16: halves packed two per word). */
const kvData = (x: Float32Array) => (kvDtype === 'f16' ? Uint16Array.from(x, (e) => f32ToF16(e)) : x);
const sizes = String(args.sizes ?? (soft ? '256,512' : '4096,8192,16384,32768,65536,131072'))
  .split(',')
  .map(Number);
const alphas = String(args.alphas ?? '0.95,0.8')
  .split(',')
  .map(Number);
const INPUT_KINDS = { structured: 'realistic', 'structured-flat': 'planted', random: 'random' } as const;
const inputs = String(args.inputs ?? 'structured,structured-flat,random').split(',') as (keyof typeof INPUT_KINDS)[];
for (const i of inputs) if (!(i in INPUT_KINDS)) throw new Error(`--inputs: unknown '${i}' (one of ${Object.keys(INPUT_KINDS).join(', ')})`);
const nHeads = Number(args.heads ?? (soft ? 8 : 32));
const nKvHeads = Number(args['kv-heads'] ?? (soft ? 2 : 8));
const headDim = Number(args.dim ?? (soft ? 64 : 128));
const group = nHeads / nKvHeads;
const chunkRows = Number(args.chunk ?? 32768);
// --tile QRxTPRxBC[xRPT[xPF]] forces the flash tile (e.g. 64x4x32, 128x4x32x2); --modes dense skips
// the sparse runs. Several comma-separated tiles run one after the other (mode column
// 'dense QRxTPRx...'); PF 1 prefetches the next K/V tile into registers (e.g. 128x8x8x4x1).
const tileNames = args.tile ? String(args.tile).split(',') : [undefined];
const sampleOnly = Boolean(args['sample-only']);
const tiles = tileNames.map((name) => {
  if (!name) return undefined;
  const t = name.split('x').map(Number);
  return { qr: t[0], tpr: t[1], bc: t[2], rpt: t[3] ?? 1, pf: t[4] === undefined ? undefined : t[4] === 1 };
});
const denseOnly = String(args.modes ?? 'dense,sample') === 'dense';

const rows: (string | number)[][] = [];
const results: unknown[] = [];
let source = 'wall';
const PHASES = ['sampling', 'selection', 'sparse'] as const;

for (const seqLen of sizes)
  for (const [ti, tile] of tiles.entries()) {
    const tileTag = tiles.length > 1 ? ` ${tileNames[ti]}` : '';
    const maxRows = Math.min(seqLen, chunkRows);
    const chunks: { pos: number; rows: number }[] = [];
    for (let pos = 0; pos < seqLen; pos += maxRows) chunks.push({ pos, rows: Math.min(maxRows, seqLen - pos) });
    const iters = Number(args.iters ?? (seqLen >= 65536 ? 1 : 3));
    const prefillDims = { nHeads, nKvHeads, headDim, kvDtype, capacity: seqLen, maxRows };
    const attn = await PrefillAttention.create(ctx, prefillDims, { tile, sparse: !denseOnly, tensor: tier === 'tensor' });
    for (const input of inputs) {
      const gen = syntheticQkv({ seqLen, nHeads: group, nKvHeads: 1, headDim, kind: INPUT_KINDS[input], seed: 5, needle: Math.floor(seqLen * 0.3) });
      const k = createBuffer(ctx, nKvHeads * seqLen * headDim * kvBytes, STORAGE.rw, 'bench_k'); // (nKvHeads, seqLen, headDim)
      const v = createBuffer(ctx, nKvHeads * seqLen * headDim * kvBytes, STORAGE.rw, 'bench_v');
      const [gk, gv] = [kvData(gen.k), kvData(gen.v)];
      for (let h = 0; h < nKvHeads; h++) {
        writeBuffer(ctx, k, h * seqLen * headDim * kvBytes, gk);
        writeBuffer(ctx, v, h * seqLen * headDim * kvBytes, gv);
      }
      const rowW = nHeads * headDim;
      const qs = chunks.map((c) => {
        const q = new Float32Array(c.rows * rowW); // (rows, nHeads * headDim): the group's heads repeated per KV head
        for (let r = 0; r < c.rows; r++) {
          const src = gen.q.subarray((c.pos + r) * group * headDim, (c.pos + r + 1) * group * headDim);
          for (let h = 0; h < nKvHeads; h++) q.set(src, r * rowW + h * group * headDim);
        }
        return uploadBuffer(ctx, q, 'bench_q');
      });
      const out = createBuffer(ctx, maxRows * rowW * 4, STORAGE.rw, 'bench_out');
      const run = async (opts: AttentionOptions, op = attn) => {
        const t = await timeGpu(
          ctx,
          (enc, pass) => {
            const timer = { pass } as unknown as GpuTimer;
            chunks.forEach((c, i) => op.encode(enc, { q: qs[i], kv: { k, v }, out, pos: c.pos, rows: c.rows, layer: 0 }, opts, timer));
          },
          { warmup: 1, iters },
        );
        source = t.source;
        const phase: Record<string, number> = {};
        for (const p of t.passes) {
          const name = p.label.replace(/^attention\./, '');
          phase[name] = (phase[name] ?? 0) + p.ms;
        }
        const stats = await op.readStats();
        const n = stats.length || 1;
        return {
          ms: t.ms,
          allMs: t.all,
          phase,
          areaFraction: stats.length ? stats.reduce((a, s) => a + s.areaFraction, 0) / n : 1,
          selected: stats.reduce((a, s) => a + s.selected, 0) / n,
          cra: stats.length ? stats.reduce((a, s) => a + s.cra, 0) / n : 1,
          /** Fraction of (chunk, head) stats the selection sent to the dense fallback. */
          denseFallback: stats.length ? stats.filter((s) => s.areaFraction === 1).length / n : 0,
        };
      };
      let causal = 0;
      for (let i = 0; i < seqLen; i++) causal += i + 1;
      const flops = 4 * headDim * nHeads * causal;
      const dense = sampleOnly ? undefined : await run({ ...DEFAULT_ATTENTION, attention: 'dense' });
      const speedup = (ms: number) => (dense ? (dense.ms / ms).toFixed(2) : '-');
      // --check: 8 rows of the last chunk's dense output (every head) against an f64 CPU softmax.
      const checkErr = args.check && dense ? await checkRows(out, chunks[chunks.length - 1], gen, rowW) : undefined;
      if (checkErr !== undefined) console.log(`check S=${seqLen} ${input}: dense max abs error over 8 rows ${checkErr.toExponential(2)}`);
      if (dense) {
        const tflops = flops / (dense.ms * 1e-3) / 1e12;
        rows.push([seqLen, input, `dense${tileTag}`, '-', dense.ms.toFixed(2), '1.00', tflops.toFixed(2), '1.000', '-', '-', '-']);
        results.push({ seqLen, input, mode: 'dense', nHeads, nKvHeads, headDim, chunkRows: maxRows, tile: attn.tilePlan, ...dense, tflops, checkErr });
      }
      for (const alpha of denseOnly ? [] : alphas)
        for (const denseFallbackArea of fallbacks)
          for (const selection of selections) {
            const s = await run({ ...DEFAULT_ATTENTION, attention: 'sample', alpha, minSparseLen: 0, denseFallbackArea, selection });
            const f = (p: string) => (s.phase[p] ?? 0).toFixed(2);
            const tag = `${fallbacks.length > 1 ? `@${denseFallbackArea}` : ''}${selections.length > 1 ? `/${selection}` : ''}`;
            rows.push([seqLen, input, `sample${tag}${tileTag}`, alpha, s.ms.toFixed(2), speedup(s.ms), '-', s.areaFraction.toFixed(3), ...PHASES.map(f)]);
            results.push({
              seqLen,
              input,
              mode: 'sample',
              tile: attn.tilePlan,
              denseFallbackArea,
              selection,
              alpha,
              nHeads,
              nKvHeads,
              headDim,
              chunkRows: maxRows,
              ...s,
              speedup: dense ? dense.ms / s.ms : undefined,
            });
          }
      for (const b of [k, v, out, ...qs]) releaseBuffer(ctx, b);
    }
    attn.destroy();
  }

/** Max abs error of 8 spread rows of `out` (the chunk's dense result) vs an f64 reference (K/V of one group, repeated). */
async function checkRows(
  out: GPUBuffer,
  c: { pos: number; rows: number },
  gen: { q: Float32Array; k: Float32Array; v: Float32Array },
  rowW: number,
): Promise<number> {
  const got = await readF32(ctx, out, c.rows * rowW);
  let worst = 0;
  for (let t = 0; t < 8; t++) {
    const r = Math.min(c.rows - 1, Math.floor(((t + 0.5) * c.rows) / 8) + (t === 7 ? c.rows : 0));
    const i = c.pos + r;
    for (let h = 0; h < nHeads; h++) {
      const qb = (i * group + (h % group)) * headDim;
      const s = new Float64Array(i + 1);
      let m = -Infinity;
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let e = 0; e < headDim; e++) d += gen.q[qb + e] * gen.k[j * headDim + e];
        s[j] = d / Math.sqrt(headDim);
        m = Math.max(m, s[j]);
      }
      let l = 0;
      const acc = new Float64Array(headDim);
      for (let j = 0; j <= i; j++) {
        const p = Math.exp(s[j] - m);
        l += p;
        for (let e = 0; e < headDim; e++) acc[e] += p * gen.v[j * headDim + e];
      }
      for (let e = 0; e < headDim; e++) worst = Math.max(worst, Math.abs(acc[e] / l - got[r * rowW + h * headDim + e]));
    }
  }
  return worst;
}

finish(
  {
    bench: 'attention',
    kernels: `${tier} (KV ${kvDtype})`,
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: source,
    header: ['S', 'input', 'mode', 'alpha', 'ms', 'speedup', 'TFLOP/s', 'area', 'sampling ms', 'selection ms', 'sparse ms'],
    rows,
    results,
  },
  args.json,
);
ctx.destroy();
