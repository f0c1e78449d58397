/**
 * Launcher and CPU references for kernels/argmax.wgsl: argmax and top-k of a
 * logits vector on the GPU (only the chosen ids/values are read back).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, readBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch } from './prepared.ts';
import { prepared } from './prepared.ts';
import { InvalidOptionError } from '../src/errors.ts';
import source from './argmax.wgsl?raw';

const CHUNK = 1024;
/** Largest k topK accepts. */
export const MAX_TOP_K = 256;

/** Past this length argmax runs in two stages (top-1 of each CHUNK on many workgroups, then a merge). */
const ONE_WORKGROUP_MAX = 4 * CHUNK;

const spec = (entryPoint: 'argmax' | 'topk_partial' | 'topk_merge'): PipelineSpec => ({ label: entryPoint, code: source, entryPoint });

/** The pipelines argmax over `n` values and top-k take (the two-stage argmax runs the top-k ones). */
export function argmaxSpecs(n: number): PipelineSpec[] {
  return [...(n <= ONE_WORKGROUP_MAX ? [spec('argmax')] : []), spec('topk_partial'), spec('topk_merge')];
}

export class ArgmaxKernels {
  private constructor(private ctx: GpuContext) {}

  /** Pipelines come from the cache in the prepare calls (argmaxSpecs; precompiled by an engine's load). */
  static create(ctx: GpuContext): ArgmaxKernels {
    return new ArgmaxKernels(ctx);
  }

  /**
   * out[0] (u32) = argmax of x[0..n). One workgroup up to ONE_WORKGROUP_MAX
   * values; past that, top-1 of each chunk in parallel, then one merge
   * workgroup (one workgroup over a 92544-entry vocabulary is a serial loop of 362 loads per thread).
   */
  prepareArgmax(x: GPUBuffer, n: number, out: GPUBuffer): Dispatch {
    const ctx = this.ctx;
    if (n <= ONE_WORKGROUP_MAX) {
      const params = uniformBuffer(ctx, [n, 0, 0, 0], 'argmax_params');
      const p = pipeline(ctx, spec('argmax'));
      return prepared(ctx, p, bindBuffers(ctx, p, [x, out, params], 'argmax'), [1], [params]);
    }
    const nChunks = Math.ceil(n / CHUNK);
    const owned = [
      createBuffer(ctx, nChunks * 4, STORAGE.rw, 'argmax_candV'),
      createBuffer(ctx, nChunks * 4, STORAGE.rw, 'argmax_candI'),
      createBuffer(ctx, 4, STORAGE.rw, 'argmax_value'),
      uniformBuffer(ctx, [n, 1, nChunks, 0], 'argmax_params'),
    ];
    const [candV, candI, value, params] = owned;
    const partialPipe = pipeline(ctx, spec('topk_partial'));
    const mergePipe = pipeline(ctx, spec('topk_merge'));
    const bgPartial = bindBuffers(ctx, partialPipe, [x, candV, candI, params], 'argmax_partial');
    const bgMerge = bindBuffers(ctx, mergePipe, [candV, candI, value, out, params], 'argmax_merge');
    return {
      encode(pass) {
        pass.setPipeline(partialPipe);
        pass.setBindGroup(0, bgPartial);
        pass.dispatchWorkgroups(nChunks);
        pass.setPipeline(mergePipe);
        pass.setBindGroup(0, bgMerge);
        pass.dispatchWorkgroups(1);
      },
      destroy() {
        for (const b of owned) releaseBuffer(ctx, b);
        owned.length = 0;
      },
    };
  }

  /** Top-k of x[0..n): a Dispatch writing values (k) f32 and ids (k) u32, best first. */
  prepareTopK(x: GPUBuffer, n: number, k: number): TopK {
    if (!(Number.isInteger(k) && k >= 1 && k <= MAX_TOP_K && k <= n))
      throw new InvalidOptionError('k', `top-k needs an integer in [1, min(${MAX_TOP_K}, ${n})], got ${k}`);
    return new TopK(this.ctx, pipeline(this.ctx, spec('topk_partial')), pipeline(this.ctx, spec('topk_merge')), x, n, k);
  }
}

export class TopK implements Dispatch {
  readonly values: GPUBuffer;
  readonly ids: GPUBuffer;
  private candV: GPUBuffer;
  private candI: GPUBuffer;
  private params: GPUBuffer;
  private bgPartial: GPUBindGroup;
  private bgMerge: GPUBindGroup;
  private nChunks: number;

  constructor(
    private ctx: GpuContext,
    private partial: GPUComputePipeline,
    private merge: GPUComputePipeline,
    x: GPUBuffer,
    n: number,
    readonly k: number,
  ) {
    this.nChunks = Math.ceil(n / CHUNK);
    this.candV = createBuffer(ctx, this.nChunks * k * 4, STORAGE.rw, 'topk_candV');
    this.candI = createBuffer(ctx, this.nChunks * k * 4, STORAGE.rw, 'topk_candI');
    this.values = createBuffer(ctx, k * 4, STORAGE.rw, 'topk_values');
    this.ids = createBuffer(ctx, k * 4, STORAGE.rw, 'topk_ids');
    this.params = uniformBuffer(ctx, [n, k, this.nChunks, 0], 'topk_params');
    this.bgPartial = bindBuffers(ctx, partial, [x, this.candV, this.candI, this.params], 'topk_partial');
    this.bgMerge = bindBuffers(ctx, merge, [this.candV, this.candI, this.values, this.ids, this.params], 'topk_merge');
  }

  encode(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.partial);
    pass.setBindGroup(0, this.bgPartial);
    pass.dispatchWorkgroups(this.nChunks);
    pass.setPipeline(this.merge);
    pass.setBindGroup(0, this.bgMerge);
    pass.dispatchWorkgroups(1);
  }

  /** Reads back the result of the last submitted run. */
  async read(): Promise<{ ids: Uint32Array; values: Float32Array }> {
    const [ids, values] = await Promise.all([readBuffer(this.ctx, this.ids, this.k * 4), readBuffer(this.ctx, this.values, this.k * 4)]);
    return { ids: new Uint32Array(ids), values: new Float32Array(values) };
  }

  destroy(): void {
    for (const b of [this.candV, this.candI, this.values, this.ids, this.params]) releaseBuffer(this.ctx, b);
  }
}

/** CPU reference: first index of the largest value (NaN never wins). */
export function argmaxRef(x: ArrayLike<number>): number {
  let bi = 0,
    bv = -Infinity;
  for (let i = 0; i < x.length; i++)
    if (x[i] > bv) {
      bv = x[i];
      bi = i;
    }
  return bi;
}

/** CPU reference: the k largest (value desc, then index asc). */
export function topKRef(x: ArrayLike<number>, k: number): { ids: number[]; values: number[] } {
  const idx = Array.from({ length: x.length }, (_, i) => i).filter((i) => !Number.isNaN(x[i]));
  idx.sort((a, b) => x[b] - x[a] || a - b);
  const ids = idx.slice(0, k);
  return { ids, values: ids.map((i) => x[i]) };
}
