/**
 * Launchers for SampleAttention's sampling and selection kernels
 * (../shared/SAMPLE_ATTENTION.md): sampling (stages 1 + 2: the sampled rows'
 * lse and window mass, then the column scores) is kernels/sample_scores.wgsl
 * (kernels/sample_scores.ts); selection is kernels/sample_select.wgsl
 * (threshold search, compaction, stats; overrides TOPUP / TAU_PASS for the
 * 'topup' rule); the column report is kernels/sample_bins.wgsl. The sparse
 * pass and its dense fallback are kernels/attention_prefill.wgsl.
 * Orchestration: src/attention/.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { bindAt, plainHeader, type AttentionDims } from './attention_prefill.ts';
import { SampleScores, scoreSpecs, type ScoreOptions } from './sample_scores.ts';
import selectSource from './sample_select.wgsl?raw';
import binsSource from './sample_bins.wgsl?raw';

/** Bytes of the uniform of encodeBins: offset (words), binLen, stride, pad. */
export const BIN_ARGS_BYTES = 16;

/**
 * Threads of the selection kernel's one workgroup per KV group (override WG): 1024 where the
 * device allows it (H100, at 128K: selection 9.4 ms with 256 threads, 1.9 ms with 1024), else
 * the device's largest power of two.
 */
export function selectThreads(ctx: GpuContext): number {
  return Math.max(64, Math.min(1024, 2 ** Math.floor(Math.log2(ctx.limits.maxComputeInvocationsPerWorkgroup))));
}

/** Selection kernels: 'group' (also per head, with per-head params), the 'topup' list and its per-head threshold pass. */
export type SelectKernel = 'group' | 'topup' | 'tau';

/** Pipelines of the sampling and selection phases for one layer shape. */
export function sampleSpecs(ctx: GpuContext, dims: AttentionDims, opts: { scores?: ScoreOptions } = {}): PipelineSpec[] {
  const s = scoreSpecs(ctx, dims, opts.scores);
  const sel = selectSpecs(ctx, dims);
  return [s.rows, s.cols, s.combine, sel.group, sel.topup, sel.tau, binsSpec()];
}

function selectSpecs(ctx: GpuContext, dims: AttentionDims): Record<SelectKernel, PipelineSpec> {
  const code = plainHeader(dims) + selectSource;
  const tier = dims.tier ?? 'f32';
  const WG = selectThreads(ctx);
  return {
    group: { label: `sample_select_${tier}`, code, constants: { WG }, tier },
    topup: { label: `sample_select_topup_${tier}`, code, constants: { WG, TOPUP: 1 }, tier },
    tau: { label: `sample_select_tau_${tier}`, code, constants: { WG, TAU_PASS: 1 }, tier },
  };
}

function binsSpec(): PipelineSpec {
  return { label: 'sample_bins', code: binsSource };
}

export interface SamplingBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  rowStats: GPUBuffer;
  colScores: GPUBuffer;
  groupScores: GPUBuffer;
  params: GPUBufferBinding;
}

export interface SelectBuffers {
  rowStats: GPUBuffer;
  colScores: GPUBuffer;
  groupScores: GPUBuffer;
  sel: GPUBuffer;
  stats: GPUBuffer;
  taus: GPUBuffer;
  params: GPUBufferBinding;
}

export class SampleKernels {
  private constructor(
    private ctx: GpuContext,
    private dims: AttentionDims,
    readonly scores: SampleScores,
    private select: Record<SelectKernel, GPUComputePipeline>,
    private binsPipe: GPUComputePipeline,
  ) {}

  static async create(ctx: GpuContext, dims: AttentionDims, opts: { scores?: ScoreOptions } = {}): Promise<SampleKernels> {
    const sel = selectSpecs(ctx, dims);
    const [scores, group, topup, tau, bins] = await Promise.all([
      SampleScores.create(ctx, dims, opts.scores),
      getPipeline(ctx, sel.group),
      getPipeline(ctx, sel.topup),
      getPipeline(ctx, sel.tau),
      getPipeline(ctx, binsSpec()),
    ]);
    return new SampleKernels(ctx, dims, scores, { group, topup, tau }, bins);
  }

  /**
   * Sampling phase: rowStats (nHeads, nSamp, 2) of the nSamp sampled rows,
   * colScores (nHeads, capacity) and groupScores (nKvHeads, capacity) of
   * columns [0, nCols), in the caller's pass. maxKeys (pos + rows of the chunk;
   * default nCols + 1) only steers the row-stats kernel's key split.
   */
  encodeSampling(pass: GPUComputePassEncoder, b: SamplingBuffers, nSamp: number, nCols: number, maxKeys?: number): void {
    this.scores.encode(pass, b, nSamp, nCols, maxKeys);
  }

  destroy(): void {
    this.scores.destroy();
  }

  /**
   * Selection: sorted ids into `sel`, stats at params.statsOffset, one workgroup per unit.
   * rule 'group': one threshold over each KV group's summed scores. 'head': the same kernel
   * with `params` the per-head "virtual" params (group 1, nKvHeads = nHeads) and each head's
   * colScores as its group scores. 'topup': first each query head's top-up threshold (one
   * workgroup per head, `headParams`: the per-head params) into `taus`, then the group's set
   * plus every head's top-up (kernels/sample_select.wgsl).
   */
  encodeSelect(pass: GPUComputePassEncoder, b: SelectBuffers, rule: 'group' | 'topup' | 'head', headParams?: GPUBufferBinding): void {
    const run = (pipe: GPUComputePipeline, params: GPUBufferBinding, groupScores: GPUBuffer, units: number, label: string) => {
      pass.setPipeline(pipe);
      pass.setBindGroup(
        0,
        bindAt(
          this.ctx,
          pipe,
          [
            [0, b.sel],
            [3, b.rowStats],
            [4, b.colScores],
            [5, groupScores],
            [6, params],
            [7, b.stats],
            [8, b.taus],
          ],
          label,
        ),
      );
      pass.dispatchWorkgroups(units);
    };
    if (rule === 'head') {
      run(this.select.group, b.params, b.colScores, this.dims.nHeads, 'sample_select_head');
      return;
    }
    if (rule === 'topup') run(this.select.tau, headParams!, b.groupScores, this.dims.nHeads, 'sample_select_tau');
    run(rule === 'topup' ? this.select.topup : this.select.group, b.params, b.groupScores, this.dims.nKvHeads, `sample_select_${rule}`);
  }

  /**
   * Histogram of the selected ids of each KV group (after encodeSelect, same
   * or later pass): (nKvHeads, 256) u32 counts into `bins` at args' offset.
   */
  encodeBins(pass: GPUComputePassEncoder, b: { sel: GPUBuffer; bins: GPUBuffer; args: GPUBufferBinding }): void {
    pass.setPipeline(this.binsPipe);
    pass.setBindGroup(
      0,
      bindAt(
        this.ctx,
        this.binsPipe,
        [
          [0, b.sel],
          [1, b.bins],
          [2, b.args],
        ],
        'sample_bins',
      ),
    );
    pass.dispatchWorkgroups(this.dims.nKvHeads);
  }
}
