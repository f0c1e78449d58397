/**
 * Launcher and CPU reference for kernels/sample_scores.wgsl: SampleAttention's
 * sampling phase (stage 1 row stats and stage 2 column scores) as two
 * register-tiled GEMM kernels of Q_s K^T. The outputs are those of the flash
 * 'sample' mode + kernels/sample_columns.wgsl (the 'flash' sampling kernel),
 * so kernels/sample_select.wgsl reads either. ScoreOptions.layout 'tr' swaps
 * either kernel for its GEMM-shaped form (kernels/sample_scores_tr.ts/.wgsl).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { GpuLimitError, InvalidOptionError } from '../src/errors.ts';
import { sampleRow, type SparsePlan } from '../src/attention/options.ts';
import { attentionHeader, bindAt, type AttentionDims, type TilePlan } from './attention_prefill.ts';
import source from './sample_scores.wgsl?raw';
import combineSource from './sample_scores_combine.wgsl?raw';
import { trScorePlan, trScoreSource } from './sample_scores_tr.ts';

/** Score tile of one kernel: BS stationary rows x BT streamed rows, RX x RY per thread, DK of headDim per staged chunk. */
export interface ScoreTile { bs: number; bt: number; rx: number; ry: number; dk: number }

/** Derived sizes (the WGSL constants). */
export interface ScorePlan extends ScoreTile {
  /** headDim chunks of dk. */
  nch: number;
  /** Threads per workgroup. */
  nt: number;
  xstr: number; ystr: number; gx: number; gy: number;
  xsLen: number; ysLen: number;
  smemBytes: number;
  /** Workgroup layout (absent: 'kv'). */
  layout?: ScoreLayout;
  /** 'tr': double-buffered chunks (one barrier per chunk). */
  db?: boolean;
}

export type ScoreKernel = 'rows' | 'cols';
/**
 * 'kv' (default): kernels/sample_scores.wgsl, the stationary operand in
 * workgroup memory, vec4 runs along headDim. 'tr': kernels/sample_scores_tr.wgsl,
 * both operands streamed in transposed chunks (4 rows per vec4), generated
 * straight-line code, unmasked epilogues where no mask applies (its column
 * kernel always runs the flat (head, row) stream).
 */
export type ScoreLayout = 'kv' | 'tr';

/** Tiles of both kernels and the row-stats kernel's key split (SamplingOptions of kernels/sample_attention.ts). */
export interface ScoreOptions {
  rows?: Partial<ScoreTile>;
  cols?: Partial<ScoreTile>;
  /**
   * Key-range splits of the row-stats kernel: 0 / undefined auto (split while
   * there are fewer than splitTarget workgroups), 1 never, N > 1 always N
   * (capped so each split keeps at least one K tile).
   */
  split?: number;
  /** Workgroups the auto split aims for (default 512, ~4 per SM of a 132-SM H100). */
  splitTarget?: number;
  /**
   * Column kernel: one stream of the group's (head, row) pairs in BT-row tiles
   * that may straddle heads (less padding when few rows reach the columns, as
   * in 4096-row chunks) instead of per-head tiles. Default false.
   */
  colsFlat?: boolean;
  /** Layout of each kernel (default DEFAULT_SCORE_LAYOUT for both; tiles then default to that layout's). */
  layout?: Partial<Record<ScoreKernel, ScoreLayout>>;
  /** 'tr' kernels: double-buffered chunks, one barrier per chunk instead of two (needs an even chunk count; default: on where the head allows it). */
  doubleBuffer?: boolean;
}

/** Auto split: at least this many K tiles per split. */
const MIN_SPLIT_TILES = 4;
export const DEFAULT_SPLIT_TARGET = 512;
/**
 * Default layout of both sampling kernels: 'tr' (GEMM-shaped 128x128 tiles,
 * operands prefetched into registers, double-buffered). H100, 12:00 UTC, at
 * 128K: sampling 195 ms vs 267 ms with 'kv' (34 vs 25 TFLOP/s), which takes
 * the attention op from 3.80x to 4.00x of dense.
 */
export const DEFAULT_SCORE_LAYOUT: ScoreLayout = 'tr';

/**
 * Splits of the row-stats kernel for nSamp sampled rows whose keys span up to
 * ~maxKeys: 1 when rowWgs (row blocks x KV heads) already reach the target.
 */
export function rowSplits(rowWgs: number, maxKeys: number, bt: number, split = 0, target = DEFAULT_SPLIT_TARGET): number {
  const tiles = Math.max(1, Math.ceil(maxKeys / bt));
  if (split >= 1) return Math.max(1, Math.min(Math.floor(split), tiles));
  if (rowWgs <= 0 || rowWgs >= target) return 1;
  return Math.max(1, Math.min(Math.ceil(target / rowWgs), Math.floor(tiles / MIN_SPLIT_TILES)));
}
const SMODE: Record<ScoreKernel, number> = { rows: 0, cols: 1 };

/**
 * Defaults: 64 x 128 score tiles, 4 x 8 per thread (256 threads), 16 floats of
 * headDim per chunk; bs shrinks to fit workgroup memory. H100, D 128, 32q/8kv:
 * sampling 4.4% of dense attention at 32K, 4.3% at 128K (64 x 64 x 4 x 4: 6.2%, 6.1%).
 */
export const DEFAULT_SCORE_TILE: ScoreTile = { bs: 64, bt: 128, rx: 4, ry: 8, dk: 16 };
/**
 * Defaults on software adapters (SwiftShader: tests, CI), where compile time
 * dominates: the 64 x 64 tiles take 3-10x longer to compile than the flash
 * kernels (D 8: 20 s vs 3 s with the machine loaded), 8 x 8 tiles ~2 s.
 */
export const SOFTWARE_SCORE_TILE: ScoreTile = { bs: 8, bt: 8, rx: 2, ry: 2, dk: 4 };

/** Parses 'BSxBTxRXxRYxDK' (bench flags); missing trailing fields keep the defaults. */
export function parseScoreTile(s: string): Partial<ScoreTile> {
  const v = s.split('x').map(Number);
  const keys: (keyof ScoreTile)[] = ['bs', 'bt', 'rx', 'ry', 'dk'];
  const t: Partial<ScoreTile> = {};
  keys.forEach((k, i) => { if (v[i] !== undefined && !Number.isNaN(v[i])) t[k] = v[i]; });
  return t;
}

/** Parses 'rows=BSxBTxRXxRYxDK,cols=...' (either part optional; ':' also separates) into per-kernel tiles. */
export function parseScoreTiles(s: string | undefined): { rows?: Partial<ScoreTile>; cols?: Partial<ScoreTile> } {
  const out: { rows?: Partial<ScoreTile>; cols?: Partial<ScoreTile> } = {};
  for (const part of (s ?? '').split(/[,:]/).filter(Boolean)) {
    const [key, tile] = part.split('=');
    if ((key !== 'rows' && key !== 'cols') || !tile) throw new InvalidOptionError('sampling tiles', `'${part}' must be rows=BSxBTxRXxRYxDK or cols=BSxBTxRXxRYxDK`);
    out[key] = parseScoreTile(tile);
  }
  return out;
}

const odd = (n: number) => (n % 2 === 0 ? n + 1 : n);

function sizes(ctx: GpuContext, headDim: number, kind: ScoreKernel, t: ScoreTile): ScorePlan {
  const dk4 = t.dk / 4;
  const nch = Math.ceil(Math.ceil(headDim / 4) / dk4);
  const tx = t.bs / t.rx, ty = t.bt / t.ry;
  const xstr = odd(nch * dk4), ystr = odd(dk4);
  const xsLen = kind === 'rows' ? Math.max(t.bs * xstr, ty * t.bs) : t.bs * xstr;
  const ysLen = kind === 'cols' ? Math.max(t.bt * ystr, Math.ceil((ty * t.bs) / 4)) : t.bt * ystr;
  const warp = tx % 8 === 0 && ty % 4 === 0;
  return {
    ...t, nch, nt: tx * ty, xstr, ystr, gx: warp ? 8 : tx, gy: warp ? 4 : 1, xsLen, ysLen,
    smemBytes: 16 * (xsLen + ysLen) + 12 * t.bt,
  };
}

/** Tile plan of one kernel for this device; overrides are checked, defaults shrink to fit. */
export function scorePlan(ctx: GpuContext, headDim: number, kind: ScoreKernel, over: Partial<ScoreTile> = {}): ScorePlan {
  const smem = ctx.limits.maxComputeWorkgroupStorageSize;
  const maxThreads = ctx.limits.maxComputeInvocationsPerWorkgroup;
  const t: ScoreTile = { ...(ctx.info.isSoftware ? SOFTWARE_SCORE_TILE : DEFAULT_SCORE_TILE), ...over };
  const fixed = (k: keyof ScoreTile) => over[k] !== undefined;
  // No chunk wider than the (vec4-padded) head.
  if (!fixed('dk')) t.dk = Math.min(t.dk, 4 * Math.ceil(headDim / 4));
  if (!fixed('bs') || !fixed('bt')) {
    while (sizes(ctx, headDim, kind, t).smemBytes > smem) {
      if (!fixed('bs') && t.bs > 8 && t.bs > t.rx) t.bs /= 2;
      else if (!fixed('bt') && t.bt > 8 && t.bt > t.ry) t.bt /= 2;
      else break;
    }
    // Every thread count check below needs TY >= RX and TX >= RY.
    while (!fixed('ry') && t.ry > 1 && t.bs / t.rx < t.ry) t.ry /= 2;
    while (!fixed('rx') && t.rx > 1 && t.bt / t.ry < t.rx) t.rx /= 2;
  }
  const bad = (why: string) => { throw new InvalidOptionError(`sampling.${kind}Tile`, why, { ...t, headDim }); };
  for (const k of ['rx', 'ry'] as const) if (![1, 2, 4, 8].includes(t[k])) bad(`${k} must be 1, 2, 4 or 8, got ${t[k]}`);
  if (!Number.isInteger(t.bs / t.rx) || t.bs < 1) bad(`bs ${t.bs} must be a positive multiple of rx ${t.rx}`);
  if (!Number.isInteger(t.bt / t.ry) || t.bt < 1) bad(`bt ${t.bt} must be a positive multiple of ry ${t.ry}`);
  if (!Number.isInteger(t.dk) || t.dk < 4 || t.dk % 4 !== 0) bad(`dk must be a positive multiple of 4, got ${t.dk}`);
  const plan = sizes(ctx, headDim, kind, t);
  if (plan.nt > maxThreads) bad(`${plan.nt} threads per workgroup, over this GPU's ${maxThreads}`);
  if (plan.nt < t.bs || plan.nt < t.bt) bad(`${plan.nt} threads per workgroup must cover bs ${t.bs} and bt ${t.bt} (bt / ry >= rx and bs / rx >= ry)`);
  if (plan.smemBytes > smem) bad(`needs ${plan.smemBytes} bytes of workgroup memory at headDim ${headDim}, over this GPU's ${smem}`);
  return plan;
}

/** `load_q4(off, d4)`: vec4 d4 of the q row starting at float offset `off`, zero past headDim. */
export function qAccess(headDim: number): string {
  if (headDim % 4 === 0) {
    return `@group(0) @binding(0) var<storage, read> qv: array<vec4<f32>>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${headDim / 4}u) { return vec4<f32>(0.0); }
  return qv[off / 4u + d4];
}\n`;
  }
  return `@group(0) @binding(0) var<storage, read> qv: array<f32>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { let d = d4 * 4u + c; if (d < ${headDim}u) { x[c] = qv[off + d]; } }
  return x;
}\n`;
}

/** WGSL of one kernel (exported for tests that compile it alone). */
export function scoreSource(dims: AttentionDims, kind: ScoreKernel, plan: ScorePlan, flat = false): string {
  // The header's flash tile constants are unused here; tpr 1 keeps it free of subgroups.
  const group = dims.nHeads / dims.nKvHeads;
  const flatRows = kind === 'cols' && flat;
  const header: TilePlan = { tpr: 1, nv: 1, dvp: 1, qr: 1, rpt: 1, bc: 1, rs: false, group };
  return attentionHeader(dims, header, {
    SMODE: SMODE[kind], FLAT: flatRows ? 1 : 0, GROUP: group, LH: flatRows ? group * plan.rx : 1, BS: plan.bs, BT: plan.bt, RX: plan.rx, RY: plan.ry, DK4: plan.dk / 4, NCH: plan.nch,
    XSTR: plan.xstr, YSTR: plan.ystr, GX: plan.gx, GY: plan.gy, XS_LEN: plan.xsLen, YS_LEN: plan.ysLen,
  }) + qAccess(dims.headDim) + source;
}

/** WGSL of the split combine. */
export function splitCombineSource(dims: AttentionDims): string {
  const flat: TilePlan = { tpr: 1, nv: 1, dvp: 1, qr: 1, rpt: 1, bc: 1, rs: false, group: dims.nHeads / dims.nKvHeads };
  return attentionHeader(dims, flat) + combineSource;
}

export class SampleScores {
  /** (nSplit, nHeads, nSamp) vec4 partials of the split row-stats kernel; made by the first encode (create allocates nothing), grown, never shrunk. */
  private scratch: GPUBuffer | undefined;
  /** Buffers outgrown by `scratch` (an encoder may still hold them), released by destroy(). */
  private retired: GPUBuffer[] = [];
  /** Splits of the last encode (benchmarks record them). */
  lastSplit = 1;

  private constructor(
    private ctx: GpuContext,
    private dims: AttentionDims,
    readonly plans: Record<ScoreKernel, ScorePlan>,
    private pipes: Record<ScoreKernel | 'combine', GPUComputePipeline>,
    private split: number,
    private splitTarget: number,
    readonly colsFlat: boolean,
  ) {}

  static async create(ctx: GpuContext, dims: AttentionDims, opts: ScoreOptions = {}): Promise<SampleScores> {
    const layout = { rows: opts.layout?.rows ?? DEFAULT_SCORE_LAYOUT, cols: opts.layout?.cols ?? DEFAULT_SCORE_LAYOUT };
    for (const k of ['rows', 'cols'] as const) {
      if (layout[k] !== 'kv' && layout[k] !== 'tr') throw new InvalidOptionError(`sampling.layout.${k}`, `must be 'kv' or 'tr', got ${JSON.stringify(layout[k])}`);
    }
    // 'tr' double buffering: as asked, else on wherever the head splits into an even number of chunks and fits.
    const trPlan = (k: ScoreKernel): ScorePlan => {
      if (opts.doubleBuffer !== undefined) return trScorePlan(ctx, dims.headDim, k, opts[k], opts.doubleBuffer);
      const single = trScorePlan(ctx, dims.headDim, k, opts[k], false);
      if (single.nch % 2 !== 0) return single;
      try { return trScorePlan(ctx, dims.headDim, k, opts[k], true); } catch { return single; }
    };
    const plan = (k: ScoreKernel): ScorePlan => (layout[k] === 'tr' ? { ...trPlan(k), layout: 'tr' } : scorePlan(ctx, dims.headDim, k, opts[k]));
    const plans = { rows: plan('rows'), cols: plan('cols') };
    const code = (k: ScoreKernel) => (layout[k] === 'tr'
      ? trScoreSource(dims, k, plans[k], qAccess(dims.headDim))
      : scoreSource(dims, k, plans[k], opts.colsFlat ?? true));
    const split = opts.split ?? 0;
    const splitTarget = opts.splitTarget ?? DEFAULT_SPLIT_TARGET;
    if (!Number.isInteger(split) || split < 0) throw new InvalidOptionError('sampling.split', `must be 0 (auto), 1 (off) or a split count, got ${split}`);
    if (!Number.isInteger(splitTarget) || splitTarget < 1) throw new InvalidOptionError('sampling.splitTarget', `must be a positive workgroup count, got ${splitTarget}`);
    const [rows, cols, combine] = await Promise.all([
      ...(['rows', 'cols'] as const).map((k) => getPipeline(ctx, { label: `sample_scores_${k}_${layout[k]}`, code: code(k) })),
      getPipeline(ctx, { label: 'sample_scores_combine', code: splitCombineSource(dims) }),
    ]);
    return new SampleScores(ctx, dims, plans, { rows, cols, combine }, split, splitTarget, layout.cols === 'tr' || (opts.colsFlat ?? true));
  }

  private destroyed = false;

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const buf of [...(this.scratch ? [this.scratch] : []), ...this.retired]) releaseBuffer(this.ctx, buf);
    this.scratch = undefined;
    this.retired = [];
  }

  private partials(bytes: number): GPUBuffer {
    if (!this.scratch || this.scratch.size < bytes) {
      if (this.scratch) this.retired.push(this.scratch);
      this.scratch = createBuffer(this.ctx, Math.max(bytes, 2 * (this.scratch?.size ?? 0)), STORAGE.rw, 'sample_scores_partials');
    }
    return this.scratch;
  }

  /**
   * Row stats of the nSamp sampled rows, then column scores and group sums of
   * columns [0, nCols). `maxKeys` (default nCols + 1) ~ keys the last sampled
   * row sees (pos + rows), for the split choice only.
   */
  encode(pass: GPUComputePassEncoder, b: {
    q: GPUBuffer; k: GPUBuffer; rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; params: GPUBufferBinding;
  }, nSamp: number, nCols: number, maxKeys = nCols + 1): void {
    if (nSamp === 0) return;
    const group = this.dims.nHeads / this.dims.nKvHeads;
    const grid: Record<ScoreKernel, number> = {
      rows: Math.ceil((nSamp * group) / this.plans.rows.bs),
      cols: Math.ceil(nCols / this.plans.cols.bs),
    };
    const split = rowSplits(grid.rows * this.dims.nKvHeads, maxKeys, this.plans.rows.bt, this.split, this.splitTarget);
    this.lastSplit = split;
    const partials = this.partials(split > 1 ? split * this.dims.nHeads * nSamp * 16 : 16);
    if (split > this.ctx.limits.maxComputeWorkgroupsPerDimension) throw new GpuLimitError(`sample_scores_rows: ${split} key splits, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}`, { nSamp, split });
    for (const kind of ['rows', 'cols'] as const) {
      if (grid[kind] === 0) continue;
      if (grid[kind] > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
        throw new GpuLimitError(`sample_scores_${kind}: ${grid[kind]} workgroups, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}; prefill in smaller row chunks`, { nSamp, nCols });
      }
      const pipe = this.pipes[kind];
      pass.setPipeline(pipe);
      const entries: [number, GPUBuffer | GPUBufferBinding][] = [
        [0, b.q], [1, b.k], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, b.params], [7, partials],
      ];
      // The 'tr' kernels are one mode each (auto layouts drop what a mode leaves unused).
      const used = this.plans[kind].layout !== 'tr' ? entries : entries.filter(([n]) => (kind === 'rows' ? n !== 4 && n !== 5 : n !== 7));
      pass.setBindGroup(0, bindAt(this.ctx, pipe, used, `sample_scores_${kind}`));
      pass.dispatchWorkgroups(grid[kind], this.dims.nKvHeads, kind === 'rows' ? split : 1);
      if (kind === 'rows' && split > 1) {
        const combine = this.pipes.combine;
        pass.setPipeline(combine);
        pass.setBindGroup(0, bindAt(this.ctx, combine, [[3, b.rowStats], [6, b.params], [7, partials]], 'sample_scores_combine'));
        pass.dispatchWorkgroups(Math.ceil((this.dims.nHeads * nSamp) / 64), split);
      }
    }
  }
}

/**
 * CPU reference of the sampling phase (f64): q (rows, nHeads * headDim) of the
 * chunk at `pos`, k (nKvHeads, seqLen, headDim) with seqLen >= pos + rows.
 * rowStats (nHeads, nSamp, 2): lse in log2 units, window mass; colScores
 * (nHeads, nCols); groupScores (nKvHeads, nCols).
 */
export function samplingRef(
  q: Float32Array, k: Float32Array,
  d: { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; rows: number; pos: number },
  plan: SparsePlan,
): { rowStats: Float64Array; colScores: Float64Array; groupScores: Float64Array } {
  const { nHeads, nKvHeads, headDim: D, seqLen, rows, pos } = d;
  const group = nHeads / nKvHeads;
  const { nSamp, nCols, window: w } = plan;
  const rowStats = new Float64Array(nHeads * nSamp * 2);
  const colScores = new Float64Array(nHeads * nCols);
  const groupScores = new Float64Array(nKvHeads * nCols);
  const s = new Float64Array(pos + rows);
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < nHeads; h++) {
    const kb = Math.floor(h / group) * seqLen * D;
    for (let r = 0; r < nSamp; r++) {
      const loc = sampleRow(r, rows, plan);
      const i = pos + loc;
      const qb = loc * nHeads * D + h * D;
      let m = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < D; t++) dot += q[qb + t] * k[kb + j * D + t];
        s[j] = dot * scale;
        m = Math.max(m, s[j]);
      }
      let l = 0, lw = 0;
      for (let j = 0; j <= i; j++) { const e = Math.exp(s[j] - m); l += e; if (j + w > i) lw += e; }
      rowStats[(h * nSamp + r) * 2] = (m + Math.log(l)) * Math.LOG2E;
      rowStats[(h * nSamp + r) * 2 + 1] = lw / l;
      for (let j = 0; j + w <= i; j++) {
        const pj = Math.exp(s[j] - m) / l;
        colScores[h * nCols + j] += pj;
        groupScores[Math.floor(h / group) * nCols + j] += pj;
      }
    }
  }
  return { rowStats, colScores, groupScores };
}
