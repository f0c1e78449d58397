/**
 * Launcher and CPU reference for kernels/norm.wgsl: RMSNorm, optionally fused
 * with the residual add before it. x (the residual stream) is f32; y and res are
 * the tier's activation type (src/gpu/wgsl-header.ts).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch } from './prepared.ts';
import { prepared } from './prepared.ts';
import source from './norm.wgsl?raw';
import type { KernelTier } from '../src/gpu/tier.ts';
import { wgslHeader } from '../src/gpu/wgsl-header.ts';

/** The pipelines prepare() takes for rows of `dim` in `tier`: plain and fused, the vec4 kernels when rows are whole vec4s (a quarter of the loop trips). */
export function normSpecs(dim: number, tier: KernelTier = 'f32'): PipelineSpec[] {
  const code = wgslHeader(tier) + source;
  const v4 = dim % 4 === 0 ? '4' : '';
  return ['rmsnorm' + v4, 'add_rmsnorm' + v4].map((e) => ({ label: `${e}_${tier}`, code, entryPoint: e, tier }));
}

export interface NormArgs {
  /** (xRowOffset + rows, dim) f32; with `res`, updated in place to x + res. */
  x: GPUBuffer;
  /** (dim) f32 */
  w: GPUBuffer;
  /** (rows, dim) act of the tier */
  y: GPUBuffer;
  rows: number;
  dim: number;
  eps: number;
  /** (rows, dim) act: when given, x += res first (add_rmsnorm). */
  res?: GPUBuffer;
  /** Rows of x to skip (plain rmsnorm only): normalizes rows [off, off + rows) into y rows [0, rows). */
  xRowOffset?: number;
}

export class RmsNorm {
  private constructor(
    private ctx: GpuContext,
    private tier: KernelTier,
  ) {}

  /** Pipelines come from the cache in prepare() (normSpecs; precompiled by an engine's load). */
  static create(ctx: GpuContext, tier: KernelTier = 'f32'): RmsNorm {
    return new RmsNorm(ctx, tier);
  }

  prepare(a: NormArgs): Dispatch {
    if (a.res && a.xRowOffset) throw new RangeError('add_rmsnorm has no xRowOffset');
    const params = uniformBuffer(this.ctx, [a.rows, a.dim, a.eps, a.xRowOffset ?? 0], 'rmsnorm_params', ['u32', 'u32', 'f32', 'u32']);
    const [plain, fused] = normSpecs(a.dim, this.tier);
    const p = pipeline(this.ctx, a.res ? fused : plain);
    const buffers = a.res ? [a.x, a.w, a.y, params, a.res] : [a.x, a.w, a.y, params];
    const bg = bindBuffers(this.ctx, p, buffers, a.res ? 'add_rmsnorm' : 'rmsnorm');
    return prepared(this.ctx, p, bg, [a.rows], [params]);
  }
}

/** CPU reference (f64 sums). Returns [y, x + res]. */
export function rmsnormRef(x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number, res?: Float32Array): [Float32Array, Float32Array] {
  const y = new Float32Array(rows * dim);
  const xs = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < dim; c++) {
      const v = x[r * dim + c] + (res ? res[r * dim + c] : 0);
      xs[r * dim + c] = v;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let c = 0; c < dim; c++) y[r * dim + c] = xs[r * dim + c] * inv * w[c];
  }
  return [y, xs];
}
