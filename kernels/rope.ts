/**
 * Launcher, cos/sin tables and CPU reference for kernels/rope.wgsl: RoPE on Q
 * and K of a fused QKV projection, with K and V written into the KV cache.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import type { KernelTier } from '../src/gpu/tier.ts';
import { wgslHeader } from '../src/gpu/wgsl-header.ts';
import { uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch, KvDtype, LayerKv } from './prepared.ts';
import type { RopeSpec } from '../models/spec.ts';
import { prepared } from './prepared.ts';
import source from './rope.wgsl?raw';

export interface RopeShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  capacity: number;
  kvDtype: KvDtype;
  rope: RopeSpec;
  /** Kernel tier (src/gpu/tier.ts; default 'f32'): qkv and q hold its activation type. */
  tier?: KernelTier;
}

/** The pipeline RopeKv takes for this RoPE variant, KV element type and tier. */
export function ropeSpecs(shape: Pick<RopeShape, 'kvDtype' | 'rope' | 'tier'>): PipelineSpec[] {
  const tier = shape.tier ?? 'f32';
  return [
    {
      label: `rope_${shape.rope.variant}_${shape.kvDtype}_${tier}`,
      code: wgslHeader(tier) + source,
      constants: { VARIANT: shape.rope.variant === 'neox' ? 1 : 0, KV_F16: shape.kvDtype === 'f16' ? 1 : 0 },
      tier,
    },
  ];
}

export interface RopeArgs {
  /** (rows, (nHeads + 2 nKvHeads) * headDim) act */
  qkv: GPUBuffer;
  /** (rows, rotaryDim / 2) vec2 f32, filled by writeRopeTable */
  table: GPUBuffer;
  /** (rows, nHeads * headDim) act */
  q: GPUBuffer;
  kv: LayerKv;
  /** uniform: pos, rows, kvLen (StepUniform) */
  step: GPUBuffer;
  rows: number;
}

export class RopeKv {
  private constructor(
    private ctx: GpuContext,
    private pipeline: GPUComputePipeline,
    readonly shape: RopeShape,
  ) {}

  /** Takes its pipeline from the cache (ropeSpecs; precompiled by an engine's load). */
  static create(ctx: GpuContext, shape: RopeShape): RopeKv {
    if (shape.headDim % 2 !== 0 || shape.rope.rotaryDim % 2 !== 0 || shape.rope.rotaryDim > shape.headDim) {
      throw new RangeError(`rope: headDim ${shape.headDim} and rotaryDim ${shape.rope.rotaryDim} must be even, rotaryDim <= headDim`);
    }
    return new RopeKv(ctx, pipeline(ctx, ropeSpecs(shape)[0]), shape);
  }

  prepare(a: RopeArgs): Dispatch {
    const s = this.shape;
    const params = uniformBuffer(this.ctx, [a.rows, s.nHeads, s.nKvHeads, s.headDim, s.rope.rotaryDim, s.capacity, 0, 0], 'rope_params');
    const bg = bindBuffers(this.ctx, this.pipeline, [a.qkv, a.table, a.q, a.kv.k, a.kv.v, params, a.step], 'rope_kv');
    const pairs = ((s.nHeads + 2 * s.nKvHeads) * s.headDim) / 2;
    return prepared(this.ctx, this.pipeline, bg, [Math.ceil(pairs / 64), a.rows], [params]);
  }
}

/** Inverse frequencies in f32, as `1 / base ** (arange(0, rotaryDim, 2) / rotaryDim)` in float32. */
export function invFreq(base: number, rotaryDim: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(1 / Math.fround(base ** Math.fround((2 * i) / rotaryDim)));
  return out;
}

/**
 * The base in effect when the sequence is `seqLen` long: dynamic NTK (InternLM2
 * rope_scaling.type 'dynamic') raises it past maxPositions; otherwise unchanged.
 */
export function effectiveBase(rope: RopeSpec, seqLen: number): number {
  const s = rope.scaling;
  if (s?.type !== 'dynamic' || seqLen <= rope.maxPositions) return rope.base;
  const d = rope.rotaryDim;
  return rope.base * ((s.factor * seqLen) / rope.maxPositions - (s.factor - 1)) ** (d / (d - 2));
}

/**
 * cos/sin for positions [pos, pos + rows) as (rows, rotaryDim / 2) pairs, in f32
 * (angle = f32(position * invFreq)); `seqLen` is the sequence length that the
 * dynamic NTK base depends on (the end of the current prefill or decode step).
 */
export function ropeTable(rope: RopeSpec, pos: number, rows: number, seqLen: number, out?: Float32Array): Float32Array {
  const inv = invFreq(effectiveBase(rope, seqLen), rope.rotaryDim);
  const half = inv.length;
  const t = out ?? new Float32Array(rows * half * 2);
  const linear = rope.scaling?.type === 'linear' ? rope.scaling.factor : 1;
  for (let r = 0; r < rows; r++) {
    const p = Math.fround((pos + r) / linear);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]);
      t[(r * half + i) * 2] = Math.cos(angle);
      t[(r * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return t;
}

/** CPU reference of RoPE on one head vector `x` (length headDim) with table row `cs` (rotaryDim / 2 pairs). */
export function ropeHeadRef(x: ArrayLike<number>, cs: ArrayLike<number>, variant: RopeSpec['variant'], rotaryDim: number): Float64Array {
  const out = Float64Array.from(x);
  const half = rotaryDim / 2;
  if (variant === 'interleaved-half') {
    for (let i = 0; i < half; i++) {
      const a = x[2 * i],
        b = x[2 * i + 1],
        c = cs[2 * i],
        s = cs[2 * i + 1];
      out[2 * i] = a * c - b * s;
      out[2 * i + 1] = b * c + a * s;
    }
  } else {
    for (let j = 0; j < half; j++) {
      const a = x[j],
        b = x[j + half],
        c = cs[2 * j],
        s = cs[2 * j + 1];
      out[j] = a * c - b * s;
      out[j + half] = b * c + a * s;
    }
  }
  return out;
}

/**
 * CPU reference of the whole op: returns roped q (rows, nHeads * headDim) and
 * k, v as (nKvHeads, rows, headDim) for positions [pos, pos + rows).
 */
export function ropeKvRef(qkv: Float32Array, table: Float32Array, s: Omit<RopeShape, 'capacity' | 'kvDtype'>, rows: number) {
  const { nHeads, nKvHeads, headDim: hd } = s;
  const nTotal = nHeads + 2 * nKvHeads;
  const half = s.rope.rotaryDim / 2;
  const q = new Float32Array(rows * nHeads * hd);
  const k = new Float32Array(nKvHeads * rows * hd);
  const v = new Float32Array(nKvHeads * rows * hd);
  for (let r = 0; r < rows; r++) {
    const cs = table.subarray(r * half * 2, (r + 1) * half * 2);
    for (let h = 0; h < nTotal; h++) {
      const x = qkv.subarray((r * nTotal + h) * hd, (r * nTotal + h + 1) * hd);
      if (h < nHeads) q.set(ropeHeadRef(x, cs, s.rope.variant, s.rope.rotaryDim), (r * nHeads + h) * hd);
      else if (h < nHeads + nKvHeads) k.set(ropeHeadRef(x, cs, s.rope.variant, s.rope.rotaryDim), ((h - nHeads) * rows + r) * hd);
      else v.set(x, ((h - nHeads - nKvHeads) * rows + r) * hd);
    }
  }
  return { q, k, v };
}
