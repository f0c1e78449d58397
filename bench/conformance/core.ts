/**
 * The GPU conformance check of the kernel tiers (issue 17), without any environment of its own: it takes
 * a GpuContext, the fixtures (as model sources and file bytes) and the structured synthetic model's
 * folder from its caller and returns the table rows, the JSON results and the failure count. Two entries
 * run it: bench/conformance.ts (Node + Dawn; the fixtures are paths) and bench/conformance-chromium.ts
 * (a page in Chromium, bench/conformance/page.ts; the fixtures are URLs of the runner's 127.0.0.1 server).
 * What it checks (per tier asked for: --kernels all|auto|f32,f16,tensor):
 *  - the tier's kernels against CPU references (f64) at odd shapes, and
 *  - the engine end to end, against the f32 tier with the same weights / KV formats (f32 / f32 for
 *    the f32 tier, f16 / f16 for the others):
 *      golden logits of both families (fixtures golden/, `short` and `long`): max abs
 *        difference <= 1% of max |logit|;
 *      stories260k's greedy text for 100 tokens: identical to run.c's (f32 tier) or to the f32
 *        tier's (others);
 *      stories260k top-1 agreement with the f32 tier over a 480-token story: >= 99.5%;
 *      the structured synthetic model (bench/synthetic, default the InternLM2-7B shape, q4, head
 *        dim 128, so the tensor tier's attention runs too): the first 16 greedy tokens identical to
 *        the f32 tier's at 8K and 32K, dense and SampleAttention (skipped with quick);
 *      no pipeline compiled after load (lateCompiles 0).
 * A tier named in `kernels` that the device lacks is a failure; with 'all' it is listed as unsupported.
 * One run at a time (the run's state is module-level).
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE } from '../../src/gpu/buffers.ts';
import { lateCompiles, precompile } from '../../src/gpu/pipelines.ts';
import type { GpuWeight, WeightFormat } from '../../src/gpu/formats.ts';
import { KERNEL_TIERS, resolveKernelTier, tierSupport, type KernelTier } from '../../src/gpu/tier.ts';
import { f16ToF32, f32ToF16 } from '../../src/loader/quant.ts';
import { Rng } from '../../src/util/rng.ts';
import { TensorLinear } from '../../kernels/linear_tensor.ts';
import { TensorAttention, TensorSparseAttention } from '../../kernels/attention_tensor.ts';
import { paramsWords } from '../../kernels/attention_prefill.ts';
import { samplingRef } from '../../kernels/sample_scores.ts';
import { TensorSampleScores } from '../../kernels/sample_scores_tensor.ts';
import { runF16Kernels } from './f16-kernels.ts';
import { LinearKernels, linearPipelineSpecs } from '../../kernels/linear.ts';
import { loadEngine, type DenseEngine } from '../../src/engine/index.ts';
import type { KvDtype } from '../../src/engine/types.ts';
import { openSource, type SourceInput } from '../../src/loader/sources.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import { compareLogits as goldenDiff, parseGolden } from '../../test/engine/golden-parse.ts';
import { compareLogits as agreement } from '../../test/helpers/agreement.ts';
import { STORY } from '../../test/helpers/story.ts';
import { syntheticPrompt } from '../synthetic/prompt.ts';
import { PRESETS, type StructuredOptions } from '../synthetic/structured.ts';
import type { BenchReport } from '../common.ts';

/** What the caller provides: the device, the fixtures and the structured model. */
export interface ConformanceEnv {
  ctx: GpuContext;
  /** A model folder of the fixtures (`relPath` such as 'golden/internlm2-tiny') as the loader takes it: a path in Node, a FileSource in a page. */
  fixture(relPath: string): SourceInput;
  /** The bytes of a fixture file ('stories260k/generation.golden.json'). */
  readFixture(relPath: string): Promise<Uint8Array>;
  /**
   * The structured synthetic model (bench/synthetic/) of preset `shape` with `o` as a model folder, and how to
   * let it go. Absent: the section is skipped, with `structuredSkip` as the reason in the table.
   */
  structured?(shape: string, o: { dtype: 'BF16'; seed: number; contextLength: number }): Promise<{ source: SourceInput; close(): Promise<void> }>;
  structuredSkip?: string;
  /** Progress lines (where the caller wants them). */
  lap?(what: string): void;
}

export interface ConformanceOptions {
  /** all (default: every tier this device supports), auto, or a list such as 'f32,tensor'. */
  kernels?: string;
  /** The lean run (CI): one golden family for f32, fewer kernel cases, no structured model. */
  quick?: boolean;
  /** The structured model: preset (default internlm2-7b; internlm2-tiny on a software adapter), lengths ('8192,32768'; '256'), weights (q4). */
  shape?: string;
  lengths?: string;
  weights?: string;
}

export interface ConformanceResult {
  report: BenchReport;
  failures: number;
}

export const HEADER = ['tier', 'check', 'case', 'value', 'bar', 'result'];

let ctx: GpuContext;
let env: ConformanceEnv;
let opts: ConformanceOptions;
let rng: Rng;
let rows: (string | number)[][];
let results: Record<string, unknown>[];
let failures: number;
let quick: boolean;

/** One checked figure: `value` against `bar` (at most, or at least with atLeast). */
function check(tier: string, what: string, shape: string, value: number, bar: number, o: { atLeast?: boolean; fmt?: (v: number) => string } = {}): void {
  const ok = Number.isFinite(value) && (o.atLeast ? value >= bar : value <= bar);
  if (!ok) failures++;
  const fmt = o.fmt ?? ((v: number) => v.toExponential(2));
  rows.push([tier, what, shape, fmt(value), `${o.atLeast ? '>=' : '<='} ${fmt(bar)}`, ok ? 'ok' : 'FAIL']);
  results.push({ tier, check: what, shape, value, bar, atLeast: !!o.atLeast, ok });
}

/** A pass / fail check with a note. */
function verdict(tier: string, what: string, shape: string, ok: boolean, note: string): void {
  if (!ok) failures++;
  rows.push([tier, what, shape, note, '-', ok ? 'ok' : 'FAIL']);
  results.push({ tier, check: what, shape, note, ok });
}

function record(tier: string, kernel: string, shape: string, err: number, bar: number): void {
  check(tier, kernel, shape, err, bar);
}

function upload(data: ArrayBufferView, label: string, usage = STORAGE.rw): GPUBuffer {
  const bytes = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
  const b = createBuffer(ctx, bytes, usage, label);
  const pad = new Uint8Array(bytes);
  pad.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  ctx.device.queue.writeBuffer(b, 0, pad);
  return b;
}

/** A random [rows, k] weight in `format` (the loader's packing), and its values as the kernel decodes them (f16-rounded). */
function weight(format: WeightFormat, rowsN: number, k: number, group: number): { w: GpuWeight; val: Float32Array; exact: Float32Array; bufs: GPUBuffer[] } {
  const n = rowsN * k;
  const val = new Float32Array(n);
  /** The values as the f32 kernels decode them (q * scale in f32). */
  const exact = new Float32Array(n);
  const r16 = (x: number) => f16ToF32(f32ToF16(x));
  let data: GPUBuffer;
  let scales: GPUBuffer | undefined;
  if (format === 'f32') {
    for (let e = 0; e < n; e++) val[e] = exact[e] = Math.fround(rng.next() - 0.5);
    data = upload(val, 'w');
  } else if (format === 'f16') {
    const h = new Uint16Array(n);
    for (let e = 0; e < n; e++) {
      h[e] = f32ToF16(rng.next() - 0.5);
      val[e] = f16ToF32(h[e]);
      exact[e] = val[e];
    }
    data = upload(h, 'w');
  } else {
    const sc = new Uint16Array(n / group);
    for (let g = 0; g < sc.length; g++) sc[g] = f32ToF16(0.01 + 0.05 * rng.next());
    const words = new Uint32Array(format === 'q8' ? n / 4 : n / 8);
    for (let e = 0; e < n; e++) {
      const s = f16ToF32(sc[Math.floor(e / group)]);
      if (format === 'q8') {
        const q = Math.floor(rng.next() * 256) - 128;
        words[e >> 2] |= (q & 255) << (8 * (e & 3));
        val[e] = r16(q * s);
        exact[e] = Math.fround(q * s);
      } else {
        const q = Math.floor(rng.next() * 16);
        words[e >> 3] |= q << (4 * (e & 7));
        val[e] = r16((q - 8) * s);
        exact[e] = Math.fround((q - 8) * s);
      }
    }
    data = upload(words, 'w');
    scales = upload(sc, 'scales');
  }
  const w: GpuWeight = {
    name: 'w',
    format,
    shape: [rowsN, k],
    groupSize: format === 'f16' || format === 'f32' ? 0 : group,
    parts: [{ rowStart: 0, rows: rowsN, data, scales }],
  };
  return { w, val, exact, bufs: scales ? [data, scales] : [data] };
}

/** One linear case on the tier's kernels: TensorLinear (tensor; f16-rounded x, bar 1e-3) or LinearKernels (f32; bar 1e-5). */
async function linearCase(
  lin: TensorLinear | LinearKernels,
  format: WeightFormat,
  m: number,
  n: number,
  k: number,
  opts: { group?: number; bias?: boolean; gateUp?: boolean } = {},
): Promise<void> {
  const group = opts.group ?? 32;
  const wr = opts.gateUp ? 2 * n : n;
  const tensor = lin instanceof TensorLinear;
  const { w, val: v16, exact, bufs } = weight(format, wr, k, group);
  const val = tensor ? v16 : exact;
  const x = new Float32Array(m * k).map(() => rng.next() * 2 - 1);
  const bias = new Float32Array(n).map(() => rng.next());
  const bx = upload(x, 'x');
  const bb = upload(bias, 'bias');
  const by = createBuffer(ctx, m * n * 4, STORAGE.rw, 'y');
  const a = { x: bx, w, y: by, rows: m, bias: opts.bias ? bb : undefined };
  const d = tensor ? lin.prepare(a, !!opts.gateUp) : opts.gateUp ? lin.prepareGateUp(a) : lin.prepare(a);
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  d.encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const y = await readF32(ctx, by, m * n);
  let maxErr = 0;
  let maxRef = 0;
  const r16 = tensor ? (v: number) => f16ToF32(f32ToF16(v)) : (v: number) => v;
  for (let t = 0; t < 200; t++) {
    const i = t === 0 ? m - 1 : Math.floor(rng.next() * m);
    const j = t === 0 ? n - 1 : Math.floor(rng.next() * n);
    const dot = (row: number) => {
      let s = 0;
      for (let q = 0; q < k; q++) s += r16(x[i * k + q]) * val[row * k + q];
      return s;
    };
    let ref = dot(j);
    if (opts.gateUp) ref = (ref / (1 + Math.exp(-ref))) * dot(n + j);
    else if (opts.bias) ref += bias[j];
    maxErr = Math.max(maxErr, Math.abs(ref - y[i * n + j]));
    maxRef = Math.max(maxRef, Math.abs(ref));
  }
  d.destroy();
  for (const b of [bx, bb, by, ...bufs]) releaseBuffer(ctx, b);
  const kind = opts.gateUp ? 'gate/up' : opts.bias ? '+bias' : '';
  record(
    tensor ? 'tensor' : 'f32',
    `linear ${format}${kind ? ' ' + kind : ''}`,
    `${m}x${n}x${k}${format === 'f16' || format === 'f32' ? '' : ' g' + group}`,
    maxErr / Math.max(maxRef, 1e-30),
    tensor ? 1e-3 : 1e-5,
  );
}

async function attentionCase(s: number, h: number, hkv: number, step: number, qScale = 1): Promise<void> {
  const d = 128;
  const cap = step + s + 3;
  const att = await TensorAttention.create(ctx, h, hkv);
  const q = new Float32Array(s * h * d).map(() => (rng.next() * 2 - 1) * qScale);
  const kh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const vh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const bq = upload(q, 'q');
  const bk = upload(kh, 'k');
  const bv = upload(vh, 'v');
  const bo = createBuffer(ctx, q.byteLength, STORAGE.rw, 'o');
  const disp = att.prepare({ q: bq, k: bk, v: bv, out: bo, nHeads: h, nKvHeads: hkv, capacity: cap }, () => ({ rows: s, step }));
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  disp.encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const o = await readF32(ctx, bo, s * h * d);
  const g = h / hkv;
  let maxErr = 0;
  let maxRef = 0;
  for (let t = 0; t < 48; t++) {
    const i = t === 0 ? s - 1 : t === 1 ? 0 : Math.floor(rng.next() * s);
    const head = Math.floor(rng.next() * h);
    const kvh = Math.floor(head / g);
    const pos = step + i;
    const sc = new Float64Array(pos + 1);
    let mx = -Infinity;
    for (let j = 0; j <= pos; j++) {
      let acc = 0;
      for (let e = 0; e < d; e++) acc += q[(i * h + head) * d + e] * f16ToF32(kh[(kvh * cap + j) * d + e]);
      sc[j] = acc / Math.sqrt(d);
      mx = Math.max(mx, sc[j]);
    }
    let den = 0;
    for (let j = 0; j <= pos; j++) {
      sc[j] = Math.exp(sc[j] - mx);
      den += sc[j];
    }
    for (let e = 0; e < d; e++) {
      let acc = 0;
      for (let j = 0; j <= pos; j++) acc += sc[j] * f16ToF32(vh[(kvh * cap + j) * d + e]);
      const ref = acc / den;
      maxErr = Math.max(maxErr, Math.abs(ref - o[(i * h + head) * d + e]));
      maxRef = Math.max(maxRef, Math.abs(ref));
    }
  }
  disp.destroy();
  for (const b of [bq, bk, bv, bo]) releaseBuffer(ctx, b);
  record('tensor', 'attention dense causal', `S=${s} step=${step} ${h}q/${hkv}kv${qScale !== 1 ? ` qx${qScale}` : ''}`, maxErr / Math.max(maxRef, 1e-30), 1e-2);
}

/** One sparse-pass case: the selected columns of each unit, the units flagged dense, per-head selection. */
interface SparseCase {
  rows: number;
  nHeads: number;
  nKvHeads: number;
  step: number;
  window: number;
  /** Selected ids of unit u (any order; repeats and ids past the chunk's end are dropped). */
  cols: (u: number) => number[];
  /** Units the selection flagged dense (they attend to their whole causal range). */
  flagged?: number[];
  /** Per-head selection: one unit per query head (group 1, K/V head h / (nHeads / nKvHeads)). */
  perHead?: boolean;
}

/**
 * SampleAttention's fused sparse pass on the tensor cores (kernels/attention_tensor.wgsl `sparse`), fed
 * the selection's layout by hand: query i attends to its unit's ids j <= i - w and to its window
 * (i - w, i], each key once; a flagged unit attends to [0, i]. Against an f64 CPU reference over the
 * same keys (f16 K/V), bar 1e-2 of the largest |output| as the dense case.
 */
async function sparseCase(c: SparseCase): Promise<void> {
  const d = 128;
  const { rows: s, nHeads: h, nKvHeads: hkv, step, window: w } = c;
  const cap = step + s + 5;
  const g = h / hkv;
  const units = c.perHead ? h : hkv;
  const group = c.perHead ? 1 : g;
  const att = await TensorSparseAttention.create(ctx);
  const q = new Float32Array(s * h * d).map(() => rng.next() * 2 - 1);
  const kh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const vh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  // The selection's output: (units, cap + 1) [count, ids ascending], (units) dense flags, (units) flagged ids.
  const sel = new Uint32Array(units * (cap + 3));
  const lists: Set<number>[] = [];
  const flagged = new Set(c.flagged ?? []);
  for (let u = 0; u < units; u++) {
    const ids = [...new Set(c.cols(u).filter((j) => j >= 0 && j < step + s))].sort((a, b) => a - b);
    lists.push(new Set(ids));
    sel[u * (cap + 1)] = ids.length;
    sel.set(ids, u * (cap + 1) + 1);
    sel[units * (cap + 1) + u] = flagged.has(u) ? 1 : 0;
  }
  const params = paramsWords({
    rows: s,
    pos: step,
    nHeads: h,
    nKvHeads: units,
    capacity: cap,
    window: w,
    nSamp: 0,
    sampBlock: 1,
    nBlocks: 1,
    nCols: 0,
    statsOffset: 0,
    scale: Math.LOG2E / Math.sqrt(d),
    alpha: 1,
    kvDiv: c.perHead ? g : 1,
  });
  const bq = upload(q, 'q');
  const bk = upload(kh, 'k');
  const bv = upload(vh, 'v');
  const bs = upload(sel, 'sel');
  const bp = upload(new Uint8Array(params), 'params', STORAGE.uniform);
  const bo = createBuffer(ctx, q.byteLength, STORAGE.rw, 'o');
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  att.encode(pass, { q: bq, k: bk, v: bv, out: bo, sel: bs, params: { buffer: bp } }, s, units, group);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const o = await readF32(ctx, bo, s * h * d);
  let maxErr = 0;
  let maxRef = 0;
  for (let t = 0; t < 48; t++) {
    const i = t === 0 ? s - 1 : t === 1 ? 0 : Math.floor(rng.next() * s);
    const head = t === 0 ? h - 1 : Math.floor(rng.next() * h);
    const kvh = Math.floor(head / g);
    const u = c.perHead ? head : kvh;
    const pos = step + i;
    const keys: number[] = [];
    for (let j = 0; j <= pos; j++) if (flagged.has(u) || j + w > pos || lists[u].has(j)) keys.push(j);
    const sc = new Float64Array(keys.length);
    let mx = -Infinity;
    keys.forEach((j, n) => {
      let acc = 0;
      for (let e = 0; e < d; e++) acc += q[(i * h + head) * d + e] * f16ToF32(kh[(kvh * cap + j) * d + e]);
      sc[n] = acc / Math.sqrt(d);
      mx = Math.max(mx, sc[n]);
    });
    let den = 0;
    for (let n = 0; n < keys.length; n++) {
      sc[n] = Math.exp(sc[n] - mx);
      den += sc[n];
    }
    for (let e = 0; e < d; e++) {
      let acc = 0;
      keys.forEach((j, n) => (acc += sc[n] * f16ToF32(vh[(kvh * cap + j) * d + e])));
      const ref = acc / den;
      maxErr = Math.max(maxErr, Math.abs(ref - o[(i * h + head) * d + e]));
      maxRef = Math.max(maxRef, Math.abs(ref));
    }
  }
  for (const b of [bq, bk, bv, bs, bp, bo]) releaseBuffer(ctx, b);
  const nSel = lists.reduce((a, l) => a + l.size, 0);
  const shape = `S=${s} step=${step} ${h}q/${hkv}kv w=${w} ${nSel} ids${c.flagged?.length ? ` ${c.flagged.length} dense` : ''}${c.perHead ? ' per head' : ''}`;
  record('tensor', 'attention sparse pass', shape, maxErr / Math.max(maxRef, 1e-30), 1e-2);
}

/** One sampling-phase case: `want` sampled rows in blocks of `sampBlock` (the engine's sparsePlan rule), window w. */
interface SamplingCase {
  rows: number;
  nHeads: number;
  nKvHeads: number;
  step: number;
  window: number;
  sampBlock: number;
  want: number;
  qScale?: number;
}

/**
 * SampleAttention's sampling phase on the tensor cores (kernels/sample_scores_tensor.wgsl `rows` then
 * `cols`) against the f64 CPU reference of the f32 kernels (kernels/sample_scores.ts samplingRef) on the
 * same f16 K and f16-rounded q: lse (log2 units) and window mass of every sampled (row, head) within
 * 1e-2 absolute; column scores and group sums within 1e-2 of the largest.
 */
async function samplingCase(c: SamplingCase): Promise<void> {
  const d = 128;
  const { rows: s, nHeads: h, nKvHeads: hkv, step, window: w } = c;
  const cap = step + s + 3;
  const sampBlock = Math.min(c.sampBlock, s);
  let nBlocks = Math.ceil(c.want / sampBlock);
  let nSamp = nBlocks * sampBlock;
  if (nSamp >= s) {
    nSamp = s;
    nBlocks = Math.ceil(s / sampBlock);
  }
  const nCols = Math.max(0, step + s - w);
  const sc = await TensorSampleScores.create(ctx, h, hkv);
  const q = new Float32Array(s * h * d).map(() => f16ToF32(f32ToF16((rng.next() * 2 - 1) * (c.qScale ?? 1))));
  const kh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const params = paramsWords({
    rows: s,
    pos: step,
    nHeads: h,
    nKvHeads: hkv,
    capacity: cap,
    window: w,
    nSamp,
    sampBlock,
    nBlocks,
    nCols,
    statsOffset: 0,
    scale: Math.LOG2E / Math.sqrt(d),
    alpha: 0.95,
  });
  const bq = upload(q, 'q');
  const bk = upload(kh, 'k');
  const bp = upload(new Uint8Array(params), 'params', STORAGE.uniform);
  const bRow = createBuffer(ctx, h * nSamp * 8, STORAGE.rw, 'rowStats');
  const bCol = createBuffer(ctx, h * cap * 4, STORAGE.rw, 'colScores');
  const bGrp = createBuffer(ctx, hkv * cap * 4, STORAGE.rw, 'groupScores');
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  sc.encode(pass, { q: bq, k: bk, rowStats: bRow, colScores: bCol, groupScores: bGrp, params: { buffer: bp } }, nSamp, nCols);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const [rowStats, colScores, groupScores] = [await readF32(ctx, bRow, h * nSamp * 2), await readF32(ctx, bCol, h * cap), await readF32(ctx, bGrp, hkv * cap)];
  const k = Float32Array.from(kh, f16ToF32);
  const ref = samplingRef(q, k, { nHeads: h, nKvHeads: hkv, headDim: d, seqLen: cap, rows: s, pos: step }, { nSamp, nBlocks, sampBlock, nCols, window: w });
  let rowErr = 0;
  for (let i = 0; i < h * nSamp * 2; i++) rowErr = Math.max(rowErr, Math.abs(rowStats[i] - ref.rowStats[i]));
  const colErr = (got: Float32Array, want: Float64Array, units: number) => {
    let err = 0;
    let top = 0;
    for (let u = 0; u < units; u++) {
      for (let j = 0; j < nCols; j++) {
        err = Math.max(err, Math.abs(got[u * cap + j] - want[u * nCols + j]));
        top = Math.max(top, Math.abs(want[u * nCols + j]));
      }
    }
    return err / Math.max(top, 1e-30);
  };
  for (const b of [bq, bk, bp, bRow, bCol, bGrp]) releaseBuffer(ctx, b);
  const shape = `S=${s} step=${step} ${h}q/${hkv}kv w=${w} ${nSamp} rows${c.qScale ? ` qx${c.qScale}` : ''}`;
  record('tensor', 'sampling row stats', shape, rowErr, 1e-2);
  record('tensor', 'sampling column scores', shape, Math.max(colErr(colScores, ref.colScores, h), colErr(groupScores, ref.groupScores, hkv)), 1e-2);
}

// ---- kernels against CPU references ----
async function kernelSection(tier: KernelTier): Promise<void> {
  if (tier === 'f32') {
    // f32 weights: the pipelines the f32 engine checks (run first) compiled already; quick: only those.
    type Case = [WeightFormat, number, number, number, { group?: number; bias?: boolean; gateUp?: boolean }];
    const cases: Case[] = [
      ['f32', 1, 128, 64, {}],
      ['f32', 130, 100, 64, { gateUp: true }],
    ];
    if (!quick) cases.push(['f32', 300, 200, 96, { bias: true }], ['q4', 130, 96, 128, { gateUp: true }]);
    const uses = cases.map(([format, m, n, k, o]) => ({
      format,
      groupSize: format === 'f16' || format === 'f32' ? 0 : (o.group ?? 32),
      shape: [o.gateUp ? 2 * n : n, k],
      gateUp: o.gateUp,
      bias: o.bias,
      rows: 'prefill' as const,
      maxRows: m,
    }));
    await precompile(ctx, linearPipelineSpecs(ctx, uses, { prefillDequantMinRows: 1 << 30 }));
    const lin = await LinearKernels.create(ctx, { prefillDequantMinRows: 1 << 30 });
    for (const [format, m, n, k, o] of cases) await linearCase(lin, format, m, n, k, o);
    lin.destroy();
  } else if (tier === 'tensor') {
    const lin = await TensorLinear.create(ctx, ['f16', 'q8', 'q4']);
    await linearCase(lin, 'f16', 1, 128, 64);
    await linearCase(lin, 'f16', 300, 200, 96, { bias: true });
    await linearCase(lin, 'q8', 257, 384, 128, { group: 64 });
    await linearCase(lin, 'q4', 7, 256, 128);
    await linearCase(lin, 'q4', 1000, 1030, 256, { group: 128, bias: true });
    await linearCase(lin, 'q4', 200, 192, 256, { gateUp: true });
    await linearCase(lin, 'f16', 130, 100, 64, { gateUp: true });
    await linearCase(lin, 'q8', 129, 320, 160, { group: 32, gateUp: true });
    lin.destroy();
    await attentionCase(1, 4, 1, 0);
    await attentionCase(64, 4, 1, 0);
    await attentionCase(200, 8, 2, 0);
    await attentionCase(130, 8, 2, 70);
    await attentionCase(333, 4, 4, 0);
    await attentionCase(77, 32, 2, 5);
    await attentionCase(300, 16, 1, 0, 8);
    // SampleAttention's sparse pass: ids before, inside and after rows' windows, several stripe tiles
    const spread = (n: number, span: number, seed: number) => Array.from({ length: n }, (_, k) => (k * 37 + seed * 11) % span);
    await sparseCase({ rows: 200, nHeads: 8, nKvHeads: 2, step: 0, window: 24, cols: (u) => [0, 1, 5, 17, 100 + u, 150, 180, 190, 199] });
    await sparseCase({ rows: 130, nHeads: 32, nKvHeads: 4, step: 70, window: 40, cols: (u) => [0, ...spread(70, 200, u)] });
    await sparseCase({ rows: 37, nHeads: 16, nKvHeads: 4, step: 300, window: 30, cols: (u) => [0, 2, 3, 250 + u, 320, 330] });
    await sparseCase({ rows: 1, nHeads: 32, nKvHeads: 4, step: 90, window: 10, cols: () => [0, 40, 85, 89, 90] });
    await sparseCase({ rows: 333, nHeads: 16, nKvHeads: 4, step: 0, window: 27, cols: (u) => spread(40, 333, u), flagged: [1, 3] });
    await sparseCase({ rows: 150, nHeads: 8, nKvHeads: 2, step: 20, window: 16, cols: (u) => [0, 7 * u, ...spread(33, 170, u)], perHead: true, flagged: [5] });
    await sparseCase({ rows: 100, nHeads: 32, nKvHeads: 4, step: 0, window: 100, cols: () => [0, 50] }); // window over every row: dense
    // SampleAttention's sampling phase: pair counts and column counts not multiples of 64, GQA 1 to 16, a chunk at pos > 0
    await samplingCase({ rows: 333, nHeads: 16, nKvHeads: 4, step: 0, window: 27, sampBlock: 7, want: 70 });
    await samplingCase({ rows: 130, nHeads: 32, nKvHeads: 4, step: 70, window: 40, sampBlock: 16, want: 64 });
    await samplingCase({ rows: 37, nHeads: 8, nKvHeads: 2, step: 300, window: 30, sampBlock: 8, want: 64 }); // every row sampled
    await samplingCase({ rows: 500, nHeads: 8, nKvHeads: 8, step: 0, window: 40, sampBlock: 16, want: 100, qScale: 4 });
    await samplingCase({ rows: 1, nHeads: 32, nKvHeads: 2, step: 90, window: 10, sampBlock: 16, want: 64 });
    await samplingCase({ rows: 100, nHeads: 4, nKvHeads: 1, step: 0, window: 100, sampBlock: 16, want: 64 }); // window over every row: no columns
  } else {
    // The f16 tier's kernels (bench/conformance/f16-kernels.ts).
    await runF16Kernels(ctx, record);
  }
}

// ---- the engine end to end ----
/** Weights and KV cache of a tier's engine checks (and of the f32 engine it is compared with). */
const formatsOf = (tier: KernelTier): { weights: WeightFormat; kvDtype: KvDtype } =>
  tier === 'f32' ? { weights: 'f32', kvDtype: 'f32' } : { weights: 'f16', kvDtype: 'f16' };

/** Loads `name` (its source `source`) on `tier`, runs `run`, and checks that nothing compiled after the load. */
async function withEngine<T>(
  tier: KernelTier,
  name: string,
  source: SourceInput,
  o: Parameters<typeof loadEngine>[2],
  run: (e: DenseEngine) => Promise<T>,
): Promise<T> {
  const late = lateCompiles(ctx);
  const e = await loadEngine(ctx, source, { ...o, kernels: tier });
  try {
    return await run(e);
  } finally {
    e.destroy();
    const n = lateCompiles(ctx) - late;
    if (n !== 0) verdict(tier, 'pipelines compiled after load', name, false, `${n} late`);
  }
}

async function goldenSection(tier: KernelTier): Promise<void> {
  const f = formatsOf(tier);
  for (const model of quick ? ['internlm2-tiny'] : ['chatglm2-tiny', 'internlm2-tiny']) {
    const dir = `golden/${model}`;
    const golden = parseGolden(await env.readFixture(`${dir}/golden.safetensors`));
    const cases = quick ? ['long'] : ['short', 'long'];
    await withEngine(tier, model, env.fixture(dir), { ...f, contextLength: 256, attention: { attention: 'dense' } }, async (e) => {
      for (const which of cases) {
        e.truncate(0);
        const ids = Array.from(golden.get(`${which}.input_ids`)!.data);
        const want = golden.get(`${which}.logits`)!.data as Float32Array;
        const { logits } = await e.prefill(ids, { allLogits: true });
        const c = goldenDiff(logits!, want, e.spec.vocabSize);
        check(tier, 'golden logits: max |d| / max |logit|', `${model} ${which} (${ids.length}) ${f.weights}/${f.kvDtype}`, c.maxErr / c.maxRef, 0.01);
      }
    });
  }
}

const STORIES = 'stories260k';
interface StoriesRun {
  greedy: number[];
  story?: Float32Array;
  vocab: number;
}

/** stories260k on `tier`: 100 greedy tokens from BOS, and (unless skipped) all-position logits of a 480-token story. */
async function storiesRun(tier: KernelTier, formats: { weights: WeightFormat; kvDtype: KvDtype }, story: boolean): Promise<StoriesRun> {
  const tok = await loadTokenizer(openSource(env.fixture(STORIES)));
  const ids = tok.encode(STORY, { bos: true }).slice(0, 480);
  return withEngine(
    tier,
    STORIES,
    env.fixture(STORIES),
    { ...formats, contextLength: 512, prefillChunk: 512, attention: { attention: 'dense' } },
    async (e) => {
      e.truncate(0);
      await e.prefill([1]);
      const greedy: number[] = [];
      for await (const id of e.decode({ maxTokens: 100 })) greedy.push(id);
      let logits: Float32Array | undefined;
      if (story) {
        e.truncate(0);
        logits = (await e.prefill(ids, { allLogits: true })).logits;
      }
      return { greedy, story: logits, vocab: e.spec.vocabSize };
    },
  );
}

async function storiesSection(tier: KernelTier, f32Runs: Map<string, StoriesRun>): Promise<void> {
  const f = formatsOf(tier);
  const key = `${f.weights}/${f.kvDtype}`;
  const golden = JSON.parse(new TextDecoder().decode(await env.readFixture(`${STORIES}/generation.golden.json`))) as {
    cases: { name: string; greedy_ids_first_100?: number[] }[];
  };
  const runC = golden.cases.find((c) => c.greedy_ids_first_100)!.greedy_ids_first_100!;
  if (tier === 'f32') {
    const r = await storiesRun('f32', f, false);
    const same = r.greedy.findIndex((id, i) => id !== runC[i]);
    verdict(
      tier,
      "stories260k greedy vs run.c's",
      `100 tokens from BOS ${key}`,
      same < 0 && r.greedy.length === 100,
      same < 0 ? 'identical' : `differs at token ${same}`,
    );
    return;
  }
  let ref = f32Runs.get(key);
  if (!ref) f32Runs.set(key, (ref = await storiesRun('f32', f, true)));
  const r = await storiesRun(tier, f, true);
  const same = r.greedy.findIndex((id, i) => id !== ref.greedy[i]);
  verdict(
    tier,
    "stories260k greedy vs the f32 tier's",
    `100 tokens from BOS ${key}`,
    same < 0 && r.greedy.length === 100,
    same < 0 ? 'identical' : `differs at token ${same}`,
  );
  const a = agreement(ref.story!, r.story!, ref.vocab);
  check(tier, 'stories260k top-1 agreement with f32', `480-token story ${key}`, a.top1, 0.995, { atLeast: true, fmt: (v) => `${(100 * v).toFixed(2)}%` });
}

/** The structured synthetic model: 16 greedy tokens at each length and attention mode, per tier. */
async function structuredSection(tierList: KernelTier[]): Promise<void> {
  const shape = String(opts.shape ?? (ctx.info.isSoftware ? 'internlm2-tiny' : 'internlm2-7b'));
  const preset = (PRESETS as Record<string, StructuredOptions>)[shape];
  if (!preset) throw new Error(`--shape: unknown '${shape}' (one of ${Object.keys(PRESETS).join(', ')})`);
  const lengths = String(opts.lengths ?? (ctx.info.isSoftware ? '256' : '8192,32768'))
    .split(',')
    .map(Number);
  const weights = String(opts.weights ?? 'q4') as WeightFormat;
  const steps = 16;
  const maxLen = Math.max(...lengths);
  const seed = 1;
  const synthContext = Math.max(maxLen + steps, preset.contextLength ?? 0);
  const folder = await env.structured!(shape, { dtype: 'BF16', seed, contextLength: synthContext });
  const source = folder.source;
  const minSparseLen = Math.min(...lengths);
  const greedyOf = new Map<string, number[]>();
  try {
    for (const tier of ['f32' as KernelTier, ...tierList.filter((t) => t !== 'f32')]) {
      await withEngine(tier, shape, source, { weights, kvDtype: 'f16', contextLength: maxLen + steps }, async (e) => {
        for (const n of lengths) {
          const ids = Array.from(syntheticPrompt({ seqLen: n, vocabSize: e.spec.vocabSize, seed, needles: 1 }).ids);
          for (const mode of ['dense', 'sample'] as const) {
            e.truncate(0);
            const p = await e.prefill(ids, { attention: { attention: mode, minSparseLen } });
            const greedy: number[] = [];
            for await (const id of e.decode({ maxTokens: steps })) greedy.push(id);
            const key = `${n}/${mode}`;
            if (tier === 'f32') {
              greedyOf.set(key, greedy);
              continue;
            }
            const ref = greedyOf.get(key)!;
            const at = greedy.findIndex((id, i) => id !== ref[i]);
            const sparse = p.sparsity ? `, ${p.sparsity.mode} area ${p.sparsity.meanAreaFraction.toFixed(3)}` : '';
            verdict(
              tier,
              "structured model: 16 greedy tokens vs f32's",
              `${shape} ${weights} S=${n} ${mode}`,
              at < 0 && greedy.length === steps,
              (at < 0 ? 'identical' : `differs at token ${at}`) + sparse,
            );
          }
        }
      });
    }
  } finally {
    await folder.close();
  }
}

/** Runs every section for the tiers asked for; the report is the one bench/common.ts's finish() prints and writes. */
export async function runConformance(e: ConformanceEnv, o: ConformanceOptions = {}): Promise<ConformanceResult> {
  env = e;
  ctx = e.ctx;
  opts = o;
  rng = new Rng(20261207);
  rows = [];
  results = [];
  failures = 0;
  quick = !!o.quick;
  // ---- the tiers to check ----
  const asked = String(o.kernels ?? 'all');
  const explicit = asked !== 'all';
  const wanted: KernelTier[] =
    asked === 'all'
      ? [...KERNEL_TIERS]
      : asked === 'auto'
        ? [resolveKernelTier(ctx, 'auto')]
        : asked.split(',').map((t) => {
            if (!(KERNEL_TIERS as readonly string[]).includes(t)) throw new Error(`--kernels: '${t}' is not all, auto or a tier (${KERNEL_TIERS.join(', ')})`);
            return t as KernelTier;
          });
  const tiers: KernelTier[] = [];
  for (const t of wanted) {
    const why = tierSupport(ctx, t);
    if (!why) tiers.push(t);
    else if (explicit) verdict(t, '*', '-', false, `unsupported: ${why}`);
    else {
      rows.push([t, '*', '-', `unsupported: ${why}`, '-', 'skipped']);
      results.push({ tier: t, unsupported: why });
    }
  }

  const f32Runs = new Map<string, StoriesRun>();
  const lap = (what: string) => e.lap?.(what);
  // (engines first: on SwiftShader, where compiling dominates, the f32 kernel cases then reuse their pipelines)
  for (const tier of tiers) {
    await goldenSection(tier);
    lap(`${tier} golden`);
    if (quick && tier === 'f32') continue; // (quick: the f32 tier's engine check is one golden family)
    await storiesSection(tier, f32Runs);
    lap(`${tier} stories`);
  }
  for (const tier of tiers) await kernelSection(tier);
  lap('kernels');
  const skip = quick
    ? 'skipped (--quick)'
    : !tiers.some((t) => t !== 'f32')
      ? 'skipped (only the f32 tier: nothing to compare)'
      : !e.structured
        ? `skipped (${e.structuredSkip ?? 'no structured model here'})`
        : undefined;
  if (!skip) await structuredSection(tiers);
  else rows.push(['*', 'structured model', '-', skip, '-', '-']);
  return {
    report: {
      bench: 'conformance',
      date: new Date().toISOString(),
      adapter: { ...ctx.info, features: [...ctx.features], limits: ctx.limits },
      timing: 'n/a',
      header: HEADER,
      rows,
      results,
    },
    failures,
  };
}
