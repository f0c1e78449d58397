/**
 * Launcher and CPU reference for kernels/sample_scores.wgsl: SampleAttention's
 * sampling phase (stage 1 row stats and stage 2 column scores of the sampled
 * rows' Q_s K^T) as two GEMM-shaped kernels (SMODE 0 rows, 1 cols) plus the
 * combine of the row-stats kernel's key splits (kernels/sample_scores_combine.wgsl).
 * kernels/sample_select.wgsl reads their outputs.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { GpuLimitError, InvalidOptionError } from '../src/errors.ts';
import { bindAt, plainHeader, sampleRow, type AttentionDims, type SampledRows } from './attention_prefill.ts';
import source from './sample_scores.wgsl?raw';
import combineSource from './sample_scores_combine.wgsl?raw';

/** Score tile of one kernel: BS stationary rows x BT streamed rows, RX x RY per thread, DK of headDim per staged chunk. */
export interface ScoreTile {
  bs: number;
  bt: number;
  rx: number;
  ry: number;
  dk: number;
}

/** Derived sizes (the WGSL constants). */
export interface ScorePlan extends ScoreTile {
  /** headDim chunks of dk. */
  nch: number;
  /** Threads per workgroup. */
  nt: number;
  /** vec4 rows per dim of the X / Y tile in workgroup memory (BS / 4 + 1, BT / 4 + 1: padded). */
  xq: number;
  yq: number;
  /** Thread mapping: GX x GY threads per warp-shaped block. */
  gx: number;
  gy: number;
  smemBytes: number;
  /** Double-buffered chunks (one barrier per chunk; needs nch even). */
  db: boolean;
}

export type ScoreKernel = 'rows' | 'cols';

/** Tiles of both kernels and the row-stats kernel's key split (tests force them; the engine uses the defaults). */
export interface ScoreOptions {
  rows?: Partial<ScoreTile>;
  cols?: Partial<ScoreTile>;
  /**
   * Key-range splits of the row-stats kernel: 0 / undefined auto (split while
   * there are fewer than DEFAULT_SPLIT_TARGET workgroups), 1 never, N > 1 always N
   * (capped so each split keeps at least one K tile).
   */
  split?: number;
}

/** Auto split: at least this many K tiles per split. */
const MIN_SPLIT_TILES = 4;
/** Workgroups the auto split aims for (~4 per SM of a 132-SM H100). */
export const DEFAULT_SPLIT_TARGET = 512;

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

/**
 * GPU default: the prefill GEMM's 128 x 128 tile, 8 x 8 per thread (256 threads), 16 dims per
 * chunk, double-buffered where the head splits into an even number of chunks and the two buffers
 * fit workgroup memory (scorePlan). H100, at 128K:
 * sampling 195 ms (34 TFLOP/s) vs 267 ms for the older stationary-operand kernels.
 */
export const SCORE_TILE: ScoreTile = { bs: 128, bt: 128, rx: 8, ry: 8, dk: 16 };
/** Software adapters (SwiftShader: tests, CI): small tiles that compile fast. */
export const SOFTWARE_SCORE_TILE: ScoreTile = { bs: 16, bt: 16, rx: 4, ry: 4, dk: 8 };

function sizes(headDim: number, t: ScoreTile, db: boolean): ScorePlan {
  const dk4 = t.dk / 4;
  const nch = Math.ceil(Math.ceil(headDim / 4) / dk4);
  const tx = t.bs / t.rx,
    ty = t.bt / t.ry;
  const xq = t.bs / 4 + 1,
    yq = t.bt / 4 + 1;
  const warp = tx % 8 === 0 && ty % 4 === 0;
  return {
    ...t,
    nch,
    nt: tx * ty,
    xq,
    yq,
    gx: warp ? 8 : tx,
    gy: warp ? 4 : 1,
    smemBytes: 16 * (db ? 2 * t.dk : t.dk + 1) * (xq + yq) + 4 * (ty * t.bs + 2 * t.bs) + 24 * t.bt,
    db,
  };
}

/**
 * Tile plan of one kernel on this device: the default tile (or `over`), dk no wider than the
 * head, double-buffered where the chunk count is even and it fits; overrides are checked.
 */
export function scorePlan(ctx: GpuContext, headDim: number, kind: ScoreKernel, over: Partial<ScoreTile> = {}): ScorePlan {
  const t: ScoreTile = { ...(ctx.info.isSoftware ? SOFTWARE_SCORE_TILE : SCORE_TILE), ...over };
  if (over.dk === undefined) t.dk = Math.min(t.dk, 4 * Math.ceil(headDim / 4));
  const bad = (why: string) => {
    throw new InvalidOptionError(`sampling.${kind}`, why, { ...t, headDim });
  };
  for (const k of ['rx', 'ry'] as const) if (t[k] !== 4 && t[k] !== 8) bad(`${k} must be 4 or 8, got ${t[k]}`);
  if (!Number.isInteger(t.bs / t.rx) || t.bs < 1) bad(`bs ${t.bs} must be a positive multiple of rx ${t.rx}`);
  if (!Number.isInteger(t.bt / t.ry) || t.bt < 1) bad(`bt ${t.bt} must be a positive multiple of ry ${t.ry}`);
  if (!Number.isInteger(t.dk) || t.dk < 4 || t.dk % 4 !== 0 || t.dk > 64) bad(`dk must be a multiple of 4 in 4..64, got ${t.dk}`);
  const smem = ctx.limits.maxComputeWorkgroupStorageSize;
  const single = sizes(headDim, t, false);
  const double = sizes(headDim, t, true);
  const plan = single.nch % 2 === 0 && double.smemBytes <= smem ? double : single;
  if (plan.nt > ctx.limits.maxComputeInvocationsPerWorkgroup)
    bad(`${plan.nt} threads per workgroup, over this GPU's ${ctx.limits.maxComputeInvocationsPerWorkgroup}`);
  if (plan.nt < t.bs || plan.nt < t.bt) bad(`${plan.nt} threads per workgroup must cover bs ${t.bs} and bt ${t.bt}`);
  if (plan.smemBytes > smem) bad(`needs ${plan.smemBytes} bytes of workgroup memory, over this GPU's ${smem}`);
  return plan;
}

/** Pipelines of the sampling phase for one layer shape. */
export function scoreSpecs(ctx: GpuContext, dims: AttentionDims, opts: ScoreOptions = {}): Record<ScoreKernel | 'combine', PipelineSpec> {
  const tier = dims.tier ?? 'f32';
  const spec = (k: ScoreKernel): PipelineSpec => ({
    label: `sample_scores_${k}_${tier}`,
    tier,
    code: scoreSource(dims, k, scorePlan(ctx, dims.headDim, k, opts[k])),
    constants: { SMODE: k === 'rows' ? 0 : 1 },
  });
  return { rows: spec('rows'), cols: spec('cols'), combine: { label: `sample_scores_combine_${tier}`, code: plainHeader(dims) + combineSource, tier } };
}

/** `load_q4(off, d4)`: vec4 d4 of the q row starting at float offset `off`, zero past headDim (binding 0). */
function qAccess(headDim: number): string {
  if (headDim % 4 === 0) {
    return `@group(0) @binding(0) var<storage, read> qv: array<act4>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${headDim / 4}u) { return vec4<f32>(0.0); }
  return vec4<f32>(qv[off / 4u + d4]);
}\n`;
  }
  return `@group(0) @binding(0) var<storage, read> qv: array<act>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { let d = d4 * 4u + c; if (d < ${headDim}u) { x[c] = f32(qv[off + d]); } }
  return x;
}\n`;
}

/**
 * WGSL of one kernel: the generated header (attentionHeader's Params, sample_row and K loader;
 * the tile plan as consts; the q loader), then kernels/sample_scores.wgsl; SMODE is an override.
 */
export function scoreSource(dims: AttentionDims, kind: ScoreKernel, plan: ScorePlan): string {
  const tx = plan.bs / plan.rx,
    ty = plan.bt / plan.ry,
    dk4 = plan.dk / 4;
  return (
    plainHeader(dims, {
      GROUP: dims.nHeads / dims.nKvHeads,
      BS: plan.bs,
      BT: plan.bt,
      RX: plan.rx,
      RY: plan.ry,
      TX: tx,
      TY: ty,
      NT: plan.nt,
      DK: plan.dk,
      DK4: dk4,
      NCH: plan.nch,
      XQ: plan.xq,
      YQ: plan.yq,
      GX: plan.gx,
      GY: plan.gy,
      DB: plan.db ? 1 : 0,
      DK1: plan.db ? plan.dk : 1,
      PX: Math.ceil((plan.bs * dk4) / plan.nt),
      PY: Math.ceil((plan.bt * dk4) / plan.nt),
    }) +
    qAccess(dims.headDim) +
    source
  );
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
  ) {}

  static async create(ctx: GpuContext, dims: AttentionDims, opts: ScoreOptions = {}): Promise<SampleScores> {
    const split = opts.split ?? 0;
    if (!Number.isInteger(split) || split < 0) throw new InvalidOptionError('sampling.split', `must be 0 (auto), 1 (off) or a split count, got ${split}`);
    const specs = scoreSpecs(ctx, dims, opts);
    const [rows, cols, combine] = await Promise.all([getPipeline(ctx, specs.rows), getPipeline(ctx, specs.cols), getPipeline(ctx, specs.combine)]);
    const plans = { rows: scorePlan(ctx, dims.headDim, 'rows', opts.rows), cols: scorePlan(ctx, dims.headDim, 'cols', opts.cols) };
    return new SampleScores(ctx, dims, plans, { rows, cols, combine }, split);
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
  encode(
    pass: GPUComputePassEncoder,
    b: {
      q: GPUBuffer;
      k: GPUBuffer;
      rowStats: GPUBuffer;
      colScores: GPUBuffer;
      groupScores: GPUBuffer;
      params: GPUBufferBinding;
    },
    nSamp: number,
    nCols: number,
    maxKeys = nCols + 1,
  ): void {
    if (nSamp === 0) return;
    const group = this.dims.nHeads / this.dims.nKvHeads;
    const grid: Record<ScoreKernel, number> = {
      rows: Math.ceil((nSamp * group) / this.plans.rows.bs),
      cols: Math.ceil(nCols / this.plans.cols.bs),
    };
    const split = rowSplits(grid.rows * this.dims.nKvHeads, maxKeys, this.plans.rows.bt, this.split);
    this.lastSplit = split;
    const partials = this.partials(split > 1 ? split * this.dims.nHeads * nSamp * 16 : 16);
    if (split > this.ctx.limits.maxComputeWorkgroupsPerDimension)
      throw new GpuLimitError(`sample_scores_rows: ${split} key splits, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}`, { nSamp, split });
    for (const kind of ['rows', 'cols'] as const) {
      if (grid[kind] === 0) continue;
      if (grid[kind] > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
        throw new GpuLimitError(
          `sample_scores_${kind}: ${grid[kind]} workgroups, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}; prefill in smaller row chunks`,
          { nSamp, nCols },
        );
      }
      const pipe = this.pipes[kind];
      pass.setPipeline(pipe);
      pass.setBindGroup(
        0,
        bindAt(
          this.ctx,
          pipe,
          [
            [0, b.q],
            [1, b.k],
            [3, b.rowStats],
            [4, b.colScores],
            [5, b.groupScores],
            [6, b.params],
            [7, partials],
          ],
          `sample_scores_${kind}`,
        ),
      );
      pass.dispatchWorkgroups(grid[kind], this.dims.nKvHeads, kind === 'rows' ? split : 1);
      if (kind === 'rows' && split > 1) {
        const combine = this.pipes.combine;
        pass.setPipeline(combine);
        pass.setBindGroup(
          0,
          bindAt(
            this.ctx,
            combine,
            [
              [3, b.rowStats],
              [6, b.params],
              [7, partials],
            ],
            'sample_scores_combine',
          ),
        );
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
  q: Float32Array,
  k: Float32Array,
  d: { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; rows: number; pos: number },
  plan: SampledRows & { nCols: number; window: number },
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
      let l = 0,
        lw = 0;
      for (let j = 0; j <= i; j++) {
        const e = Math.exp(s[j] - m);
        l += e;
        if (j + w > i) lw += e;
      }
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
