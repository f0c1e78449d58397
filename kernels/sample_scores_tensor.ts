/**
 * Launcher of kernels/sample_scores_tensor.wgsl: the 'tensor' tier's SampleAttention sampling phase
 * (stage 1 row stats, entry `rows`; stage 2 column scores and group sums, entry `cols`) on f16
 * subgroup matrices, head dim 128 over an f16 KV cache. Same bindings, Params uniform
 * (kernels/attention_prefill.ts paramsWords) and outputs as kernels/sample_scores.ts SampleScores,
 * so the selection reads them unchanged. One pipeline per entry for every GQA shape (group size is
 * the uniform p.group); no key split (a workgroup owns 64 (row, head) pairs, so a 128K prompt's
 * 6.4K sampled rows give hundreds of workgroups per KV head already).
 * The engine reaches it through PrefillAttention (src/attention) on the tensor tier
 * (tensorAttentionFits); the specs are compiled at load with the sparse pipelines.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { pipeline, precompile, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { GpuLimitError } from '../src/errors.ts';
import { bindAt } from './attention_prefill.ts';
import type { SamplingBuffers } from './sample_attention.ts';
import source from './sample_scores_tensor.wgsl?raw';

/** (row, head) pairs (`rows`) and key columns (`cols`) per workgroup (BR of the WGSL). */
const PER_WORKGROUP = 64;

export type TensorScoreKernel = 'rows' | 'cols';

/** The two pipelines (entries `rows` and `cols`), shared by every layer shape that fits the tier. */
export function tensorScoreSpecs(): Record<TensorScoreKernel, PipelineSpec> {
  return {
    rows: { label: 'sample_scores_tensor_rows', code: source, entryPoint: 'rows' },
    cols: { label: 'sample_scores_tensor_cols', code: source, entryPoint: 'cols' },
  };
}

export class TensorSampleScores {
  private readonly pipes: Record<TensorScoreKernel, GPUComputePipeline>;

  /** Takes the pipelines from the device's cache (compile them at load: tensorScoreSpecs). */
  constructor(
    private ctx: GpuContext,
    readonly nHeads: number,
    readonly nKvHeads: number,
  ) {
    const s = tensorScoreSpecs();
    this.pipes = { rows: pipeline(ctx, s.rows), cols: pipeline(ctx, s.cols) };
  }

  /** Compiles the pipelines, then builds the launcher (tests, benchmarks). */
  static async create(ctx: GpuContext, nHeads: number, nKvHeads: number): Promise<TensorSampleScores> {
    const s = tensorScoreSpecs();
    await precompile(ctx, [s.rows, s.cols]);
    return new TensorSampleScores(ctx, nHeads, nKvHeads);
  }

  /**
   * Row stats of the nSamp sampled rows, then column scores and group sums of columns [0, nCols),
   * in the caller's pass (the rows dispatch first: cols reads its lse). `params` holds the chunk's
   * paramsWords (rows, pos, window, nSamp, sampBlock, nBlocks, nCols, group = nHeads / nKvHeads, scale).
   */
  encode(pass: GPUComputePassEncoder, b: SamplingBuffers, nSamp: number, nCols: number): void {
    if (nSamp === 0) return;
    const group = this.nHeads / this.nKvHeads;
    const grid: Record<TensorScoreKernel, number> = {
      rows: Math.ceil((nSamp * group) / PER_WORKGROUP),
      cols: Math.ceil(nCols / PER_WORKGROUP),
    };
    for (const kind of ['rows', 'cols'] as const) {
      if (grid[kind] === 0) continue;
      if (grid[kind] > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
        throw new GpuLimitError(
          `sample_scores_tensor_${kind}: ${grid[kind]} workgroups, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}; prefill in smaller row chunks`,
          { nSamp, nCols },
        );
      }
      const pipe = this.pipes[kind];
      pass.setPipeline(pipe);
      const entries: [number, GPUBuffer | GPUBufferBinding][] =
        kind === 'rows'
          ? [
              [0, b.q],
              [1, b.k],
              [3, b.rowStats],
              [6, b.params],
            ]
          : [
              [0, b.q],
              [1, b.k],
              [3, b.rowStats],
              [4, b.colScores],
              [5, b.groupScores],
              [6, b.params],
            ];
      pass.setBindGroup(0, bindAt(this.ctx, pipe, entries, `sample_scores_tensor_${kind}`));
      pass.dispatchWorkgroups(grid[kind], this.nKvHeads);
    }
  }
}
