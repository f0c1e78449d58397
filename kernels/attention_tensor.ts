/**
 * Launchers of kernels/attention_tensor.wgsl: the 'tensor' tier's prefill attention (f16
 * subgroup matrices, f32 softmax and accumulation) over an f16 KV cache, head dim 128.
 *  - TensorAttention (entry `main`): dense causal attention. One pipeline per GQA group size
 *    (tensorAttentionSpec).
 *  - TensorSparseAttention (entry `sparse`): SampleAttention's fused sparse pass (the selected
 *    ids j <= i - w, then the window (i - w, i]), reading the same Params uniform and selection
 *    lists as kernels/attention_prefill.wgsl MODE 1; a unit flagged dense runs its causal range
 *    in the same dispatch. One pipeline for every group size (tensorSparseSpec).
 * Lengths and positions are uniforms written per encode, so the pipelines serve every prompt
 * length. The engine reaches both through PrefillAttention (src/attention, created with
 * { tensor: true } where tensorAttentionFits); the specs are compiled at load.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, precompile, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import type { Dispatch, KvDtype } from './prepared.ts';
import source from './attention_tensor.wgsl?raw';
import { GpuLimitError } from '../src/errors.ts';

export const TENSOR_ATTENTION_HEAD_DIM = 128;
/** Bytes of the kernel's Params uniform. */
export const TENSOR_ATTENTION_PARAMS_BYTES = 32;
/** Query rows (position x head of a KV group) per workgroup (BR of the WGSL). */
const ROWS_PER_WORKGROUP = 64;

/** Whether a layer shape takes the tensor attention kernel: head dim 128 over an f16 cache, whole GQA groups. */
export function tensorAttentionFits(d: { nHeads: number; nKvHeads: number; headDim: number; kvDtype: KvDtype }): boolean {
  return d.headDim === TENSOR_ATTENTION_HEAD_DIM && d.kvDtype === 'f16' && d.nKvHeads >= 1 && d.nHeads % d.nKvHeads === 0;
}

/** The pipeline for nHeads / nKvHeads query heads per KV head. */
export function tensorAttentionSpec(nHeads: number, nKvHeads: number): PipelineSpec {
  const group = nHeads / nKvHeads;
  return { label: `attention_tensor_g${group}`, code: source, constants: { GROUP: group } };
}

/**
 * The fused sparse pass (entry point `sparse`): one pipeline for every GQA group size and for
 * per-head selection (group and K/V head divisor are uniforms).
 */
export function tensorSparseSpec(): PipelineSpec {
  return { label: 'attention_tensor_sparse', code: source, entryPoint: 'sparse' };
}

export interface TensorAttentionArgs {
  /** (rows, nHeads * 128) f32, RoPE applied */
  q: GPUBuffer;
  /** (nKvHeads, capacity, 128) f16 pairs */
  k: GPUBuffer;
  v: GPUBuffer;
  /** (rows, nHeads * 128) f32 */
  out: GPUBuffer;
  nHeads: number;
  nKvHeads: number;
  capacity: number;
}

/** The Params uniform of one pass: `rows` query positions from position `step`. */
export function tensorAttentionParams(rows: number, step: number, nHeads: number, capacity: number): ArrayBuffer {
  const words = new ArrayBuffer(TENSOR_ATTENTION_PARAMS_BYTES);
  const u = new Uint32Array(words);
  u[0] = rows;
  u[1] = step;
  u[2] = nHeads;
  u[3] = capacity;
  new Float32Array(words)[4] = Math.LOG2E / Math.sqrt(TENSOR_ATTENTION_HEAD_DIM);
  return words;
}

export class TensorAttention {
  private readonly pipe: GPUComputePipeline;
  private readonly group: number;

  /** Takes the pipeline from the device's cache (compile it at load: tensorAttentionSpec). */
  constructor(
    private ctx: GpuContext,
    readonly nHeads: number,
    readonly nKvHeads: number,
  ) {
    if (!tensorAttentionFits({ nHeads, nKvHeads, headDim: TENSOR_ATTENTION_HEAD_DIM, kvDtype: 'f16' })) {
      throw new RangeError(`attention_tensor: ${nHeads} query heads over ${nKvHeads} KV heads is not a whole GQA group`);
    }
    this.group = nHeads / nKvHeads;
    this.pipe = pipeline(ctx, tensorAttentionSpec(nHeads, nKvHeads));
  }

  /** Compiles the pipeline, then builds the launcher (tests, benchmarks). */
  static async create(ctx: GpuContext, nHeads: number, nKvHeads: number): Promise<TensorAttention> {
    await precompile(ctx, [tensorAttentionSpec(nHeads, nKvHeads)]);
    return new TensorAttention(ctx, nHeads, nKvHeads);
  }

  /** Records one pass of `rows` query positions; `params` holds tensorAttentionParams for it (written by the caller). */
  encode(pass: GPUComputePassEncoder, b: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; out: GPUBuffer; params: GPUBufferBinding }, rows: number): void {
    if (rows === 0) return;
    const groups = Math.ceil((rows * this.group) / ROWS_PER_WORKGROUP);
    if (groups > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
      throw new RangeError(`attention_tensor: ${rows} rows need ${groups} workgroups, over the device's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}`);
    }
    pass.setPipeline(this.pipe);
    pass.setBindGroup(0, bindBuffers(this.ctx, this.pipe, [b.q, b.k, b.v, b.out, b.params], 'attention_tensor'));
    pass.dispatchWorkgroups(groups, this.nKvHeads);
  }

  /** A dispatch with its own params uniform, whose rows and step are read at encode time from `shape()` (one encode per submit). */
  prepare(a: TensorAttentionArgs, shape: () => { rows: number; step: number }): Dispatch {
    const ctx = this.ctx;
    const params = createBuffer(ctx, TENSOR_ATTENTION_PARAMS_BYTES, STORAGE.uniform, 'attention_tensor_params');
    const binding: GPUBufferBinding = { buffer: params };
    return {
      encode: (pass: GPUComputePassEncoder) => {
        const { rows, step } = shape();
        if (rows === 0) return;
        ctx.device.queue.writeBuffer(params, 0, tensorAttentionParams(rows, step, a.nHeads, a.capacity));
        this.encode(pass, { q: a.q, k: a.k, v: a.v, out: a.out, params: binding }, rows);
      },
      destroy() {
        releaseBuffer(ctx, params);
      },
    };
  }
}

/** Buffers of one sparse pass: the prefill's (kernels/attention_prefill.ts FlashAttention.encode 'sparse'). */
export interface TensorSparseBuffers {
  /** (rows, nHeads * 128) f32, RoPE applied */
  q: GPUBuffer;
  /** (nKvHeads, capacity, 128) f16 pairs */
  k: GPUBuffer;
  v: GPUBuffer;
  /** (rows, nHeads * 128) f32 */
  out: GPUBuffer;
  /** The selection: (units, capacity + 1) u32 [count, ids ascending...], then (units) u32 dense flags. */
  sel: GPUBuffer;
  /** The prefill's 64-byte Params (kernels/attention_prefill.ts paramsWords): rows, pos, window, group, kvDiv, scale... */
  params: GPUBufferBinding;
}

/**
 * SampleAttention's fused sparse pass on the tensor cores (kernels/attention_tensor.wgsl `sparse`):
 * the same inputs and output as FlashAttention's 'sparse' mode followed by its dense fallback.
 */
export class TensorSparseAttention {
  private readonly pipe: GPUComputePipeline;

  /** Takes the pipeline from the device's cache (compile it at load: tensorSparseSpec). */
  constructor(private ctx: GpuContext) {
    this.pipe = pipeline(ctx, tensorSparseSpec());
  }

  /** Compiles the pipeline, then builds the launcher (tests, benchmarks). */
  static async create(ctx: GpuContext): Promise<TensorSparseAttention> {
    await precompile(ctx, [tensorSparseSpec()]);
    return new TensorSparseAttention(ctx);
  }

  /**
   * Records the pass over `rows` query rows: `units` selection units (y of the dispatch) of `group`
   * query heads each (the KV groups, or per-head selection's nHeads units of 1). `params` must hold
   * the same rows, group (nHeads / nKvHeads of the params) and units (their nKvHeads).
   */
  encode(pass: GPUComputePassEncoder, b: TensorSparseBuffers, rows: number, units: number, group: number): void {
    if (rows === 0) return;
    const groups = Math.ceil((rows * group) / ROWS_PER_WORKGROUP);
    if (groups > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
      throw new GpuLimitError(
        `attention_tensor sparse: ${rows} rows x ${group} heads per unit need ${groups} workgroups, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}; prefill in smaller row chunks`,
        { rows, groups },
      );
    }
    pass.setPipeline(this.pipe);
    const entries: [number, GPUBufferBinding][] = [
      [0, { buffer: b.q }],
      [1, { buffer: b.k }],
      [2, { buffer: b.v }],
      [3, { buffer: b.out }],
      [5, { buffer: b.sel }],
      [6, b.params],
    ];
    pass.setBindGroup(
      0,
      this.ctx.device.createBindGroup({
        label: 'attention_tensor_sparse',
        layout: this.pipe.getBindGroupLayout(0),
        entries: entries.map(([binding, resource]) => ({ binding, resource })),
      }),
    );
    pass.dispatchWorkgroups(groups, units);
  }
}
