/**
 * Launcher of kernels/linear_tensor.wgsl: the 'tensor' tier's prefill linear layer
 * (f16 subgroup matrices, f32 accumulation) for f16, q8 and q4 weights, plain (+ bias) and
 * the fused gate/up (silu(gate) * up). Used for prefill chunks of at least
 * TENSOR_MIN_ROWS rows when the device offers shader-f16 and f16 subgroup matrices
 * (src/gpu/tier.ts tensorTierSupport); everything else stays on the f32 kernels. The engine
 * reaches it through LinearKernels (kernels/linear.ts, LinearOptions.tensor), which routes
 * prefills of TENSOR_MIN_ROWS rows or more whose weight fits (tensorLinearFits) here;
 * tensorLinearSpecs() lists the pipelines, compiled at load like every other.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, precompile, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import type { GpuWeight, GpuWeightPart, WeightFormat } from '../src/gpu/formats.ts';
import type { Dispatch } from './prepared.ts';
import source from './linear_tensor.wgsl?raw';

const FORMAT_ID: Partial<Record<WeightFormat, number>> = { f16: 0, q8: 1, q4: 2 };
const TILE_ROWS = 128;

/** Fewest rows worth a tensor-core tile (below it the f32 kernels are as fast). */
export const TENSOR_MIN_ROWS = 64;

export interface TensorLinearArgs {
  /** (rows, in) f32 starting at xOffsetBytes */
  x: GPUBuffer;
  xOffsetBytes?: number;
  /** [out, in]; with gateUp [2F, in]: gate rows then up rows */
  w: GpuWeight;
  /** (out) f32 */
  bias?: GPUBuffer;
  /** (rows, out) f32 (gateUp: (rows, F)) starting at yOffsetBytes */
  y: GPUBuffer;
  yOffsetBytes?: number;
  rows: number;
}

/** Whether this weight can take the tensor kernel (K a multiple of 32, a supported format and group). */
export function tensorLinearFits(w: GpuWeight): boolean {
  const inDim = w.shape[1];
  if (FORMAT_ID[w.format] === undefined || inDim % 32 !== 0) return false;
  return w.format === 'f16' || (w.groupSize % 32 === 0 && inDim % w.groupSize === 0);
}

export type TensorLinearMode = 'plain' | 'bias' | 'gateup';

/** The pipeline of one weight format and mode (f16, q8, q4; f32 weights have none). */
export function tensorLinearSpec(format: WeightFormat, mode: TensorLinearMode): PipelineSpec | undefined {
  const id = FORMAT_ID[format];
  if (id === undefined) return undefined;
  return {
    label: `linear_tensor_${format}_${mode}`,
    code: source,
    constants: { FORMAT: id, GATE_UP: mode === 'gateup' ? 1 : 0, HAS_BIAS: mode === 'bias' ? 1 : 0 },
  };
}

/** The pipelines for these formats, each mode (plain, bias, gate/up). */
export function tensorLinearSpecs(formats: Iterable<WeightFormat>): PipelineSpec[] {
  const out: PipelineSpec[] = [];
  for (const f of new Set(formats)) {
    for (const mode of ['plain', 'bias', 'gateup'] as const) {
      const spec = tensorLinearSpec(f, mode);
      if (spec) out.push(spec);
    }
  }
  return out;
}

export class TensorLinear {
  private readonly dummy: GPUBuffer;

  /** Pipelines are taken from the device's cache at prepare (compile them at load: tensorLinearSpecs). */
  constructor(private ctx: GpuContext) {
    this.dummy = createBuffer(ctx, 16, STORAGE.rw, 'linear_tensor_dummy');
  }

  /** Compiles the pipelines for the given weight formats (plain, bias, gate/up each), then builds the launcher (tests, benchmarks). */
  static async create(ctx: GpuContext, formats: WeightFormat[]): Promise<TensorLinear> {
    await precompile(ctx, tensorLinearSpecs(formats));
    return new TensorLinear(ctx);
  }

  destroy(): void {
    releaseBuffer(this.ctx, this.dummy);
  }

  /** y = x W^T (+ bias), or silu(x Wg^T) * (x Wu^T) with gateUp: one dispatch per weight part (segment). */
  prepare(a: TensorLinearArgs, gateUp = false): Dispatch {
    const [out, inDim] = a.w.shape;
    const f = gateUp ? out / 2 : out;
    const mode = gateUp ? 'gateup' : a.bias ? 'bias' : 'plain';
    const spec = tensorLinearSpec(a.w.format, mode);
    if (!spec || !tensorLinearFits(a.w)) throw new RangeError(`linear_tensor: ${a.w.name} (${a.w.format}, [${a.w.shape}]) does not fit the tensor kernel`);
    const pipe = pipeline(this.ctx, spec);
    const x0 = (a.xOffsetBytes ?? 0) / 4;
    const y0 = (a.yOffsetBytes ?? 0) / 4;
    if (x0 % 4 !== 0) throw new RangeError('linear_tensor: x offset must be a multiple of 16 bytes');
    // Segments of output columns [c0, c0 + n), each reading one part (gate and up: one part each).
    const segs: { c0: number; n: number; g: GpuWeightPart; u: GpuWeightPart; row0: number; row1: number }[] = [];
    const partOf = (row: number) => a.w.parts.find((p) => row >= p.rowStart && row < p.rowStart + p.rows)!;
    const cuts = new Set<number>([0, f]);
    for (const p of a.w.parts) {
      for (const r of [p.rowStart, p.rowStart + p.rows]) {
        if (gateUp) {
          if (r > 0 && r < f) cuts.add(r);
          if (r > f && r < 2 * f) cuts.add(r - f);
        } else if (r > 0 && r < out) cuts.add(r);
      }
    }
    const bounds = [...cuts].sort((p, q) => p - q);
    for (let i = 0; i + 1 < bounds.length; i++) {
      const c0 = bounds[i];
      const g = partOf(c0);
      const u = gateUp ? partOf(f + c0) : g;
      segs.push({ c0, n: bounds[i + 1] - c0, g, u, row0: c0 - g.rowStart, row1: gateUp ? f + c0 - u.rowStart : 0 });
    }
    const owned: GPUBuffer[] = [];
    const work: { bg: GPUBindGroup; grid: [number, number] }[] = [];
    for (const s of segs) {
      const dims = uniformBuffer(this.ctx, [a.rows, s.n, inDim, f, y0 + s.c0, x0, s.row0, s.row1, s.c0, a.w.groupSize || 32, 0, 0], 'linear_tensor_dims');
      owned.push(dims);
      const bg = bindBuffers(
        this.ctx,
        pipe,
        [a.x, s.g.data, s.g.scales ?? this.dummy, s.u.data, s.u.scales ?? this.dummy, a.bias ?? this.dummy, a.y, dims],
        'linear_tensor',
      );
      work.push({ bg, grid: [Math.ceil(s.n / (gateUp ? 64 : 128)), Math.ceil(a.rows / TILE_ROWS)] });
    }
    const ctx = this.ctx;
    return {
      encode(pass: GPUComputePassEncoder) {
        pass.setPipeline(pipe);
        for (const w of work) {
          pass.setBindGroup(0, w.bg);
          pass.dispatchWorkgroups(w.grid[0], w.grid[1]);
        }
      },
      destroy() {
        for (const b of owned) releaseBuffer(ctx, b);
        owned.length = 0;
      },
    };
  }
}
