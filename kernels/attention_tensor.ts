/**
 * Launcher of kernels/attention_tensor.wgsl: the 'tensor' tier's dense causal prefill
 * attention (f16 subgroup matrices, f32 softmax and accumulation) over an f16 KV cache,
 * head dim 128. Lengths and positions are uniforms written at encode time, so one pipeline
 * per GQA group size serves every prompt length.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, getPipeline } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import type { Dispatch } from '../src/engine/types.ts';
import source from './attention_tensor.wgsl?raw';

export const TENSOR_ATTENTION_HEAD_DIM = 128;

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

export class TensorAttention {
  private constructor(
    private ctx: GpuContext,
    private pipeline: GPUComputePipeline,
    private group: number,
  ) {}

  static async create(ctx: GpuContext, nHeads: number, nKvHeads: number): Promise<TensorAttention> {
    const group = nHeads / nKvHeads;
    const pipeline = await getPipeline(ctx, { label: `attention_tensor_g${group}`, code: source, constants: { GROUP: group } });
    return new TensorAttention(ctx, pipeline, group);
  }

  /** A dispatch whose rows and step are read at encode time from `shape()`. */
  prepare(a: TensorAttentionArgs, shape: () => { rows: number; step: number }): Dispatch {
    const ctx = this.ctx;
    const params = createBuffer(ctx, 32, STORAGE.uniform, 'attention_tensor_params');
    const bg = bindBuffers(ctx, this.pipeline, [a.q, a.k, a.v, a.out, params], 'attention_tensor');
    const words = new ArrayBuffer(32);
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    const pipeline = this.pipeline;
    const group = this.group;
    return {
      encode(pass: GPUComputePassEncoder) {
        const { rows, step } = shape();
        if (rows === 0) return;
        u[0] = rows;
        u[1] = step;
        u[2] = a.nHeads;
        u[3] = a.capacity;
        f[4] = Math.LOG2E / Math.sqrt(TENSOR_ATTENTION_HEAD_DIM);
        ctx.device.queue.writeBuffer(params, 0, words);
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(Math.ceil((rows * group) / 64), a.nKvHeads);
      },
      destroy() {
        releaseBuffer(ctx, params);
      },
    };
  }
}
