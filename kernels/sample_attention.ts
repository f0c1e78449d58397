/**
 * Launchers for SampleAttention's sampling and selection kernels
 * (../shared/SAMPLE_ATTENTION.md). Sampling (stages 1 + 2: the sampled rows'
 * lse and window mass, then the column scores) runs one of two kernel sets:
 *   'tiled' (default) - kernels/sample_scores.wgsl, register-tiled GEMMs of Q_s K^T
 *                       (layout 'kv'; SamplingOptions.layout 'tr': kernels/sample_scores_tr.wgsl,
 *                       the prefill GEMM's shape, per kernel)
 *   'flash'           - the flash kernel's 'sample' mode (kernels/attention_prefill.wgsl)
 *                       + kernels/sample_columns.wgsl (per-score subgroup shuffles)
 * Both write the same rowStats / colScores / groupScores. Selection:
 * kernels/sample_select.wgsl (threshold search, compaction, stats), column
 * report: kernels/sample_bins.wgsl. The stripe and window passes are modes of
 * kernels/attention_prefill.wgsl. Orchestration: src/attention/.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { InvalidOptionError } from '../src/errors.ts';
import { attentionHeader, bindAt, FlashAttention, tilePlan, type AttentionDims, type TileOverrides } from './attention_prefill.ts';
import { parseScoreTiles, SampleScores, type ScoreLayout, type ScorePlan, type ScoreTile } from './sample_scores.ts';
import columnsSource from './sample_columns.wgsl?raw';
import selectSource from './sample_select.wgsl?raw';
import binsSource from './sample_bins.wgsl?raw';

/** Bytes of the uniform of encodeBins: offset (words), binLen, stride, pad. */
export const BIN_ARGS_BYTES = 16;

export type SamplingKernel = 'tiled' | 'flash';

/** Choice of the sampling kernels (create time; bench --sampling, --sampling-tile). */
export interface SamplingOptions {
  /** Default 'tiled'. */
  kernel?: SamplingKernel;
  /** Tile overrides of the tiled row-stats / column-score kernels (sweeps). */
  rows?: Partial<ScoreTile>;
  cols?: Partial<ScoreTile>;
  /** Key-range splits of the tiled row-stats kernel: 0 auto (default), 1 off, N forced (ScoreOptions.split). */
  split?: number;
  /** Workgroups the auto split aims for (default 512). */
  splitTarget?: number;
  /** Column kernel over one (head, row) stream of tiles that straddle heads (ScoreOptions.colsFlat; default true: H100 09:25, 4096-row chunks at 32K 19.3 ms vs 20.8). */
  colsFlat?: boolean;
  /** 'tr' kernels: double-buffered chunks (ScoreOptions.doubleBuffer; bench variant part db=1). */
  doubleBuffer?: boolean;
  /** Threads of the selection kernel's one workgroup per KV group (default 256; 64..1024, a power of two; bench variant part select=N). */
  selectThreads?: number;
  /** Selection: 4 columns per step of each bisection round's loop (default false; bench variant part unroll=1). */
  selectUnroll?: boolean;
  /** Layout of the tiled row-stats / column-score kernels (ScoreOptions.layout; default 'kv' for both; bench --variants tiled:tr=rows,cols). */
  layout?: Partial<Record<'rows' | 'cols', ScoreLayout>>;
}

/**
 * Sampling options from a bench variant name: 'flash', 'tr' (= tiled:tr=1) or
 * 'tiled' with ':'-separated parts rows=BSxBTxRXxRYxDK, cols=..., split=N,
 * target=M, flat=0|1, tr=rows|cols|1 (the 'tr' layout for that kernel or both),
 * select=N (selection kernel threads), unroll=1 (selection loop by 4), db=1 (double-buffered 'tr' kernels).
 */
export function parseSamplingVariant(v: string): SamplingOptions {
  const [head, ...rest] = v.split(':');
  const parts = head === 'tr' ? ['tr=1', ...rest] : rest;
  const kernel = head === 'tr' ? 'tiled' : head;
  if (kernel !== 'flash' && kernel !== 'tiled') throw new InvalidOptionError('sampling variant', `'${v}' must start with 'flash', 'tiled' or 'tr'`);
  const get = (key: string) => parts.find((p) => p.startsWith(`${key}=`))?.slice(key.length + 1);
  const num = (key: string) => (get(key) === undefined ? undefined : Number(get(key)));
  const tr = get('tr');
  if (tr !== undefined && !['rows', 'cols', '1', '0'].includes(tr)) throw new InvalidOptionError('sampling variant', `'${v}': tr must be rows, cols, 1 (both) or 0`);
  const layout = tr === undefined ? undefined : {
    rows: tr === 'rows' || tr === '1' ? 'tr' as const : 'kv' as const,
    cols: tr === 'cols' || tr === '1' ? 'tr' as const : 'kv' as const,
  };
  const tiles = parts.filter((p) => !/^(split|target|flat|tr|select|db|unroll)=/.test(p));
  return {
    kernel, ...parseScoreTiles(tiles.join(':')), split: num('split'), splitTarget: num('target'),
    colsFlat: num('flat') === undefined ? undefined : num('flat') === 1, layout, selectThreads: num('select'), selectUnroll: num('unroll') === undefined ? undefined : num('unroll') === 1, doubleBuffer: num('db') === undefined ? undefined : num('db') === 1,
  };
}

/** Selection kernel threads of sample_select.wgsl's WG constant (one workgroup per KV group). */
export const DEFAULT_SELECT_THREADS = 256;
/**
 * Threads used when SamplingOptions.selectThreads is absent: 1024 where the
 * device allows it (H100, 12:00 UTC: selection at 128K 9.4 ms with 256 threads,
 * 1.9 ms with 1024 and the unrolled bisection), else the device's maximum.
 */
export function defaultSelectThreads(ctx: GpuContext): number {
  return Math.max(64, Math.min(1024, 2 ** Math.floor(Math.log2(ctx.limits.maxComputeInvocationsPerWorkgroup))));
}

/** Override constants of sample_select.wgsl (none for the defaults: the same pipeline as src/attention/index.ts's). */
function selectConstants(wg: number, unroll: boolean, kind: 'group' | 'topup' | 'tau' = 'group'): Record<string, number> | undefined {
  const c: Record<string, number> = {};
  if (wg !== DEFAULT_SELECT_THREADS) c.WG = wg;
  if (unroll) c.U4 = 1;
  if (kind === 'topup') c.TOPUP = 1;
  if (kind === 'tau') c.TAU_PASS = 1;
  return Object.keys(c).length ? c : undefined;
}

export interface SamplingBuffers {
  q: GPUBuffer; k: GPUBuffer; rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; params: GPUBufferBinding;
}

/** The 'flash' sampling kernels: flash 'sample' mode + the column kernel (CT columns, QT staged rows per workgroup). */
interface FlashSampling { flash: FlashAttention; columns: GPUComputePipeline; ct: number; out: GPUBuffer }

export class SampleKernels {
  private constructor(
    private ctx: GpuContext,
    readonly kernel: SamplingKernel,
    private dims: AttentionDims,
    private tiled: SampleScores | undefined,
    private flashSampling: FlashSampling | undefined,
    private selectPipe: GPUComputePipeline,
    private selectTopupPipe: GPUComputePipeline,
    private selectTauPipe: GPUComputePipeline,
    private binsPipe: GPUComputePipeline,
  ) {}

  static async create(ctx: GpuContext, dims: AttentionDims, opts: { subgroups?: boolean; tile?: TileOverrides; sampling?: SamplingOptions } = {}): Promise<SampleKernels> {
    const kernel = opts.sampling?.kernel ?? 'tiled';
    if (kernel !== 'tiled' && kernel !== 'flash') throw new InvalidOptionError('sampling.kernel', `must be 'tiled' or 'flash', got ${JSON.stringify(kernel)}`);
    const base = tilePlan(ctx, dims, { ...opts, tile: opts.tile ? { tpr: opts.tile.tpr } : undefined });
    const selectWg = opts.sampling?.selectThreads ?? defaultSelectThreads(ctx);
    if (!Number.isInteger(Math.log2(selectWg)) || selectWg < 64 || selectWg > ctx.limits.maxComputeInvocationsPerWorkgroup) {
      throw new InvalidOptionError('sampling.selectThreads', `must be a power of two in 64..${ctx.limits.maxComputeInvocationsPerWorkgroup}, got ${selectWg}`);
    }
    const selectCode = attentionHeader(dims, base) + selectSource;
    const unroll = opts.sampling?.selectUnroll ?? true;
    const [selectPipe, selectTopupPipe, selectTauPipe, binsPipe, tiled, flashSampling] = await Promise.all([
      getPipeline(ctx, { label: 'sample_select', code: selectCode, constants: selectConstants(selectWg, unroll) }),
      getPipeline(ctx, { label: 'sample_select_topup', code: selectCode, constants: selectConstants(selectWg, unroll, 'topup') }),
      getPipeline(ctx, { label: 'sample_select_tau', code: selectCode, constants: selectConstants(selectWg, unroll, 'tau') }),
      getPipeline(ctx, { label: 'sample_bins', code: binsSource }),
      kernel === 'tiled' ? SampleScores.create(ctx, dims, opts.sampling ?? {}) : undefined,
      kernel === 'flash' ? SampleKernels.createFlash(ctx, dims, base, opts) : undefined,
    ]);
    return new SampleKernels(ctx, kernel, dims, tiled, flashSampling, selectPipe, selectTopupPipe, selectTauPipe, binsPipe);
  }

  private static async createFlash(ctx: GpuContext, dims: AttentionDims, base: ReturnType<typeof tilePlan>, opts: { subgroups?: boolean; tile?: TileOverrides }): Promise<FlashSampling> {
    // CT columns per workgroup (one per TPR lanes); QT staged q rows must fit workgroup memory.
    // (tile.qr/bc tune the flash passes only; the column pass keeps 256 threads)
    const ct = Math.max(1, Math.floor(Math.min(256, ctx.limits.maxComputeInvocationsPerWorkgroup) / base.tpr));
    let qt = 32;
    while (qt > 4 && qt * base.dvp * 16 + qt * 8 > ctx.limits.maxComputeWorkgroupStorageSize - 512) qt /= 2;
    const [flash, columns] = await Promise.all([
      FlashAttention.create(ctx, dims, ['sample'], opts),
      getPipeline(ctx, { label: 'sample_columns', code: attentionHeader(dims, base, { CT: ct, QT: qt }) + columnsSource }),
    ]);
    // The 'sample' mode never writes `out` (nor reads V), but the binding exists.
    const out = createBuffer(ctx, 16, STORAGE.rw, 'sample_flash_unused_out');
    return { flash, columns, ct, out };
  }

  /** Tile plans of the tiled kernels (undefined for 'flash'); benchmarks record them. */
  get scorePlans(): Record<'rows' | 'cols', ScorePlan> | undefined { return this.tiled?.plans; }

  /**
   * Sampling phase: rowStats (nHeads, nSamp, 2) of the nSamp sampled rows,
   * colScores (nHeads, capacity) and groupScores (nKvHeads, capacity) of
   * columns [0, nCols). Two dispatches (three when the tiled row-stats kernel
   * splits its keys), in this order, in the caller's pass. maxKeys (pos + rows
   * of the chunk; default nCols + 1) only steers the split choice.
   */
  encodeSampling(pass: GPUComputePassEncoder, b: SamplingBuffers, nSamp: number, nCols: number, maxKeys?: number): void {
    if (this.tiled) {
      this.tiled.encode(pass, b, nSamp, nCols, maxKeys);
      return;
    }
    const fs = this.flashSampling!;
    fs.flash.encode(pass, 'sample', { q: b.q, k: b.k, v: b.k, out: fs.out, lse: b.rowStats, params: b.params }, nSamp, this.dims.nKvHeads);
    if (nCols === 0) return;
    pass.setPipeline(fs.columns);
    pass.setBindGroup(0, bindAt(this.ctx, fs.columns, [
      [0, b.q], [1, b.k], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, b.params],
    ], 'sample_columns'));
    pass.dispatchWorkgroups(Math.ceil(nCols / fs.ct), this.dims.nKvHeads);
  }

  /** Key splits of the tiled row-stats kernel in the last encodeSampling (1 for 'flash'). */
  get lastSplit(): number { return this.tiled?.lastSplit ?? 1; }

  destroy(): void {
    this.tiled?.destroy();
    if (this.flashSampling) {
      this.flashSampling.flash.destroy();
      releaseBuffer(this.ctx, this.flashSampling.out);
      this.flashSampling = undefined;
    }
  }

  /**
   * Selection per KV group: sorted ids into `sel`, stats at params.statsOffset.
   * Without `topup`: one threshold over the group's summed scores (selection
   * 'group'). With it (selection 'topup'): first each query head's top-up threshold
   * (one workgroup per head, topup.headParams: the per-head "virtual" params) into
   * `taus`, then the group's set plus every head's top-up (kernels/sample_select.wgsl).
   */
  encodeSelect(pass: GPUComputePassEncoder, b: {
    rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; sel: GPUBuffer; stats: GPUBuffer; taus: GPUBuffer; params: GPUBufferBinding;
  }, topup?: { headParams: GPUBufferBinding }): void {
    if (topup) {
      pass.setPipeline(this.selectTauPipe);
      pass.setBindGroup(0, bindAt(this.ctx, this.selectTauPipe, [
        [0, b.sel], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, topup.headParams], [7, b.stats], [8, b.taus],
      ], 'sample_select_tau'));
      pass.dispatchWorkgroups(this.dims.nHeads);
    }
    const pipe = topup ? this.selectTopupPipe : this.selectPipe;
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bindAt(this.ctx, pipe, [
      [0, b.sel], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, b.params], [7, b.stats], [8, b.taus],
    ], topup ? 'sample_select_topup' : 'sample_select'));
    pass.dispatchWorkgroups(this.dims.nKvHeads);
  }

  /**
   * Histogram of the selected ids of each KV group (after encodeSelect, same
   * or later pass): (nKvHeads, 256) u32 counts into `bins` at args' offset.
   */
  encodeBins(pass: GPUComputePassEncoder, b: { sel: GPUBuffer; bins: GPUBuffer; args: GPUBufferBinding }): void {
    pass.setPipeline(this.binsPipe);
    pass.setBindGroup(0, bindAt(this.ctx, this.binsPipe, [[0, b.sel], [1, b.bins], [2, b.args]], 'sample_bins'));
    pass.dispatchWorkgroups(this.dims.nKvHeads);
  }
}
