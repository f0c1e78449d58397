/**
 * Launcher and CPU reference for kernels/attention_decode.wgsl: attention of
 * `rows` query rows at positions [pos, pos + rows) over the KV cache, split
 * along the cache length and merged. Decode uses rows = 1; the engine also
 * uses it as a simple dense prefill for short chunks (EngineOptions.prefillKernel
 * 'split'). Positions and lengths are uniforms: the pipelines depend on the
 * shape only (decodeSpecs lists them).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import type { KvDtype } from './attention_prefill.ts';
import source from './attention_decode.wgsl?raw';
import type { KernelTier } from '../src/gpu/tier.ts';
import { wgslHeader } from '../src/gpu/wgsl-header.ts';

/** A prepared launch (the engine's Dispatch): replayed on every step, released with destroy(). */
export interface DecodeDispatch {
  encode(pass: GPUComputePassEncoder): void;
  destroy(): void;
}

/** The decode kernel choices that change its code. */
export interface DecodeKernelOptions {
  /**
   * 'tiled' (default where headDim fits: headDim a multiple of 8 for f16 /
   * 4 for f32 with 64 / chunks-per-row whole) or 'simple' (the scalar kernel, any even headDim).
   */
  variant?: 'tiled' | 'simple';
  /**
   * Query heads per workgroup, 1..min(group, 16) with qg * headDim <= 2048
   * (default: all of a KV group's, up to that). Fewer: more workgroups, each
   * KV tile read by group / qg of them (from L2 on a big GPU; tuning).
   */
  qg?: number;
}

/** What the decode kernels' code depends on. */
export interface DecodeDims {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  /** Kernel tier (src/gpu/tier.ts; default 'f32'): q and out hold its activation type. */
  tier?: KernelTier;
}

export interface DecodeAttentionShape extends DecodeKernelOptions, DecodeDims {
  capacity: number;
  /** Most query rows per call (1 for decode). */
  maxRows: number;
  /** Most splits of the cache per (head, row), 1..128 (default 128); fewer splits give each workgroup more tiles. */
  maxSplits?: number;
}

/** Whether the tiled split kernel takes this shape. */
export function tiledFits(headDim: number, kvDtype: KvDtype): boolean {
  const cw = kvDtype === 'f16' ? 8 : 4;
  if (headDim % cw !== 0) return false;
  const nc = headDim / cw;
  return nc <= 64 && 64 % nc === 0;
}

const TILE = 64;
const MAX_SPLITS = 128;

interface DecodePlan {
  variant: 'tiled' | 'simple';
  qg: number;
  split: PipelineSpec;
  merge: PipelineSpec;
}

/** Checks the shape and picks the kernels: the split and merge pipelines of decodeSpecs. */
function decodePlan(shape: DecodeDims, opts: DecodeKernelOptions = {}): DecodePlan {
  const { nHeads, nKvHeads, headDim, kvDtype } = shape;
  const tier = shape.tier ?? 'f32';
  if (nHeads % nKvHeads !== 0) throw new RangeError(`nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
  if (headDim % 2 !== 0 || headDim > 2048) throw new RangeError(`headDim ${headDim} must be even and <= 2048`);
  const qgMax = Math.max(1, Math.min(nHeads / nKvHeads, 16, Math.floor(2048 / headDim)));
  const qg = opts.qg ?? qgMax;
  if (!(Number.isInteger(qg) && qg >= 1 && qg <= qgMax)) throw new RangeError(`attention: qg ${qg} must be an integer in [1, ${qgMax}]`);
  const variant = opts.variant ?? (tiledFits(headDim, kvDtype) ? 'tiled' : 'simple');
  if (variant === 'tiled' && !tiledFits(headDim, kvDtype))
    throw new RangeError(`attention: the tiled kernel does not take headDim ${headDim} with ${kvDtype} KV`);
  const cw = kvDtype === 'f16' ? 8 : 4;
  const tiled = variant === 'tiled';
  // The generated header: the tier's act and the tiled kernels' shape (loops of constant trip count unroll).
  const code = wgslHeader(tier, { consts: { QG: tiled ? qg : 1, NC: tiled ? headDim / cw : 1, CW: cw } }) + source;
  const tiledMerge = tiled && 256 % (headDim / 4) === 0;
  const KV_F16 = kvDtype === 'f16' ? 1 : 0;
  return {
    variant,
    qg,
    split: { label: `attn_decode_${variant}_${kvDtype}_${tier}`, code, entryPoint: tiled ? 'split_tiled' : 'split', constants: { KV_F16 }, tier },
    merge: { label: `attn_decode_merge${tiledMerge ? '_tiled' : ''}_${tier}`, code, entryPoint: tiledMerge ? 'merge_tiled' : 'merge', tier },
  };
}

/** The pipelines DecodeAttention.create builds for this shape: the split pass and the merge. */
export function decodeSpecs(shape: DecodeDims, opts: DecodeKernelOptions = {}): PipelineSpec[] {
  const p = decodePlan(shape, opts);
  return [p.split, p.merge];
}

export class DecodeAttention {
  /** Splits of the current step (set by setStep). */
  nSplits = 1;
  private rows = 1;
  private readonly params: GPUBuffer;
  private readonly partO: GPUBuffer;
  private readonly partML: GPUBuffer;
  /** Budget of (row, split) pairs the partial buffers hold. */
  private readonly slots: number;
  private readonly words = new ArrayBuffer(32);
  /** splitLen, nSplits of the last params write. */
  private written = [-1, -1];
  private readonly group: number;
  private readonly qg: number;
  /** The split kernel in use. */
  readonly variant: 'tiled' | 'simple';

  private constructor(
    private ctx: GpuContext,
    private splitPipe: GPUComputePipeline,
    private mergePipe: GPUComputePipeline,
    readonly shape: DecodeAttentionShape,
    qg: number,
    variant: 'tiled' | 'simple',
  ) {
    this.variant = variant;
    const s = shape;
    this.group = s.nHeads / s.nKvHeads;
    this.qg = qg;
    this.slots = Math.max(MAX_SPLITS, s.maxRows);
    this.partO = createBuffer(ctx, this.slots * s.nHeads * s.headDim * 4, STORAGE.rw, 'attn_decode_partO');
    this.partML = createBuffer(ctx, this.slots * s.nHeads * 8, STORAGE.rw, 'attn_decode_partML');
    this.params = uniformBuffer(ctx, new Array(8).fill(0), 'attn_decode_params');
  }

  /** Takes its pipelines from the cache (decodeSpecs; precompiled by an engine's load). */
  static create(ctx: GpuContext, shape: DecodeAttentionShape): DecodeAttention {
    const ms = shape.maxSplits ?? MAX_SPLITS;
    if (!(Number.isInteger(ms) && ms >= 1 && ms <= MAX_SPLITS)) throw new RangeError(`maxSplits ${ms} must be an integer in [1, ${MAX_SPLITS}]`);
    const plan = decodePlan(shape, shape);
    return new DecodeAttention(ctx, pipeline(ctx, plan.split), pipeline(ctx, plan.merge), shape, plan.qg, plan.variant);
  }

  /**
   * Sets the rows and first position of the next forward pass (writes the
   * shared uniform; call before encoding and submitting each step).
   */
  setStep(pos: number, rows: number): void {
    const s = this.shape;
    if (rows > s.maxRows) throw new RangeError(`attention: ${rows} rows > maxRows ${s.maxRows}`);
    const kvLen = pos + rows;
    const cap = Math.max(1, Math.min(s.maxSplits ?? MAX_SPLITS, Math.floor(this.slots / rows)));
    let nSplits = Math.min(cap, Math.ceil(kvLen / TILE));
    const splitLen = Math.ceil(Math.ceil(kvLen / nSplits) / TILE) * TILE;
    nSplits = Math.ceil(kvLen / splitLen);
    this.nSplits = nSplits;
    this.rows = rows;
    // Most decode steps keep the split layout: the uniform (queue-ordered) already holds it.
    if (splitLen === this.written[0] && nSplits === this.written[1]) return;
    this.written = [splitLen, nSplits];
    const u = new Uint32Array(this.words);
    u.set([s.nHeads, s.nKvHeads, s.headDim, s.capacity, splitLen, nSplits, this.qg]);
    new Float32Array(this.words)[7] = 1 / Math.sqrt(s.headDim);
    this.ctx.device.queue.writeBuffer(this.params, 0, this.words);
  }

  /** q (rows, nHeads * headDim) f32 -> out (rows, nHeads * headDim) f32, over `kv` of one layer. */
  prepare(a: { q: GPUBuffer; kv: { k: GPUBuffer; v: GPUBuffer }; out: GPUBuffer; step: GPUBuffer }): DecodeDispatch {
    const bgSplit = bindBuffers(this.ctx, this.splitPipe, [a.q, a.kv.k, a.kv.v, this.partO, this.partML, this.params, a.step], 'attn_decode_split');
    const bgMerge = bindBuffers(this.ctx, this.mergePipe, [this.partO, this.partML, a.out, this.params, a.step], 'attn_decode_merge');
    const self = this;
    const perKv = Math.ceil(this.group / this.qg);
    return {
      encode(pass) {
        pass.setPipeline(self.splitPipe);
        pass.setBindGroup(0, bgSplit);
        pass.dispatchWorkgroups(self.shape.nKvHeads * perKv, self.nSplits, self.rows);
        pass.setPipeline(self.mergePipe);
        pass.setBindGroup(0, bgMerge);
        pass.dispatchWorkgroups(self.shape.nHeads, self.rows);
      },
      destroy() {},
    };
  }

  destroy(): void {
    for (const b of [this.params, this.partO, this.partML]) releaseBuffer(this.ctx, b);
  }
}

/**
 * CPU reference (f64): q (rows, nHeads * headDim); k, v (nKvHeads, kvLen, headDim)
 * with kvLen >= pos + rows; row r attends keys [0, pos + r].
 */
export function attentionRef(
  q: Float32Array,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: { nHeads: number; nKvHeads: number; headDim: number },
  pos: number,
  rows: number,
  kvStride: number,
): Float32Array {
  const { nHeads, nKvHeads, headDim: hd } = s;
  const group = nHeads / nKvHeads;
  const out = new Float32Array(rows * nHeads * hd);
  const scale = 1 / Math.sqrt(hd);
  for (let r = 0; r < rows; r++) {
    const n = pos + r + 1;
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      const sc = new Float64Array(n);
      let mx = -Infinity;
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let c = 0; c < hd; c++) d += q[(r * nHeads + h) * hd + c] * k[(kvh * kvStride + j) * hd + c];
        sc[j] = d * scale;
        mx = Math.max(mx, sc[j]);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        sc[j] = Math.exp(sc[j] - mx);
        sum += sc[j];
      }
      for (let c = 0; c < hd; c++) {
        let o = 0;
        for (let j = 0; j < n; j++) o += sc[j] * v[(kvh * kvStride + j) * hd + c];
        out[(r * nHeads + h) * hd + c] = o / sum;
      }
    }
  }
  return out;
}
