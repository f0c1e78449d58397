/**
 * bench/sampling: SampleAttention's sampling phase alone (stage 1 row stats +
 * stage 2 column scores, the 'attention.sampling' pass of bench/attention),
 * the default kernels (kernels/sample_scores.wgsl) or forced tiles / splits:
 *   npm run bench -- bench/sampling.ts [--sizes 32768] [--chunk 32768]
 *     [--heads 32] [--kv-heads 8] [--dim 128] [--iters 5] [--dense] [--check] [--json FILE]
 *     [--variants default,rows=128x64x8x8x16:cols=64x128x8x8x16,split=1,split=8]
 * A variant is 'default' or ':'-separated parts: rows=BSxBTxRXxRYxDK / cols=... (the tile of the
 * row-stats / column-score kernel; missing trailing fields keep the default) and split=N (the
 * row-stats kernel's key split: 0 auto, 1 off, N always N). Column 'split' lists the splits of
 * the chunks (e.g. 6x7,1 = 6 at the first 7 chunks, then 1).
 * Columns: total ms, the row-stats kernel alone (rows ms; cols = total - rows),
 * effective TFLOP/s (2 * headDim per score of both kernels), and with --dense
 * the dense attention op's ms and sampling / dense. --check: every variant's
 * rowStats / colScores / groupScores against the first variant's (max
 * relative difference, relative to each output's max). Sequences longer than
 * --chunk run as chunks at pos > 0 (times summed), as bench/attention does.
 * Uses the default sampling options (sampleRatio 0.05, windowRatio 0.08, 4-row blocks).
 * GPU machine: npm run gpu:bundle -- bench/sampling.ts, then node .gpu/sampling.mjs ...
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer, writeBuffer } from '../src/gpu/buffers.ts';
import type { GpuTimer } from '../src/gpu/timing.ts';
import { timeGpu } from './timing.ts';
import { PrefillAttention } from '../src/attention/index.ts';
import { sampleRow, sparsePlan, type SparsePlan } from '../src/attention/options.ts';
import { DEFAULT_ATTENTION } from '../src/engine/types.ts';
import { PARAMS_BYTES, paramsWords } from '../kernels/attention_prefill.ts';
import { SampleKernels } from '../kernels/sample_attention.ts';
import type { ScoreOptions, ScoreTile } from '../kernels/sample_scores.ts';
import { Rng } from '../src/util/rng.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({
  sizes: { type: 'string' },
  chunk: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  dim: { type: 'string' },
  iters: { type: 'string' },
  variants: { type: 'string' },
  dense: { type: 'boolean' },
  check: { type: 'boolean' },
});
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const sizes = String(args.sizes ?? (soft ? '512' : '8192,32768'))
  .split(',')
  .map(Number);
const nHeads = Number(args.heads ?? (soft ? 8 : 32));
const nKvHeads = Number(args['kv-heads'] ?? (soft ? 2 : 8));
const headDim = Number(args.dim ?? (soft ? 64 : 128));
const chunkRows = Number(args.chunk ?? 32768);
const iters = Number(args.iters ?? 5);
const variantNames = String(args.variants ?? 'default').split(',');

const variants = variantNames.map((name) => ({ name, opts: parseVariant(name) }));

/** 'default' or rows=BSxBTxRXxRYxDK:cols=...:split=N. */
function parseVariant(v: string): ScoreOptions {
  const o: ScoreOptions = {};
  for (const part of v === 'default' ? [] : v.split(':')) {
    const [key, val] = part.split('=');
    if (key === 'split') o.split = Number(val);
    else if (key === 'rows' || key === 'cols') {
      const keys: (keyof ScoreTile)[] = ['bs', 'bt', 'rx', 'ry', 'dk'];
      const t: Partial<ScoreTile> = {};
      val
        .split('x')
        .map(Number)
        .forEach((x, i) => {
          if (!Number.isNaN(x)) t[keys[i]] = x;
        });
      o[key] = t;
    } else throw new Error(`--variants: '${part}' must be rows=..., cols=... or split=N`);
  }
  return o;
}

const rows: (string | number)[][] = [];
const results: unknown[] = [];
let source = 'wall';

for (const seqLen of sizes) {
  const maxRows = Math.min(seqLen, chunkRows);
  const chunks: { pos: number; rows: number; plan: SparsePlan }[] = [];
  for (let pos = 0; pos < seqLen; pos += maxRows) {
    const r = Math.min(maxRows, seqLen - pos);
    chunks.push({ pos, rows: r, plan: sparsePlan(pos, r, { ...DEFAULT_ATTENTION, attention: 'sample' }) });
  }
  // K (nKvHeads, seqLen, headDim): one random head repeated; q per chunk (rows, nHeads * headDim).
  const rng = new Rng(7);
  const kHead = rng.fillNormal(seqLen * headDim, 1);
  const k = createBuffer(ctx, nKvHeads * seqLen * headDim * 4, STORAGE.rw, 'bench_k');
  for (let h = 0; h < nKvHeads; h++) writeBuffer(ctx, k, h * seqLen * headDim * 4, kHead);
  const qs = chunks.map((c) => uploadBuffer(ctx, rng.fillNormal(c.rows * nHeads * headDim, 1), 'bench_q'));
  const params = createBuffer(ctx, chunks.length * 256, STORAGE.uniform, 'bench_params');
  chunks.forEach((c, i) =>
    ctx.device.queue.writeBuffer(
      params,
      i * 256,
      paramsWords({
        rows: c.rows,
        pos: c.pos,
        nHeads,
        nKvHeads,
        capacity: seqLen,
        window: c.plan.window,
        nSamp: c.plan.nSamp,
        sampBlock: c.plan.sampBlock,
        nBlocks: c.plan.nBlocks,
        nCols: c.plan.nCols,
        statsOffset: 0,
        scale: Math.LOG2E / Math.sqrt(headDim),
        alpha: 0.95,
      }),
    ),
  );
  const maxSamp = Math.max(...chunks.map((c) => c.plan.nSamp));
  const rowStats = createBuffer(ctx, nHeads * maxSamp * 8, STORAGE.rw, 'bench_row_stats'); // (nHeads, nSamp, 2)
  const colScores = createBuffer(ctx, nHeads * seqLen * 4, STORAGE.rw, 'bench_col_scores'); // (nHeads, capacity)
  const groupScores = createBuffer(ctx, nKvHeads * seqLen * 4, STORAGE.rw, 'bench_group_scores'); // (nKvHeads, capacity)
  // Scores each kernel computes (for TFLOP/s): row stats over [0, i], columns j + w <= i.
  let rowScores = 0,
    colScoreCount = 0;
  for (const c of chunks) {
    for (let r = 0; r < c.plan.nSamp; r++) {
      const i = c.pos + sampleRow(r, c.rows, c.plan);
      rowScores += i + 1;
      colScoreCount += Math.max(0, i + 1 - c.plan.window);
    }
  }
  const flops = 2 * headDim * nHeads * (rowScores + colScoreCount);

  let denseMs: number | undefined;
  if (args.dense) {
    const attn = await PrefillAttention.create(ctx, { nHeads, nKvHeads, headDim, kvDtype: 'f32', capacity: seqLen, maxRows }, { sparse: false });
    const out = createBuffer(ctx, maxRows * nHeads * headDim * 4, STORAGE.rw, 'bench_out');
    const t = await timeGpu(
      ctx,
      (enc, pass) => {
        const timer = { pass } as unknown as GpuTimer;
        chunks.forEach((c, i) =>
          attn.encode(enc, { q: qs[i], kv: { k, v: k }, out, pos: c.pos, rows: c.rows, layer: 0 }, { ...DEFAULT_ATTENTION, attention: 'dense' }, timer),
        );
      },
      { warmup: 1, iters: Math.min(iters, 3) },
    );
    denseMs = t.ms;
    releaseBuffer(ctx, out);
    attn.destroy();
  }

  let first: Float32Array[] | undefined;
  for (const v of variants) {
    let kernels: SampleKernels;
    try {
      kernels = await SampleKernels.create(ctx, { nHeads, nKvHeads, headDim, kvDtype: 'f32', capacity: seqLen }, { scores: v.opts });
    } catch (e) {
      // A tile that does not fit this device: report it and go on with the sweep.
      console.log(`S=${seqLen} ${v.name}: ${(e as Error).message}`);
      rows.push([seqLen, v.name, 'error', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
      continue;
    }
    // Cleared, so --check cannot pass on a previous variant's values.
    const clear = ctx.device.createCommandEncoder();
    for (const b of [rowStats, colScores, groupScores]) clear.clearBuffer(b);
    ctx.device.queue.submit([clear.finish()]);
    const splits: number[] = [];
    const time = (withCols: boolean) =>
      timeGpu(
        ctx,
        (enc, pass) => {
          splits.length = 0;
          chunks.forEach((c, i) => {
            const ps = enc.beginComputePass(pass('sampling'));
            kernels.encodeSampling(
              ps,
              { q: qs[i], k, rowStats, colScores, groupScores, params: { buffer: params, offset: i * 256, size: PARAMS_BYTES } },
              c.plan.nSamp,
              withCols ? c.plan.nCols : 0,
              c.pos + c.rows,
            );
            splits.push(kernels.scores.lastSplit);
            ps.end();
          });
        },
        { warmup: 1, iters },
      );
    const all = await time(true);
    const rowsOnly = await time(false);
    source = all.source;
    let check: Record<string, number> | undefined;
    if (args.check) {
      // The last chunk's outputs (the buffers hold it after the timed runs).
      const c = chunks[chunks.length - 1];
      const got = [await readF32(ctx, rowStats, nHeads * c.plan.nSamp * 2), await readF32(ctx, colScores), await readF32(ctx, groupScores)];
      if (!first) first = got;
      else
        check = {
          rowStats: maxRel(got[0], first[0]),
          colScores: maxRel(got[1], first[1], c.plan.nCols, seqLen),
          groupScores: maxRel(got[2], first[2], c.plan.nCols, seqLen),
        };
    }
    const plans = kernels.scores.plans;
    const tileName = (k: 'rows' | 'cols') => `${plans[k].bs}x${plans[k].bt}x${plans[k].rx}x${plans[k].ry}x${plans[k].dk}${plans[k].db ? ' db' : ''}`;
    rows.push([
      seqLen,
      v.name,
      tileName('rows'),
      tileName('cols'),
      runLength(splits),
      all.ms.toFixed(2),
      rowsOnly.ms.toFixed(2),
      (all.ms - rowsOnly.ms).toFixed(2),
      (flops / (all.ms * 1e-3) / 1e12).toFixed(2),
      denseMs ? denseMs.toFixed(1) : '-',
      denseMs ? `${((100 * all.ms) / denseMs).toFixed(1)}%` : '-',
      check ? `${check.rowStats.toExponential(1)}/${check.colScores.toExponential(1)}/${check.groupScores.toExponential(1)}` : '-',
    ]);
    results.push({
      seqLen,
      variant: v.name,
      nHeads,
      nKvHeads,
      headDim,
      chunkRows: maxRows,
      nSamp: chunks.map((c) => c.plan.nSamp),
      splits: [...splits],
      plans,
      ms: all.ms,
      allMs: all.all,
      rowsMs: rowsOnly.ms,
      flops,
      denseMs,
      check,
    });
    kernels.destroy();
  }
  for (const b of [k, params, rowStats, colScores, groupScores, ...qs]) releaseBuffer(ctx, b);
}

/** [6, 6, 6, 1] -> '6x3,1'. */
function runLength(xs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length;) {
    let j = i;
    while (j < xs.length && xs[j] === xs[i]) j++;
    out.push(j - i > 1 ? `${xs[i]}x${j - i}` : `${xs[i]}`);
    i = j;
  }
  return out.join(',');
}

/** Max |a - b| over the first `n` of every `stride` entries, relative to max |b|. */
function maxRel(a: Float32Array, b: Float32Array, n = a.length, stride = a.length): number {
  let d = 0,
    ref = 0;
  for (let base = 0; base < a.length; base += stride) {
    for (let i = base; i < base + n; i++) {
      d = Math.max(d, Math.abs(a[i] - b[i]));
      ref = Math.max(ref, Math.abs(b[i]));
    }
  }
  return ref > 0 ? d / ref : d;
}

finish(
  {
    bench: 'sampling',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: source,
    header: ['S', 'variant', 'rows tile', 'cols tile', 'split', 'ms', 'rows ms', 'cols ms', 'TFLOP/s', 'dense ms', 'of dense', 'check lse/col/group'],
    rows,
    results,
  },
  args.json,
);
ctx.destroy();
