/**
 * Launcher and CPU reference for bench/matmul.wgsl: C (M, N) = A (M, K) * B (N, K)^T, f32.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, getPipeline } from '../src/gpu/pipelines.ts';
import { uniformBuffer, releaseBuffer } from '../src/gpu/buffers.ts';
import source from './matmul.wgsl?raw';

export const MATMUL_TILE = 128;

export interface MatmulShape {
  m: number;
  n: number;
  k: number;
}

export class MatmulF32 {
  private constructor(
    private ctx: GpuContext,
    readonly pipeline: GPUComputePipeline,
  ) {}

  static async create(ctx: GpuContext): Promise<MatmulF32> {
    return new MatmulF32(ctx, await getPipeline(ctx, { label: 'matmul_f32', code: source }));
  }

  /** Records the matmul into `pass`. `dims` is a uniform made by `dimsBuffer`. */
  encode(pass: GPUComputePassEncoder, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, dims: GPUBuffer, shape: MatmulShape): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, bindBuffers(this.ctx, this.pipeline, [a, b, c, dims], 'matmul_f32'));
    pass.dispatchWorkgroups(Math.ceil(shape.n / MATMUL_TILE), Math.ceil(shape.m / MATMUL_TILE));
  }

  dimsBuffer(shape: MatmulShape): GPUBuffer {
    return uniformBuffer(this.ctx, [shape.m, shape.n, shape.k, 0], 'matmul_dims');
  }

  /** Encodes and submits one matmul (convenience for tests and the CLI). */
  run(a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape): void {
    const dims = this.dimsBuffer(shape);
    const enc = this.ctx.device.createCommandEncoder({ label: 'matmul' });
    const pass = enc.beginComputePass({ label: 'matmul' });
    this.encode(pass, a, b, c, dims, shape);
    pass.end();
    this.ctx.device.queue.submit([enc.finish()]);
    this.ctx.device.queue.onSubmittedWorkDone().then(() => releaseBuffer(this.ctx, dims));
  }
}

/** CPU reference (f64 accumulation). */
export function matmulRef(a: Float32Array, b: Float32Array, { m, n, k }: MatmulShape): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[j * k + t];
      c[i * n + j] = s;
    }
  }
  return c;
}
