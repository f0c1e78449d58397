/**
 * A Dispatch from a pipeline, its bind group and a grid,
 * owning the uniforms it was built with. Shared by the engine's small kernels.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { releaseBuffer, uniformBuffer } from '../src/gpu/buffers.ts';

/**
 * A prepared kernel launch: pipeline, bind groups and uniforms built once
 * (at engine build time, per chunk size), replayed on every forward pass so
 * the decode loop allocates nothing. Values that change per step (position,
 * KV length) are read by kernels from uniform buffers the engine rewrites
 * with queue.writeBuffer.
 */
export interface Dispatch {
  encode(pass: GPUComputePassEncoder): void;
  /** Releases the uniforms this dispatch created (not the buffers it was given). */
  destroy(): void;
}

export type KvDtype = 'f32' | 'f16';

/**
 * KV cache of one layer: K and V each [nKvHeads, capacity, headDim],
 * head-major. 'f32': array<f32>; 'f16': array<u32>, two halves per word
 * along headDim (headDim is even), low half first.
 */
export interface LayerKv {
  k: GPUBuffer;
  v: GPUBuffer;
}

export function prepared(
  ctx: GpuContext,
  pipeline: GPUComputePipeline,
  bindGroup: GPUBindGroup,
  grid: [number, number?, number?] | (() => [number, number?, number?]),
  owned: GPUBuffer[] = [],
): Dispatch {
  return {
    encode(pass: GPUComputePassEncoder) {
      const [x, y = 1, z = 1] = typeof grid === 'function' ? grid() : grid;
      if (x * y * z === 0) return;
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
    },
    destroy() {
      for (const b of owned) releaseBuffer(ctx, b);
      owned.length = 0;
    },
  };
}

/** Records `dispatches` into one compute pass and submits (tests, one-off use). */
export function runDispatches(ctx: GpuContext, dispatches: Dispatch[], label = 'run'): void {
  const enc = ctx.device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  for (const d of dispatches) d.encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
}

/**
 * The per-step uniform the engine rewrites before each submit (queue order
 * makes each command buffer see its own values): pos (first position of the
 * rows being processed), rows, kvLen (= pos + rows).
 */
export class StepUniform {
  readonly buffer: GPUBuffer;
  private words = new Uint32Array(4);
  constructor(
    private ctx: GpuContext,
    label = 'step',
  ) {
    this.buffer = uniformBuffer(ctx, [0, 0, 0, 0], label);
  }
  set(pos: number, rows: number): void {
    this.words[0] = pos;
    this.words[1] = rows;
    this.words[2] = pos + rows;
    this.ctx.device.queue.writeBuffer(this.buffer, 0, this.words);
  }
  destroy(): void {
    releaseBuffer(this.ctx, this.buffer);
  }
}
