/**
 * bench/kernels: kernel throughput at LLM shapes (Node + Dawn).
 *   npm run bench -- bench/kernels.ts [--json FILE] [--m 4096] [--prefill NxK,...]
 *     [--matvec OUTxIN,...] [--formats f32,f16,q8,q4] [--group 32]
 *     [--check] [--no-prefill] [--no-matvec]
 * On the GPU machine: npm run gpu:bundle -- bench/kernels.ts, then
 *   source .gpu/setup.sh && node .gpu/kernels.mjs --json $OUT/kernels.json
 *
 * Linear layers (kernels/linear.ts), weights of random bits generated here:
 * - prefill: y (M, N) = x (M, K) W^T, TFLOP/s = 2 M N K / time, per weight
 *   format, plus kernels/matmul.wgsl (f32) as the baseline, and the fused
 *   gate/up at N = 2 x 14336;
 * - decode: one row, matrix-vector, effective weight bandwidth = packed
 *   weight + scale bytes / time; several weight copies are rotated so the
 *   working set exceeds the L2 cache (every read comes from DRAM); 2-8 rows
 *   on the matrix-vector kernel against the GEMM (to place gemvMaxRows).
 *   (The tunable sweeps of the GEMM and the matrix-vector kernel live in git
 *   history: before issue 16 the kernels took their tunables as options.)
 * --check compares rows of the same shape (gate/up, several rows) with the first.
 * Median of 5 timed runs after 2 warm-ups (matrix-vector: 3 warm-ups, passes of
 * ~40 GB of weight reads); timestamp queries when present.
 * A failing row prints its error and the run goes on.
 */
import { getGpu, type GpuContext } from '../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { timeGpu } from './timing.ts';
import type { WeightFormat } from '../src/loader/formats.ts';
import { Rng } from '../src/util/rng.ts';
import { MatmulF32 } from './matmul.ts';
import { LinearKernels } from '../kernels/linear.ts';

/** The matrix-vector kernel's tunables (consts of kernels/linear.wgsl), for the JSON. */
type GemvConfig = { tk: number; rpt: number; ng: number; unroll: number };
const DEFAULT_GEMV: GemvConfig = { tk: 32, rpt: 4, ng: 4, unroll: 2 };
import type { Dispatch } from '../src/engine/types.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { filledBuffer, randomBlocks, randomWeight as makeRandomWeight, type BlockKind } from './random-weights.ts';

const args = benchArgs({
  m: { type: 'string' },
  prefill: { type: 'string' },
  matvec: { type: 'string' },
  formats: { type: 'string' },
  group: { type: 'string' },
  check: { type: 'boolean' },
  'no-prefill': { type: 'boolean' },
  'no-matvec': { type: 'boolean' },
});
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const M = Number(args.m ?? (soft ? 64 : 4096));
const pairs = (s: string) => s.split(',').map((t) => t.split('x').map(Number) as [number, number]);
const prefillShapes = pairs(String(args.prefill ?? (soft ? '256x256,512x256' : '4096x4096,14336x4096,4096x14336')));
const matvecShapes = pairs(String(args.matvec ?? (soft ? '512x256,256x512' : '14336x4096,4096x14336')));
const formats = String(args.formats ?? 'f32,f16,q8,q4').split(',') as WeightFormat[];
const GROUP = Number(args.group ?? 32);
const L2_BYTES = 64 << 20; // rotate weight copies until the working set is at least this (H100: 50 MiB L2)

const header = ['kernel', 'weights', 'shape', 'time', 'TFLOP/s', 'GB/s'];
const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
let timing = 'wall';

// ---- random buffers ---------------------------------------------------------

const rng = new Rng(7);
/** 1 MiB blocks of words valid for each format, tiled over the buffers. */
const blocks = randomBlocks(rng, 1 << 18);
const filled = (bytes: number, kind: BlockKind, label: string) => filledBuffer(ctx, blocks, bytes, kind, label);
/** One weight [out, in] in `format`, split into parts that fit a binding. */
const randomWeight = (format: WeightFormat, out: number, inDim: number) => makeRandomWeight(ctx, blocks, format, out, inDim, GROUP);

// ---- timing -----------------------------------------------------------------

async function time(dispatches: Dispatch[], label: string, warmup = 2): Promise<{ ms: number; all: number[] }> {
  ctx.device.pushErrorScope('validation');
  ctx.device.pushErrorScope('out-of-memory');
  const t = await timeGpu(
    ctx,
    (enc, pass) => {
      const p = enc.beginComputePass(pass(label));
      for (const d of dispatches) d.encode(p);
      p.end();
    },
    { warmup, iters: 5 },
  );
  const oom = await ctx.device.popErrorScope();
  const val = await ctx.device.popErrorScope();
  if (oom || val) throw new Error((oom ?? val)!.message);
  timing = t.source;
  return { ms: t.ms / dispatches.length, all: t.all };
}

async function row(name: string, fn: () => Promise<void>): Promise<void> {
  if (ctx.isLost) return;
  try {
    await fn();
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0].slice(0, 160);
    rows.push([name, '', '', 'error', '', msg]);
    results.push({ kernel: name, error: msg });
  }
}

// ---- prefill: GEMM ------------------------------------------------------------

/** First prefill result per format and shape (all inputs are deterministic), to check the swept variants against. */
const prefillRef = new Map<string, Float32Array>();
const SAMPLE = 1 << 16; // f32 of y compared (spread over the rows)

/** Max |y - first y| over a strided sample of y for this format and shape (0 on the first call). */
async function checkPrefill(key: string, y: GPUBuffer, total: number): Promise<number> {
  const all = await readF32(ctx, y, total);
  const step = Math.max(1, Math.floor(total / SAMPLE));
  const got = new Float32Array(Math.min(SAMPLE, total));
  for (let i = 0; i < got.length; i++) got[i] = all[i * step];
  const ref = prefillRef.get(key);
  if (!ref) {
    prefillRef.set(key, got);
    return 0;
  }
  let err = 0;
  let scale = 0;
  for (let i = 0; i < got.length; i++) {
    err = Math.max(err, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / Math.max(scale, 1e-30);
}

async function prefill(lin: LinearKernels, tag: string, shapes: [number, number][], fmts: WeightFormat[], full: boolean): Promise<void> {
  const mm = await MatmulF32.create(ctx);
  for (const [n, k] of shapes) {
    const flops = 2 * M * n * k;
    const x = filled(M * k * 4, 'f32', 'x');
    const y = createBuffer(ctx, M * n * 4, STORAGE.rw, 'y');
    try {
      if (full)
        await row('matmul_f32 (baseline)', async () => {
          const b = filled(n * k * 4, 'f32', 'b');
          const dims = mm.dimsBuffer({ m: M, n, k });
          try {
            const d: Dispatch = { encode: (p) => mm.encode(p, x, b, y, dims, { m: M, n, k }), destroy() {} };
            const t = await time([d], 'matmul');
            rows.push(['matmul_f32 (baseline)', 'f32', `${M}x${n}x${k}`, `${t.ms.toFixed(3)} ms`, (flops / t.ms / 1e9).toFixed(2), '']);
            results.push({ kernel: 'matmul_f32', format: 'f32', m: M, n, k, ms: t.ms, allMs: t.all, tflops: flops / t.ms / 1e9 });
          } finally {
            releaseBuffer(ctx, b);
            releaseBuffer(ctx, dims);
          }
        });
      for (const format of fmts) {
        await row(`linear_gemm ${tag} ${format}`, async () => {
          const w = randomWeight(format, n, k);
          const d = lin.prepare({ x, w: w.w, y, rows: M });
          try {
            const t = await time([d], 'linear_gemm');
            // (--check: the readbacks seemed to slow the later matrix-vector rows on the H100.)
            const relErr = args.check ? await checkPrefill(`${format} ${n}x${k}`, y, M * n) : 0;
            const bad = relErr > 1e-5 ? ` WRONG (rel err ${relErr.toExponential(2)})` : '';
            rows.push([`linear_gemm ${tag}${bad}`, format, `${M}x${n}x${k}`, `${t.ms.toFixed(3)} ms`, (flops / t.ms / 1e9).toFixed(2), '']);
            results.push({ kernel: 'linear_gemm', config: tag, format, group: GROUP, m: M, n, k, ms: t.ms, allMs: t.all, tflops: flops / t.ms / 1e9, relErr });
          } finally {
            d.destroy();
            for (const b of w.buffers) releaseBuffer(ctx, b);
          }
        });
      }
    } finally {
      releaseBuffer(ctx, x);
      releaseBuffer(ctx, y);
    }
  }
  if (!full) return;
  // Fused gate/up at the MLP shape of the first matvec shape (2F x dim).
  const [f, dim] = matvecShapes[0];
  const x = filled(M * dim * 4, 'f32', 'x');
  const y = createBuffer(ctx, M * f * 4, STORAGE.rw, 'y');
  try {
    for (const format of formats.filter((fm) => fm !== 'f32')) {
      await row(`linear_gemm gate/up ${format}`, async () => {
        const w = randomWeight(format, 2 * f, dim);
        const d = lin.prepareGateUp({ x, w: w.w, y, rows: M });
        const flops = 2 * M * 2 * f * dim;
        try {
          const t = await time([d], 'gate_up');
          rows.push(['linear_gemm gate/up', format, `${M}x${2 * f}x${dim}`, `${t.ms.toFixed(3)} ms`, (flops / t.ms / 1e9).toFixed(2), '']);
          results.push({ kernel: 'linear_gemm_gate_up', format, group: GROUP, m: M, n: 2 * f, k: dim, ms: t.ms, allMs: t.all, tflops: flops / t.ms / 1e9 });
        } finally {
          d.destroy();
          for (const b of w.buffers) releaseBuffer(ctx, b);
        }
      });
    }
  } finally {
    releaseBuffer(ctx, x);
    releaseBuffer(ctx, y);
  }
}

// ---- decode: matrix-vector -----------------------------------------------------

/** First matrix-vector y per format, shape, rows and gate/up (the default config's), to check the swept configs against. */
const matvecRef = new Map<string, Float32Array>();

/** Max |y - first y| / max |first y| for this key (0 on the first call). */
async function checkMatvec(key: string, y: GPUBuffer, n: number): Promise<number> {
  const got = await readF32(ctx, y, n);
  const ref = matvecRef.get(key);
  if (!ref) {
    matvecRef.set(key, got);
    return 0;
  }
  let err = 0;
  let scale = 0;
  for (let i = 0; i < n; i++) {
    err = Math.max(err, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return Number.isNaN(err) ? Infinity : err / Math.max(scale, 1e-30);
}

async function matvec(
  lin: LinearKernels,
  cfg: GemvConfig | undefined,
  tag: string,
  fmts: WeightFormat[],
  gateUp = false,
  nRows = 1,
  shapes = matvecShapes,
): Promise<void> {
  for (const [out, inDim] of shapes) {
    const x = filled(nRows * inDim * 4, 'f32', 'x');
    const y = createBuffer(ctx, nRows * out * 4, STORAGE.rw, 'y');
    try {
      for (const format of fmts) {
        const name = `linear_${cfg ? 'gemv' : 'gemm'}${gateUp ? ' gate/up' : ''} ${tag}`;
        await row(name, async () => {
          const one = randomWeight(format, gateUp ? 2 * out : out, inDim);
          for (const b of one.buffers) releaseBuffer(ctx, b);
          const copies = soft ? 1 : Math.max(1, Math.ceil(L2_BYTES / one.bytes));
          const ws = Array.from({ length: copies }, () => randomWeight(format, gateUp ? 2 * out : out, inDim));
          const ds = ws.map((w) => (gateUp ? lin.prepareGateUp({ x, w: w.w, y, rows: nRows }) : lin.prepare({ x, w: w.w, y, rows: nRows })));
          // Enough dispatches per timed pass for ~40 GB of weight reads (~20 ms at 2 TB/s): with
          // short passes (64 dispatches, 1.5 ms) the GPU idled between the awaited passes and
          // the same kernel measured 2-4x apart from row to row (H100, 06:40-06:45 runs).
          const reps = soft ? 2 : copies * Math.min(Math.ceil(4096 / copies), Math.max(Math.ceil(64 / copies), Math.ceil(40e9 / (one.bytes * copies))));
          const seq = Array.from({ length: reps }, (_, i) => ds[i % copies]);
          try {
            const t = await time(seq, 'gemv', 3);
            const gbs = ws[0].bytes / t.ms / 1e6;
            const shape = `${nRows}x${gateUp ? 2 * out : out}x${inDim}`;
            const relErr = args.check ? await checkMatvec(`${format} ${shape}${gateUp ? ' gate/up' : ''}`, y, nRows * out) : 0;
            const bad = relErr > 1e-4 ? ` WRONG (rel err ${relErr.toExponential(2)})` : '';
            rows.push([name + bad, format, shape, `${(t.ms * 1e3).toFixed(1)} us`, '', gbs.toFixed(soft ? 3 : 0)]);
            results.push({
              kernel: cfg ? 'linear_gemv' : 'linear_gemm',
              gateUp,
              config: cfg ?? 'gemm',
              tag,
              format,
              group: GROUP,
              rows: nRows,
              out: gateUp ? 2 * out : out,
              in: inDim,
              weightBytes: ws[0].bytes,
              us: t.ms * 1e3,
              gbPerS: gbs,
              copies,
              reps,
              relErr,
            });
          } finally {
            for (const d of ds) d.destroy();
            for (const w of ws) for (const b of w.buffers) releaseBuffer(ctx, b);
          }
        });
      }
    } finally {
      releaseBuffer(ctx, x);
      releaseBuffer(ctx, y);
    }
  }
}

const tagOf = (g: GemvConfig) => `${g.tk}x${g.rpt}x${g.ng}x${g.unroll}`;

async function main(c: GpuContext): Promise<void> {
  const lin = await LinearKernels.create(c);
  if (!args['no-prefill']) await prefill(lin, 'default', prefillShapes, formats, true);
  const d = DEFAULT_GEMV;
  if (!args['no-matvec']) await matvec(lin, d, tagOf(d), formats);
  if (!args['no-matvec']) {
    await matvec(
      lin,
      d,
      tagOf(d),
      formats.filter((f) => f === 'q4' || f === 'f16'),
      true,
    );
    // Few rows (short prompts, batched decode): matrix-vector up to 8 rows vs the GEMM, to place gemvMaxRows.
    for (const nRows of [2, 4, 8]) await matvec(lin, d, `${tagOf(d)} rows ${nRows}`, ['q4', 'f16'], false, nRows, matvecShapes.slice(0, 1));
    const gemmOnly = await LinearKernels.create(c, { gemvMaxRows: 0 });
    for (const nRows of [8, 32]) await matvec(gemmOnly, undefined, `rows ${nRows}`, ['q4', 'f16'], false, nRows, matvecShapes.slice(0, 1));
    gemmOnly.destroy();
  }
  lin.destroy();
}

await main(ctx);
finish({ bench: 'kernels', date: new Date().toISOString(), adapter: adapterRecord(ctx), timing, header, rows, results }, args.json);
ctx.destroy();
