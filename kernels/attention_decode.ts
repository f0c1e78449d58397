/**
 * Launcher and CPU reference for kernels/attention_decode.wgsl: attention of
 * `rows` query rows at positions [pos, pos + rows) over the KV cache, split
 * along the cache length and merged. Decode uses rows = 1; the engine also
 * uses it as a simple dense prefill for short chunks. With sub > 1 (or the V
 * prefetch asked for) the split pass is attention_decode_wide.wgsl; the
 * 'merged' decode plan runs the split pass alone (prepareSplit) and merges
 * the partials in the wo projection (kernels/linear_gemv_merge.wgsl).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, getPipeline } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch, KvDtype, LayerKv } from '../src/engine/types.ts';
import { f16ToF32 } from '../src/loader/quant.ts';
import source from './attention_decode.wgsl?raw';
import wideSource from './attention_decode_wide.wgsl?raw';

export interface DecodeAttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  capacity: number;
  /** Most query rows per call (1 for decode). */
  maxRows: number;
  /**
   * 'tiled' (default where headDim fits: headDim a multiple of 8 for f16 /
   * 4 for f32 with 64 / chunks-per-row whole) or 'simple' (the scalar kernel, any even headDim).
   */
  variant?: 'tiled' | 'simple';
  /** Most splits of the cache per (head, row), 1..128 (default 128); fewer splits give each workgroup more tiles. */
  maxSplits?: number;
  /**
   * Query heads per workgroup, 1..min(group, 16) with qg * headDim <= 2048
   * (default: all of a KV group's, up to that). Fewer: more workgroups, each
   * KV tile read by group / qg of them (from L2 on a big GPU; tuning).
   */
  qg?: number;
  /**
   * Groups of 64 threads per split workgroup (1, 2, 4, 8 or 16; default 1):
   * above 1 the tiled kernel runs as attention_decode_wide.wgsl, each group
   * taking every sub-th tile of a split, and splits are up to `sub` tiles
   * long at the same parallelism (fewer partials to merge). Falls back to
   * fewer groups where workgroup memory is short; tiled variant only.
   */
  sub?: number;
  /**
   * Wide kernel (sub > 1): load each tile's V chunks together with its K, so
   * their latency overlaps the softmax (4 * chunks-per-row registers; default
   * true where a row is at most 16 chunks, f16 headDim <= 128 / f32 <= 64).
   * true with sub 1: the wide kernel with one group (split_tiled plus the prefetch).
   */
  prefetchV?: boolean;
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

/**
 * Largest power of two <= `want` (and <= 16) whose wide split kernel fits the
 * device: 64 * sub invocations and its workgroup memory (attention_decode_wide.wgsl).
 */
function wideFit(want: number, qg: number, headDim: number,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupSizeX: number }): number {
  if (!(Number.isInteger(want) && want >= 1 && want <= 16 && (want & (want - 1)) === 0)) throw new RangeError(`attention: sub ${want} must be 1, 2, 4, 8 or 16`);
  const hd4 = headDim / 4;
  const bytes = (s: number) => 16 * qg * hd4 + 4 * s * qg * TILE + 8 * s * qg + 16 * s * qg * hd4 + 8 * s * qg;
  let sub = want;
  const threads = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  while (sub > 1 && (bytes(sub) > limits.maxComputeWorkgroupStorageSize || 64 * sub > threads)) sub /= 2;
  return sub;
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
  /** Groups of 64 threads per split workgroup in use (DecodeAttentionShape.sub after the fit). */
  readonly sub: number;

  private constructor(private ctx: GpuContext, private splitPipe: GPUComputePipeline, private mergePipe: GPUComputePipeline, readonly shape: DecodeAttentionShape, qg: number, variant: 'tiled' | 'simple', sub: number) {
    this.variant = variant;
    this.sub = sub;
    const s = shape;
    this.group = s.nHeads / s.nKvHeads;
    this.qg = qg;
    this.slots = Math.max(MAX_SPLITS, s.maxRows);
    this.partO = createBuffer(ctx, this.slots * s.nHeads * s.headDim * 4, STORAGE.rw, 'attn_decode_partO');
    this.partML = createBuffer(ctx, this.slots * s.nHeads * 8, STORAGE.rw, 'attn_decode_partML');
    this.params = uniformBuffer(ctx, new Array(8).fill(0), 'attn_decode_params');
  }

  static async create(ctx: GpuContext, shape: DecodeAttentionShape): Promise<DecodeAttention> {
    const { nHeads, nKvHeads, headDim } = shape;
    if (nHeads % nKvHeads !== 0) throw new RangeError(`nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
    if (headDim % 2 !== 0 || headDim > 2048) throw new RangeError(`headDim ${headDim} must be even and <= 2048`);
    const ms = shape.maxSplits ?? MAX_SPLITS;
    if (!(Number.isInteger(ms) && ms >= 1 && ms <= MAX_SPLITS)) throw new RangeError(`maxSplits ${ms} must be an integer in [1, ${MAX_SPLITS}]`);
    const qgMax = Math.max(1, Math.min(nHeads / nKvHeads, 16, Math.floor(2048 / headDim)));
    const qg = shape.qg ?? qgMax;
    if (!(Number.isInteger(qg) && qg >= 1 && qg <= qgMax)) throw new RangeError(`attention: qg ${qg} must be an integer in [1, ${qgMax}]`);
    const KV_F16 = shape.kvDtype === 'f16' ? 1 : 0;
    const variant = shape.variant ?? (tiledFits(headDim, shape.kvDtype) ? 'tiled' : 'simple');
    if (variant === 'tiled' && !tiledFits(headDim, shape.kvDtype)) throw new RangeError(`attention: the tiled kernel does not take headDim ${headDim} with ${shape.kvDtype} KV`);
    // The tiled kernels' shape constants are written into the source (loops of constant trip count unroll).
    const cw = shape.kvDtype === 'f16' ? 8 : 4;
    const code = variant === 'tiled'
      ? source.replace('const QG: u32 = 4u;', `const QG: u32 = ${qg}u;`).replace('const NC: u32 = 16u;', `const NC: u32 = ${headDim / cw}u;`).replace('const CW: u32 = 8u;', `const CW: u32 = ${cw}u;`)
      : source;
    const tiledMerge = variant === 'tiled' && 256 % (headDim / 4) === 0;
    const sub = variant === 'tiled' ? wideFit(shape.sub ?? 1, qg, headDim, ctx.limits) : 1;
    // The wide kernel: sub > 1, or asked for its V prefetch (sub 1: split_tiled's grid with the prefetch).
    const wide = variant === 'tiled' && (sub > 1 || shape.prefetchV === true);
    const wideCode = wide ? wideSource.replace('const QG: u32 = 4u;', `const QG: u32 = ${qg}u;`).replace('const NC: u32 = 16u;', `const NC: u32 = ${headDim / cw}u;`)
      .replace('const CW: u32 = 8u;', `const CW: u32 = ${cw}u;`).replace('const NSUB: u32 = 4u;', `const NSUB: u32 = ${sub}u;`)
      .replace('const PREFETCH_V: bool = false;', `const PREFETCH_V: bool = ${(shape.prefetchV ?? true) && headDim / cw <= 16};`) : '';
    const [split, merge] = await Promise.all([
      wide
        ? getPipeline(ctx, { label: `attn_decode_wide${sub}${shape.prefetchV === false ? '' : '_pv'}_${shape.kvDtype}`, code: wideCode, entryPoint: 'main', constants: { KV_F16 } })
        : getPipeline(ctx, { label: `attn_decode_${variant}_${shape.kvDtype}`, code, entryPoint: variant === 'tiled' ? 'split_tiled' : 'split', constants: { KV_F16 } }),
      getPipeline(ctx, { label: `attn_decode_merge${tiledMerge ? '_tiled' : ''}`, code, entryPoint: tiledMerge ? 'merge_tiled' : 'merge' }),
    ]);
    return new DecodeAttention(ctx, split, merge, shape, qg, variant, sub);
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
    let nSplits = Math.min(cap, Math.ceil(kvLen / (TILE * this.sub)));
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

  /**
   * The split pass alone (the merge left to the caller, e.g. the wo
   * projection's prologue: kernels/linear_gemv_merge.wgsl): q (rows, nHeads *
   * headDim) f32 -> partials (DecodeAttention.partials) for `kv` of one layer.
   */
  prepareSplit(a: { q: GPUBuffer; kv: LayerKv; step: GPUBuffer }): Dispatch {
    const bg = bindBuffers(this.ctx, this.splitPipe, [a.q, a.kv.k, a.kv.v, this.partO, this.partML, this.params, a.step], 'attn_decode_split');
    const self = this;
    const perKv = Math.ceil(this.group / this.qg);
    return {
      encode(pass) {
        pass.setPipeline(self.splitPipe);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(self.shape.nKvHeads * perKv, self.nSplits, self.rows);
      },
      destroy() {},
    };
  }

  /**
   * The split pass's outputs, for a merge outside this class: partO (rows,
   * nHeads, nSplits, headDim) f32, partML (rows, nHeads, nSplits) vec2 (m, l),
   * params (the uniform of attention_decode.wgsl: splitLen, nSplits of the step).
   */
  get partials(): { partO: GPUBuffer; partML: GPUBuffer; params: GPUBuffer } {
    return { partO: this.partO, partML: this.partML, params: this.params };
  }

  /** q (rows, nHeads * headDim) f32 -> out (rows, nHeads * headDim) f32, over `kv` of one layer. */
  prepare(a: { q: GPUBuffer; kv: LayerKv; out: GPUBuffer; step: GPUBuffer }): Dispatch {
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

/** Reads element e of a cache buffer's contents in `dtype`. */
export function cacheValue(words: Uint32Array, e: number, dtype: KvDtype): number {
  if (dtype === 'f32') return new Float32Array(words.buffer, words.byteOffset, words.length)[e];
  return f16ToF32((words[e >> 1] >>> ((e & 1) * 16)) & 0xffff);
}

/**
 * CPU reference (f64): q (rows, nHeads * headDim); k, v (nKvHeads, kvLen, headDim)
 * with kvLen >= pos + rows; row r attends keys [0, pos + r].
 */
export function attentionRef(q: Float32Array, k: ArrayLike<number>, v: ArrayLike<number>, s: { nHeads: number; nKvHeads: number; headDim: number }, pos: number, rows: number, kvStride: number): Float32Array {
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
      for (let j = 0; j < n; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
      for (let c = 0; c < hd; c++) {
        let o = 0;
        for (let j = 0; j < n; j++) o += sc[j] * v[(kvh * kvStride + j) * hd + c];
        out[(r * nHeads + h) * hd + c] = o / sum;
      }
    }
  }
  return out;
}
