/**
 * Attention cases shared by the Node tests (Dawn) and the browser test page
 * (Chromium): dense prefill vs the CPU reference, and SampleAttention vs dense
 * on generated Q/K/V. Each returns its measurements or throws.
 */
import type { ScoreOptions } from '../../kernels/sample_scores.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { f16ToF32 } from '../../src/loader/quant.ts';
import { packF16, unpackF16 } from '../helpers/quant.ts';
import { DEFAULT_ATTENTION, type AttentionOptions, type HeadStats, type KvDtype } from '../../src/engine/types.ts';
import { PrefillAttention } from '../../src/attention/index.ts';
import { attentionRef, type TileOverrides } from '../../kernels/attention_prefill.ts';
import { syntheticQkv, type SyntheticSpec } from '../../bench/synthetic/qkv.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertClose, relL2 } from '../helpers/compare.ts';

export interface DenseShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Query rows of the chunk and its first position. */
  rows: number;
  pos: number;
  kvDtype?: KvDtype;
  /** Extra cache positions beyond pos + rows (the cache is larger than the sequence). */
  slack?: number;
}

export const DENSE_SHAPES: DenseShape[] = [
  { nHeads: 1, nKvHeads: 1, headDim: 8, rows: 1, pos: 0 },
  { nHeads: 4, nKvHeads: 4, headDim: 32, rows: 37, pos: 0, slack: 5 },
  { nHeads: 4, nKvHeads: 2, headDim: 64, rows: 70, pos: 0 },
  { nHeads: 8, nKvHeads: 2, headDim: 128, rows: 33, pos: 17, slack: 3 },
  { nHeads: 4, nKvHeads: 2, headDim: 64, rows: 1, pos: 90, kvDtype: 'f16' },
  { nHeads: 2, nKvHeads: 1, headDim: 6, rows: 29, pos: 3, kvDtype: 'f16' },
  { nHeads: 16, nKvHeads: 1, headDim: 32, rows: 45, pos: 0 },
  { nHeads: 3, nKvHeads: 3, headDim: 10, rows: 20, pos: 0 },
];

export function shapeName(s: DenseShape): string {
  return `Hq${s.nHeads}/Hkv${s.nKvHeads} D${s.headDim} rows${s.rows} pos${s.pos} ${s.kvDtype ?? 'f32'}`;
}

/** K/V [nKvHeads, seqLen, headDim] copied into a cache [nKvHeads, capacity, headDim] of the dtype. */
export function uploadKv(
  ctx: GpuContext,
  x: Float32Array,
  nKvHeads: number,
  seqLen: number,
  headDim: number,
  capacity: number,
  dtype: KvDtype,
  label: string,
): GPUBuffer {
  const full = new Float32Array(nKvHeads * capacity * headDim);
  for (let h = 0; h < nKvHeads; h++) full.set(x.subarray(h * seqLen * headDim, (h + 1) * seqLen * headDim), h * capacity * headDim);
  return uploadBuffer(ctx, dtype === 'f16' ? packF16(full) : full, label);
}

/** What the GPU sees of K/V after storage (f16 rounding). */
export function asStored(x: Float32Array, dtype: KvDtype): Float32Array {
  return dtype === 'f16' ? unpackF16(packF16(x), x.length) : x;
}

/** Element e of a KV cache buffer's contents in `dtype` (f16: two halves per u32, low first). */
export function cacheValue(words: Uint32Array, e: number, dtype: KvDtype): number {
  if (dtype === 'f32') return new Float32Array(words.buffer, words.byteOffset, words.length)[e];
  return f16ToF32((words[e >> 1] >>> ((e & 1) * 16)) & 0xffff);
}

export interface AttentionRun {
  out: Float32Array;
  stats: HeadStats[];
  selection: number[][];
}

/**
 * Runs PrefillAttention on q rows [pos, pos + rows) of q (seqLen, nHeads * headDim)
 * against k, v (nKvHeads, seqLen, headDim), seqLen >= pos + rows.
 */
export async function runPrefill(
  ctx: GpuContext,
  qkv: { q: Float32Array; k: Float32Array; v: Float32Array },
  d: { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; rows: number; pos: number; kvDtype?: KvDtype; slack?: number },
  opts: AttentionOptions,
  gpuOpts: { subgroups?: boolean; sparse?: boolean; tile?: TileOverrides; scores?: ScoreOptions } = {},
): Promise<AttentionRun> {
  const dtype = d.kvDtype ?? 'f32';
  const capacity = d.seqLen + (d.slack ?? 0);
  const rowW = d.nHeads * d.headDim;
  const attn = await PrefillAttention.create(
    ctx,
    {
      nHeads: d.nHeads,
      nKvHeads: d.nKvHeads,
      headDim: d.headDim,
      kvDtype: dtype,
      capacity,
      maxRows: Math.max(d.rows, 1),
    },
    { sparse: opts.attention === 'sample', ...gpuOpts },
  );
  const bufs: GPUBuffer[] = [];
  try {
    const q = uploadBuffer(ctx, qkv.q.subarray(d.pos * rowW, (d.pos + d.rows) * rowW), 'q');
    const k = uploadKv(ctx, qkv.k, d.nKvHeads, d.seqLen, d.headDim, capacity, dtype, 'k');
    const v = uploadKv(ctx, qkv.v, d.nKvHeads, d.seqLen, d.headDim, capacity, dtype, 'v');
    const out = createBuffer(ctx, d.rows * rowW * 4, STORAGE.rw, 'out');
    bufs.push(q, k, v, out);
    const enc = ctx.device.createCommandEncoder({ label: 'attention-test' });
    attn.encode(enc, { q, kv: { k, v }, out, pos: d.pos, rows: d.rows, layer: 0 }, opts);
    ctx.device.queue.submit([enc.finish()]);
    const got = await readF32(ctx, out, d.rows * rowW);
    const stats = await attn.readStats();
    const selection = await attn.readSelection();
    return { out: got, stats, selection };
  } finally {
    for (const b of bufs) releaseBuffer(ctx, b);
    attn.destroy();
  }
}

export const DENSE_OPTS: AttentionOptions = { ...DEFAULT_ATTENTION, attention: 'dense' };

/** Dense prefill vs the CPU reference; returns the max abs error (throws past tolerance). */
export async function runDenseCase(ctx: GpuContext, s: DenseShape, seed = 3, gpuOpts: { subgroups?: boolean; tile?: TileOverrides } = {}): Promise<number> {
  const seqLen = s.pos + s.rows;
  const rng = new Rng(seed);
  const q = rng.fillNormal(seqLen * s.nHeads * s.headDim);
  const k = rng.fillNormal(s.nKvHeads * seqLen * s.headDim);
  const v = rng.fillNormal(s.nKvHeads * seqLen * s.headDim);
  const dtype = s.kvDtype ?? 'f32';
  const { out } = await runPrefill(ctx, { q, k, v }, { ...s, seqLen }, DENSE_OPTS, gpuOpts);
  const rowW = s.nHeads * s.headDim;
  const want = attentionRef(q.subarray(s.pos * rowW), asStored(k, dtype), asStored(v, dtype), { ...s, seqLen });
  return assertClose(out, want, `dense attention ${shapeName(s)}`, 2e-5, 2e-5).maxAbs;
}

/** Planted/random case: sparse vs dense (CPU reference), CRA over all rows, needle ratio. */
export interface SparseCaseResult {
  relL2: number;
  /** Mean over rows and heads of the exact attention mass inside the kept keys. */
  craAll: number;
  /** Sampled-row CRA the kernel reported (mean over heads). */
  craSampled: number;
  meanSelected: number;
  areaFraction: number;
  /** Projection of the last rows' outputs on the needle value, sparse over dense (undefined without needle). */
  needleRatio?: number;
  /** True when the needle column was selected (or in the window) for every KV group. */
  needleSelected?: boolean;
}

/** Exact softmax rows and dense outputs of the last cases (the same inputs are run at several alphas). */
const denseCache = new Map<string, { probs: Float32Array[]; out: Float32Array }>();

type RefDims = { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; rows: number; pos: number };

/** Exact causal softmax of every (head, row): probs[h * rows + r] has pos + r + 1 entries (f64 math, f32 stored). */
export function exactProbs(q: Float32Array, k: Float32Array, d: RefDims): Float32Array[] {
  const { nHeads, nKvHeads, headDim: D, seqLen, rows, pos } = d;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(D);
  const s = new Float64Array(seqLen);
  const res: Float32Array[] = [];
  for (let h = 0; h < nHeads; h++) {
    const kb = Math.floor(h / group) * seqLen * D;
    for (let r = 0; r < rows; r++) {
      const i = pos + r;
      const qb = r * nHeads * D + h * D;
      let m = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < D; t++) dot += q[qb + t] * k[kb + j * D + t];
        s[j] = dot * scale;
        if (s[j] > m) m = s[j];
      }
      let l = 0;
      for (let j = 0; j <= i; j++) {
        s[j] = Math.exp(s[j] - m);
        l += s[j];
      }
      const pr = new Float32Array(i + 1);
      for (let j = 0; j <= i; j++) pr[j] = s[j] / l;
      res.push(pr);
    }
  }
  return res;
}

/** Dense attention output (rows, nHeads * headDim) from exactProbs rows and v (nKvHeads, seqLen, headDim). */
function probsTimesV(probs: Float32Array[], v: Float32Array, d: RefDims): Float32Array {
  const { nHeads, nKvHeads, headDim: D, seqLen, rows } = d;
  const group = nHeads / nKvHeads;
  const out = new Float32Array(rows * nHeads * D);
  const acc = new Float64Array(D);
  for (let h = 0; h < nHeads; h++) {
    const vb = Math.floor(h / group) * seqLen * D;
    for (let r = 0; r < rows; r++) {
      const pr = probs[h * rows + r];
      acc.fill(0);
      for (let j = 0; j < pr.length; j++) {
        const pj = pr[j];
        for (let t = 0; t < D; t++) acc[t] += pj * v[vb + j * D + t];
      }
      for (let t = 0; t < D; t++) out[r * nHeads * D + h * D + t] = acc[t];
    }
  }
  return out;
}

export async function runSparseCase(ctx: GpuContext, spec: SyntheticSpec, opts: Partial<AttentionOptions>, chunk?: { pos: number }): Promise<SparseCaseResult> {
  const qkv = syntheticQkv(spec);
  const { seqLen, nHeads, nKvHeads, headDim: D } = spec;
  const pos = chunk?.pos ?? 0;
  const rows = seqLen - pos;
  const o: AttentionOptions = { ...DEFAULT_ATTENTION, minSparseLen: 0, ...opts, attention: 'sample' };
  const run = await runPrefill(ctx, qkv, { nHeads, nKvHeads, headDim: D, seqLen, rows, pos }, o);
  const rowW = nHeads * D;
  const qc = qkv.q.subarray(pos * rowW);
  const dims = { nHeads, nKvHeads, headDim: D, seqLen, rows, pos };
  const key = JSON.stringify({ spec, pos });
  let ref = denseCache.get(key);
  if (!ref) {
    const probs = exactProbs(qc, qkv.k, dims);
    denseCache.set(key, (ref = { probs, out: probsTimesV(probs, qkv.v, dims) }));
  }
  const dense = ref.out;
  const w = run.stats[0].window;
  const group = nHeads / nKvHeads;
  const selSets = run.selection.map((ids) => new Set(ids));
  let craSum = 0;
  for (let h = 0; h < nHeads; h++) {
    const set = selSets[Math.floor(h / group)];
    for (let r = 0; r < rows; r++) {
      const i = pos + r;
      const pr = ref.probs[h * rows + r];
      let kept = 0;
      for (let j = 0; j <= i; j++) if (j > i - w || set.has(j)) kept += pr[j];
      craSum += kept;
    }
  }
  const craAll = craSum / (nHeads * rows);
  if (denseCache.size > 2) denseCache.delete(denseCache.keys().next().value!);
  const res: SparseCaseResult = {
    relL2: relL2(run.out, dense),
    craAll,
    craSampled: run.stats.reduce((a, s) => a + s.cra, 0) / run.stats.length,
    meanSelected: run.stats.reduce((a, s) => a + s.selected, 0) / run.stats.length,
    areaFraction: run.stats.reduce((a, s) => a + s.areaFraction, 0) / run.stats.length,
  };
  if (spec.needle !== undefined && qkv.needleValue) {
    const nRows = Math.min(spec.needleRows ?? 16, rows);
    let sp = 0,
      dn = 0;
    for (let r = rows - nRows; r < rows; r++) {
      for (let h = 0; h < nHeads; h++) {
        for (let t = 0; t < D; t++) {
          sp += run.out[r * rowW + h * D + t] * qkv.needleValue[t];
          dn += dense![r * rowW + h * D + t] * qkv.needleValue[t];
        }
      }
    }
    res.needleRatio = sp / dn;
    res.needleSelected = selSets.every((s) => s.has(spec.needle!) || spec.needle! > seqLen - 1 - w);
  }
  return res;
}

/** SampleAttention at alpha = 1 (every stripe selected) with a small window: rel L2 vs the dense CPU reference. */
export async function runSparseExactCase(
  ctx: GpuContext,
  d: { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; pos: number; windowRatio: number },
): Promise<number> {
  const qkv = syntheticQkv({ seqLen: d.seqLen, nHeads: d.nHeads, nKvHeads: d.nKvHeads, headDim: d.headDim, kind: 'planted', seed: 11 });
  const dims = { ...d, rows: d.seqLen - d.pos };
  const run = await runPrefill(ctx, qkv, dims, { ...DEFAULT_ATTENTION, attention: 'sample', minSparseLen: 0, alpha: 1, windowRatio: d.windowRatio });
  const want = attentionRef(qkv.q.subarray(d.pos * d.nHeads * d.headDim), qkv.k, qkv.v, dims);
  return relL2(run.out, want);
}
