/** Launcher and CPU reference for kernels/elementwise.wgsl (residual add). */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, dispatchDims, getPipeline } from '../src/gpu/pipelines.ts';
import { uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch } from '../src/engine/types.ts';
import { prepared } from './prepared.ts';
import source from './elementwise.wgsl?raw';

export class Elementwise {
  private constructor(private ctx: GpuContext, private addPipeline: GPUComputePipeline) {}

  static async create(ctx: GpuContext): Promise<Elementwise> {
    return new Elementwise(ctx, await getPipeline(ctx, { label: 'add', code: source, entryPoint: 'add' }));
  }

  /** a[0..n) += b[0..n) (f32). */
  prepareAdd(a: GPUBuffer, b: GPUBuffer, n: number): Dispatch {
    const [gx, gy] = dispatchDims(this.ctx, Math.ceil(n / 256));
    const params = uniformBuffer(this.ctx, [n, gx], 'add_params');
    const bg = bindBuffers(this.ctx, this.addPipeline, [a, b, params], 'add');
    return prepared(this.ctx, this.addPipeline, bg, [gx, gy], [params]);
  }
}

export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}
