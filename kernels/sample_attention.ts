/**
 * Launchers for SampleAttention's stage-2 kernels (../shared/SAMPLE_ATTENTION.md):
 * kernels/sample_columns.wgsl (column scores of the sampled rows) and
 * kernels/sample_select.wgsl (threshold search, compaction, stats). Stage 1
 * (the sampled rows' lse and window mass), the stripe pass and the window pass
 * are modes of kernels/attention_prefill.wgsl. Orchestration: src/attention/.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline } from '../src/gpu/pipelines.ts';
import { attentionHeader, bindAt, tilePlan, type AttentionDims, type TilePlan, type TileOverrides } from './attention_prefill.ts';
import columnsSource from './sample_columns.wgsl?raw';
import selectSource from './sample_select.wgsl?raw';
import binsSource from './sample_bins.wgsl?raw';

/** Bytes of the uniform of encodeBins: offset (words), binLen, stride, pad. */
export const BIN_ARGS_BYTES = 16;

export class SampleKernels {
  private constructor(
    private ctx: GpuContext,
    readonly plan: TilePlan & { ct: number; qt: number },
    private dims: AttentionDims,
    private columns: GPUComputePipeline,
    private selectPipe: GPUComputePipeline,
    private binsPipe: GPUComputePipeline,
  ) {}

  static async create(ctx: GpuContext, dims: AttentionDims, opts: { subgroups?: boolean; tile?: TileOverrides } = {}): Promise<SampleKernels> {
    const base = tilePlan(ctx, dims, { ...opts, tile: opts.tile ? { tpr: opts.tile.tpr } : undefined });
    // CT columns per workgroup (one per TPR lanes); QT staged q rows must fit workgroup memory.
    const ct = Math.max(1, Math.floor(Math.min(256, ctx.limits.maxComputeInvocationsPerWorkgroup) / base.tpr));
    // (tile.qr/bc tune the flash passes only; the column pass keeps 256 threads)
    let qt = 32;
    while (qt > 4 && qt * base.dvp * 16 + qt * 8 > ctx.limits.maxComputeWorkgroupStorageSize - 512) qt /= 2;
    const plan = { ...base, ct, qt };
    const [columns, selectPipe, binsPipe] = await Promise.all([
      getPipeline(ctx, { label: 'sample_columns', code: attentionHeader(dims, base, { CT: ct, QT: qt }) + columnsSource }),
      getPipeline(ctx, { label: 'sample_select', code: attentionHeader(dims, base) + selectSource }),
      getPipeline(ctx, { label: 'sample_bins', code: binsSource }),
    ]);
    return new SampleKernels(ctx, plan, dims, columns, selectPipe, binsPipe);
  }

  /** Column scores c_h[j] and the group sums for j in [0, nCols). */
  encodeColumns(pass: GPUComputePassEncoder, b: {
    q: GPUBuffer; k: GPUBuffer; rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; params: GPUBufferBinding;
  }, nCols: number): void {
    if (nCols === 0) return;
    pass.setPipeline(this.columns);
    pass.setBindGroup(0, bindAt(this.ctx, this.columns, [
      [0, b.q], [1, b.k], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, b.params],
    ], 'sample_columns'));
    pass.dispatchWorkgroups(Math.ceil(nCols / this.plan.ct), this.dims.nKvHeads);
  }

  /** Selection per KV group: sorted ids into `sel`, stats at params.statsOffset. */
  encodeSelect(pass: GPUComputePassEncoder, b: {
    rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; sel: GPUBuffer; stats: GPUBuffer; params: GPUBufferBinding;
  }): void {
    pass.setPipeline(this.selectPipe);
    pass.setBindGroup(0, bindAt(this.ctx, this.selectPipe, [
      [0, b.sel], [3, b.rowStats], [4, b.colScores], [5, b.groupScores], [6, b.params], [7, b.stats],
    ], 'sample_select'));
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
