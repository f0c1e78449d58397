/**
 * Launcher of kernels/attention_tensor.wgsl: the 'tensor' tier's dense causal prefill
 * attention (f16 subgroup matrices, f32 softmax and accumulation) over an f16 KV cache,
 * head dim 128. Lengths and positions are uniforms written per encode, so one pipeline
 * per GQA group size serves every prompt length. The engine reaches it through
 * PrefillAttention (src/attention, its dense path when created with { tensor: true } and
 * tensorAttentionFits); tensorAttentionSpec() is the pipeline, compiled at load.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, precompile, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import type { Dispatch, KvDtype } from './prepared.ts';
import source from './attention_tensor.wgsl?raw';

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
