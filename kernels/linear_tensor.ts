/**
 * Launcher of kernels/linear_tensor.wgsl: the 'tensor' tier's prefill linear layer
 * (f16 subgroup matrices, f32 accumulation) for f16, q8 and q4 weights, plain (+ bias) and
 * the fused gate/up (silu(gate) * up). Used for prefill chunks of at least
 * TENSOR_MIN_ROWS rows when the device offers shader-f16 and f16 subgroup matrices
 * (see tensorTierSupport); everything else stays on the f32 kernels.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, getPipeline } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import type { GpuWeight, GpuWeightPart, WeightFormat } from '../src/loader/formats.ts';
import type { Dispatch } from '../src/engine/types.ts';
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

/** Why the tensor tier cannot run on this device ('' when it can). */
export function tensorTierSupport(ctx: GpuContext): string {
  if (!ctx.features.has('shader-f16')) return 'no shader-f16';
  if (!ctx.features.has('subgroups')) return 'no subgroups';
  if (!ctx.features.has('chromium-experimental-subgroup-matrix')) return 'no chromium-experimental-subgroup-matrix';
  const info = ctx.adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: unknown[]; subgroupMinSize?: number; subgroupMaxSize?: number };
  if (info.subgroupMinSize !== 32 || info.subgroupMaxSize !== 32) return `subgroup size ${info.subgroupMinSize}..${info.subgroupMaxSize}, not 32`;
  const ok = (info.subgroupMatrixConfigs ?? []).some((c) => {
    const o = c as Record<string, unknown>;
    return o.componentType === 'f16' && o.resultComponentType === 'f32' && o.M === 16 && o.N === 16 && o.K === 16;
  });
  if (!ok) return 'no f16 x f16 -> f32 16x16x16 subgroup matrix';
  if (ctx.limits.maxComputeWorkgroupStorageSize < 36864) return 'workgroup storage below 36 KiB';
  return '';
}

/** Whether this weight can take the tensor kernel (K a multiple of 32, a supported format and group). */
export function tensorLinearFits(w: GpuWeight): boolean {
  const inDim = w.shape[1];
  if (FORMAT_ID[w.format] === undefined || inDim % 32 !== 0) return false;
  return w.format === 'f16' || (w.groupSize % 32 === 0 && inDim % w.groupSize === 0);
}

export class TensorLinear {
  private constructor(
    private ctx: GpuContext,
    private pipelines: Map<string, GPUComputePipeline>,
    private dummy: GPUBuffer,
  ) {}

  /** Compiles the pipelines for the given weight formats (plain, bias, gate/up each). */
  static async create(ctx: GpuContext, formats: WeightFormat[]): Promise<TensorLinear> {
    const pipelines = new Map<string, GPUComputePipeline>();
    const jobs: Promise<void>[] = [];
    for (const f of new Set(formats)) {
      const id = FORMAT_ID[f];
      if (id === undefined) continue;
      for (const mode of ['plain', 'bias', 'gateup'] as const) {
        const constants = { FORMAT: id, GATE_UP: mode === 'gateup' ? 1 : 0, HAS_BIAS: mode === 'bias' ? 1 : 0 };
        jobs.push(
          getPipeline(ctx, { label: `linear_tensor_${f}_${mode}`, code: source, constants }).then((p) => {
            pipelines.set(`${f}/${mode}`, p);
          }),
        );
      }
    }
    await Promise.all(jobs);
    const dummy = createBuffer(ctx, 16, STORAGE.rw, 'linear_tensor_dummy');
    return new TensorLinear(ctx, pipelines, dummy);
  }

  destroy(): void {
    releaseBuffer(this.ctx, this.dummy);
  }

  /** y = x W^T (+ bias), or silu(x Wg^T) * (x Wu^T) with gateUp: one dispatch per weight part (segment). */
  prepare(a: TensorLinearArgs, gateUp = false): Dispatch {
    const [out, inDim] = a.w.shape;
    const f = gateUp ? out / 2 : out;
    const mode = gateUp ? 'gateup' : a.bias ? 'bias' : 'plain';
    const pipeline = this.pipelines.get(`${a.w.format}/${mode}`);
    if (!pipeline) throw new Error(`linear_tensor: no pipeline for ${a.w.format}/${mode} (not compiled at load)`);
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
        pipeline,
        [a.x, s.g.data, s.g.scales ?? this.dummy, s.u.data, s.u.scales ?? this.dummy, a.bias ?? this.dummy, a.y, dims],
        'linear_tensor',
      );
      work.push({ bg, grid: [Math.ceil(s.n / (gateUp ? 64 : 128)), Math.ceil(a.rows / TILE_ROWS)] });
    }
    const ctx = this.ctx;
    return {
      encode(pass: GPUComputePassEncoder) {
        pass.setPipeline(pipeline);
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
