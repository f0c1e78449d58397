/**
 * Launcher and CPU references for the linear-layer kernels:
 *   y (rows, out) = x (rows, in) W^T (+ bias)            prepare()
 *   y (rows, F)   = silu(x Wg^T) * (x Wu^T), W = [Wg; Wu] prepareGateUp()
 * with W packed in any weight format of src/loader/formats.ts (f32, f16, q8,
 * q4) and split by rows into parts. Prefill (rows > gemvMaxRows) runs the
 * register-tiled GEMM (linear_gemm.wgsl by default; generated variants in
 * linear_gemm.ts, chosen by LinearOptions.gemm and swept by bench/gemm.ts
 * --variant); decode runs the matrix-vector
 * kernel (linear_gemv.wgsl, or linear_gemv_any.wgsl for shapes that do not
 * split into 16-byte chunks). Each part (or gate/up segment) is one dispatch
 * writing its own column range of y. Everything is built in prepare(): the
 * returned Dispatch only replays. Pipelines are compiled synchronously on the
 * first prepare() of a variant (format, group size, bias, gate/up, rows for
 * the matrix-vector kernel) and cached.
 *
 * Speed design (issue 9; tunables in GemmConfig / GemvConfig, swept by
 * bench/kernels.ts): the GEMM dequantizes each weight tile once into
 * workgroup memory, so its inner loop is the same f32 8x8 register block for
 * every format (4 vec4 workgroup loads per 64 FMAs); the matrix-vector kernel
 * streams 16-byte weight chunks with every x chunk serving several rows, and
 * decodes int4/int8 without int->float conversions (see linear_q4.wgsl)
 * and f16 by bit moves (linear_f16.wgsl). H100 (Dawn/Vulkan), defaults:
 * GEMM ~31 TFLOP/s f32/f16, ~29-30 q8/q4 at M = 4096; matrix-vector
 * f16/f32 ~2.5-2.9 TB/s at 14336 x 4096. Measured slower and kept only as
 * options for the bench sweep: GEMM bk 32 (a one-word-per-thread gemv, at most
 * 459 GB/s, was removed);
 * gemv xs (x staged in workgroup memory) is not measured yet.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import { dispatchDims } from '../src/gpu/pipelines.ts';
import { packedBytes, scaleBytes, type GpuWeight, type GpuWeightPart, type WeightFormat } from '../src/loader/formats.ts';
import type { Dispatch } from '../src/engine/types.ts';
import { InvalidOptionError } from '../src/errors.ts';
import gemmSrc from './linear_gemm.wgsl?raw';
import { checkGemmConfig, gemmSmemBytes, gemmTile, gemmTiledSource, type GemmConfig } from './linear_gemm.ts';
import {
  DEFAULT_DEQUANT_MIN_ROWS, DEFAULT_PREFILL_DEQUANT, dequantScratchBytes, expandedBytes, prepareDequant, PREFILL_DEQUANTS, type PrefillDequant,
} from './dequant_f16.ts';
import gemvSrc from './linear_gemv.wgsl?raw';
import gemvAnySrc from './linear_gemv_any.wgsl?raw';
import gemvXsSrc from './linear_gemv_xs.wgsl?raw';
import gemvCommonSrc from './linear_gemv_common.wgsl?raw';
import gemvStoreSrc from './linear_gemv_store.wgsl?raw';
import gemvNormInSrc from './linear_gemv_norm_in.wgsl?raw';
import gemvResidSrc from './linear_gemv_resid.wgsl?raw';
import gemvRopeSrc from './linear_gemv_rope.wgsl?raw';
import gemvPartialSrc from './linear_gemv_partial.wgsl?raw';
import gemvSplitKSrc from './linear_gemv_splitk.wgsl?raw';
import gemvRegSrc from './linear_gemv_reg.wgsl?raw';
import { planGemvReg } from './linear_gemv_reg.ts';
import f32Src from './linear_f32.wgsl?raw';
import f16Src from './linear_f16.wgsl?raw';
import q8Src from './linear_q8.wgsl?raw';
import q4Src from './linear_q4.wgsl?raw';

const FORMAT_SRC: Record<WeightFormat, string> = { f32: f32Src, f16: f16Src, q8: q8Src, q4: q4Src };
/** Elements per u32 word of each format. */

const devicePipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

export const ELEMS_PER_WORD: Record<WeightFormat, number> = { f32: 1, f16: 2, q8: 4, q4: 8 };

export interface LinearArgs {
  /** (rows, in) f32 starting at xOffsetBytes */
  x: GPUBuffer;
  xOffsetBytes?: number;
  /** [out, in] */
  w: GpuWeight;
  /** (out) f32 */
  bias?: GPUBuffer;
  /** (rows, out) f32 starting at yOffsetBytes; with rope: (nHeads * headDim) roped Q */
  y: GPUBuffer;
  yOffsetBytes?: number;
  rows: number;
  /** Decode fusions (matrix-vector kernel, rows = 1; see the GemvNormIn / GemvResidual / GemvRope docs). */
  normIn?: GemvNormIn;
  residual?: GemvResidual;
  rope?: GemvRope;
}

/**
 * x is h = x_res * normW (a GemvResidual output) and the products are scaled
 * by RMSNorm's 1 / sqrt(sum(x_res^2) / dim + eps), sum(x_res^2) given as
 * `count` partial sums: y = rmsnorm(x_res) W^T (linear_gemv_norm_in.wgsl).
 */
export interface GemvNormIn {
  /** (count) f32 partial sums of squares */
  ss: GPUBuffer;
  count: number;
  dim: number;
  eps: number;
}

/**
 * y is the residual stream: y += x W^T (+ bias); then h = y * normW and one
 * partial sum of y^2 per workgroup into ss[ssOffset..] (the next projection's
 * GemvNormIn; PreparedLinear.workgroups says how many) (linear_gemv_resid.wgsl).
 */
export interface GemvResidual {
  /** (out) f32: the next RMSNorm's weight */
  normW: GPUBuffer;
  /** (out) f32 */
  h: GPUBuffer;
  /** (ssOffset + workgroups) f32 */
  ss: GPUBuffer;
}

/**
 * The QKV projection with RoPE and the KV-cache write fused (linear_gemv_rope.wgsl):
 * y gets roped Q (nHeads * headDim), k / v the roped K and V at position step.pos.
 */
export interface GemvRope {
  /** (rotaryDim / 2) vec2 f32: cos, sin at the step's position */
  table: GPUBuffer;
  /** (nKvHeads, capacity, headDim) f32 or f16 pairs */
  k: GPUBuffer;
  v: GPUBuffer;
  /** uniform: pos, rows, kvLen (StepUniform) */
  step: GPUBuffer;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  rotaryDim: number;
  neox: boolean;
  capacity: number;
  kvF16: boolean;
}

/** A prepared linear; workgroups: how many the matrix-vector kernel runs in all (GemvResidual partial sums). */
export type PreparedLinear = Dispatch & { workgroups: number };

export interface GateUpArgs {
  /** (rows, in) f32 */
  x: GPUBuffer;
  xOffsetBytes?: number;
  /** [2F, in]: gate rows 0..F-1, then up rows F..2F-1 */
  w: GpuWeight;
  /** (rows, F) f32 */
  y: GPUBuffer;
  yOffsetBytes?: number;
  rows: number;
  normIn?: GemvNormIn;
}

/**
 * Tunables of the matrix-vector kernel (threads per row along K, rows per
 * thread, thread groups per workgroup, chunks in flight per row and thread);
 * xs: x staged in workgroup memory in blocks of tk * unroll chunks (linear_gemv_xs.wgsl)
 * where the block fits GEMV_XS_BYTES.
 */
export interface GemvConfig {
  tk: number; rpt: number; ng: number; unroll: number; xs?: boolean;
  /**
   * Sum a row's TK partials with subgroup shuffles instead of one thread
   * looping over workgroup memory (TK / subgroup size values at most); applies
   * where the device has subgroups and TK is a power of two, else ignored.
   */
  sg?: boolean;
  /**
   * Split-K: K in this many slices, one workgroup per (rows, slice) writing
   * partial sums, then a second small pass (linear_gemv_splitk.wgsl) sums
   * them and runs the epilogue. For long K with few outputs (gemvLongK);
   * vector path only (else ignored).
   */
  splitK?: number;
  /**
   * x held in registers, persistent workgroups with the next block's weights
   * prefetched (kernels/linear_gemv_reg.wgsl, planned by linear_gemv_reg.ts):
   * tk threads share a row's chunks, unroll >= 2 prefetches; decode (one row)
   * vector path only, else the kernel above runs with the same tunables.
   */
  reg?: boolean;
  /** Workgroups the reg kernel launches (default GEMV_REG_PERSIST). */
  persist?: number;
  /** reg kernel: run the epilogue after each row block (two barriers each) instead of all after the last. */
  storeEach?: boolean;
  /** reg kernel: x loaded into registers straight from global memory (uncoalesced) instead of through workgroup memory. */
  xGlobal?: boolean;
}

/**
 * 'default' -> undefined; 'TKxRPTxNGxUNROLL' with suffixes 'xs' (x staged),
 * 'sg' (subgroup reduction), 'kN' (split-K in N slices), 'r' / 'rN' (x in registers, N persistent
 * workgroups; 'ri': epilogue after each block; 'rg': x not staged), e.g. 32x4x4x2xssgk4, 128x4x2x2sgr264.
 */
export function parseGemv(s: string): GemvConfig | undefined {
  if (s === 'default') return undefined;
  const m = /^(\d+)x(\d+)x(\d+)x(\d+)(xs)?(sg)?(?:k(\d+))?(?:(r)(i)?(g)?(\d+)?)?$/.exec(s);
  if (!m) throw new InvalidOptionError('gemv', `'${s}' is not 'default' or TKxRPTxNGxUNROLL[xs][sg][kN][r[i][g][N]] (e.g. 32x4x4x2xssgk4)`);
  const [tk, rpt, ng, unroll] = m.slice(1, 5).map(Number);
  const g: GemvConfig = { tk, rpt, ng, unroll, xs: !!m[5], sg: !!m[6], splitK: m[7] ? Number(m[7]) : undefined };
  if (m[8]) Object.assign(g, { reg: true, storeEach: !!m[9], xGlobal: !!m[10], persist: m[11] ? Number(m[11]) : undefined });
  return g;
}

/** The parseGemv spelling of a configuration ('default' for undefined). */
export function gemvTag(g: GemvConfig | undefined): string {
  return g ? `${g.tk}x${g.rpt}x${g.ng}x${g.unroll}${g.xs ? 'xs' : ''}${g.sg ? 'sg' : ''}${g.splitK && g.splitK > 1 ? `k${g.splitK}` : ''}${g.reg ? `r${g.storeEach ? 'i' : ''}${g.xGlobal ? 'g' : ''}${g.persist ?? ''}` : ''}` : 'default';
}

/** GEMM tunables and variants: kernels/linear_gemm.ts. */
export { gemmSmemBytes, type GemmConfig } from './linear_gemm.ts';

export interface LinearOptions {
  /** Largest row count that runs the matrix-vector kernel (default 8, at most 8). */
  gemvMaxRows?: number;
  gemv?: GemvConfig;
  /**
   * Matrix-vector tunables for long-K shapes (in >= 2 out, e.g. the FFN down
   * projection 4096 x 14336: few output rows, so few workgroups; more threads
   * per row keep the GPU full). Default: gemv.
   */
  gemvLongK?: GemvConfig;
  gemm?: GemmConfig;
  /**
   * Prefill of q4 / q8 weights (GEMM path, rows >= prefillDequantMinRows):
   * 'f16' (default) or 'f32' expands each weight into a scratch buffer
   * (kernels/dequant_f16.wgsl) and runs the GEMM on that, in the same
   * prepared dispatch; 'none' decodes inside the GEMM. f16 rounds each
   * dequantized weight to f16 (nearest even); f32 is exact.
   */
  prefillDequant?: PrefillDequant;
  /** Fewest rows that take prefillDequant (default 256). */
  prefillDequantMinRows?: number;
  /** Cap on the dequantization scratch (default: the storage binding limit); larger weights run in row chunks. */
  prefillScratchMaxBytes?: number;
}

// 'trvlsw' (unrolled tr layout, kv-style vec4 global loads, 8 x 4 warp shape): H100 08:51 sweep
// (bench/gpu-results/h100-0900-gemm-variants.json): f16 40.1 / 40.7 TFLOP/s, q4 37.8 / 38.3 at
// 4096 x 4096 x 4096 / 4096 x 14336 x 4096, against base 32.8 / 33.3 and 30.7 / 31.2.
export const DEFAULT_GEMM: GemmConfig = { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8, vl: true, sw: true };

// x staged in workgroup memory (falls back where the device lacks the memory), rows reduced in
// workgroup memory: H100 12:30 fused decode, 7B q4 greedy 230.5 tok/s and 1.8B 507.3 against
// 217.9 / 470.0 with the subgroup reduction ('xssg', the 09:30 default; plain 32x4x4x2: 201 / 460);
// kernel alone 1.54 / 2.75 TB/s q4 / f16 at 14336 x 4096 vs 1.34 / 2.47 (h100-1140-gemv-reg.json,
// h100-1230-engine-gemv.json).
export const DEFAULT_GEMV: GemvConfig = { tk: 32, rpt: 4, ng: 4, unroll: 2, xs: true, sg: false };
/** Largest staged x block of the xs matrix-vector path (and at most what the device's workgroup memory leaves). */
const GEMV_XS_BYTES = 24 * 1024;

/** One dispatch of a prepared linear: a weight part (or gate/up segment) with its column range. */
interface Piece {
  n: number;
  w0: GpuWeightPart;
  w1: GpuWeightPart;
  row0: number;
  row1: number;
  col0: number;
}

export class LinearKernels {
  /** Pipelines of this device, shared by every LinearKernels on it (engines loaded again reuse them). */
  private get pipelines(): Map<string, GPUComputePipeline> {
    let m = devicePipelines.get(this.ctx.device);
    if (!m) devicePipelines.set(this.ctx.device, (m = new Map()));
    return m;
  }
  private readonly gemvMaxRows: number;
  private readonly gemv: GemvConfig;
  private readonly gemvLongK: GemvConfig;
  private readonly gemm: GemmConfig;
  private readonly prefillDequant: PrefillDequant;
  private readonly dequantMinRows: number;
  private readonly scratchMaxBytes: number;
  /** The prefill dequantization scratch (allocated by the first prepare that needs it) and its size hint. */
  private scratch?: GPUBuffer;
  private scratchHintBytes = 0;

  private constructor(private ctx: GpuContext, private dummy: GPUBuffer, opts: LinearOptions) {
    this.gemvMaxRows = Math.min(8, opts.gemvMaxRows ?? 8);
    this.gemv = opts.gemv ?? DEFAULT_GEMV;
    // Workgroup memory (gemmSmemBytes): base BK 16 (16.5 KiB) is already above
    // WebGPU's default 16 KiB, so small limits fall back to BK 8; a bigger
    // default variant falls back to base BK 16 first.
    const smem = ctx.limits.maxComputeWorkgroupStorageSize;
    const fallbacks: GemmConfig[] = [DEFAULT_GEMM, { bk: 16, prefetch: true }, { bk: 8, prefetch: true }];
    this.gemm = opts.gemm ?? fallbacks.find((g) => gemmSmemBytes(g) <= smem) ?? fallbacks[fallbacks.length - 1];
    checkGemmConfig(this.gemm, smem);
    this.gemvLongK = opts.gemvLongK ?? this.gemv;
    this.prefillDequant = opts.prefillDequant ?? DEFAULT_PREFILL_DEQUANT;
    if (!PREFILL_DEQUANTS.includes(this.prefillDequant)) {
      throw new InvalidOptionError('prefillDequant', `must be one of ${PREFILL_DEQUANTS.join(', ')} (got '${this.prefillDequant}')`);
    }
    this.dequantMinRows = opts.prefillDequantMinRows ?? DEFAULT_DEQUANT_MIN_ROWS;
    if (!(Number.isInteger(this.dequantMinRows) && this.dequantMinRows >= 1)) {
      throw new InvalidOptionError('prefillDequantMinRows', `must be a positive integer (got ${opts.prefillDequantMinRows})`);
    }
    const bind = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    this.scratchMaxBytes = Math.floor(Math.min(bind, opts.prefillScratchMaxBytes ?? Infinity) / 4) * 4;
    if (!(this.scratchMaxBytes >= 4)) {
      throw new InvalidOptionError('prefillScratchMaxBytes', `must be at least 4 (got ${opts.prefillScratchMaxBytes})`);
    }
    for (const [name, g] of [['gemv', this.gemv], ['gemvLongK', this.gemvLongK]] as const) {
      const { tk, rpt, ng, unroll } = g;
      // (reg configs: ng * rpt even is enough, e.g. one team of 224 threads for K = 14336 q4)
      if (!(tk > 0 && rpt > 0 && ng > 0 && unroll > 0 && (ng % 2 === 0 || (g.reg === true && (ng * rpt) % 2 === 0)) && rpt <= tk && tk * ng <= 256)) {
        throw new InvalidOptionError(name, `tk, rpt, ng, unroll must be positive, ng even, rpt <= tk, tk * ng <= 256 (got ${tk}, ${rpt}, ${ng}, ${unroll})`);
      }
      if (g.splitK !== undefined && !(Number.isInteger(g.splitK) && g.splitK >= 1 && g.splitK <= 64)) {
        throw new InvalidOptionError(name, `splitK must be an integer in [1, 64] (got ${g.splitK})`);
      }
      if (g.persist !== undefined && !(Number.isInteger(g.persist) && g.persist >= 1 && g.persist <= 65535)) {
        throw new InvalidOptionError(name, `persist must be an integer in [1, 65535] (got ${g.persist})`);
      }
    }
  }

  static async create(ctx: GpuContext, opts: LinearOptions = {}): Promise<LinearKernels> {
    const dummy = createBuffer(ctx, 16, STORAGE.rw, 'linear_dummy');
    try {
      return new LinearKernels(ctx, dummy, opts);
    } catch (e) {
      releaseBuffer(ctx, dummy);
      throw e;
    }
  }

  /** y = x W^T (+ bias). */
  prepare(a: LinearArgs): PreparedLinear {
    const [out, inDim] = checkWeight(a.w);
    const pieces: Piece[] = a.w.parts.map((part) => ({ n: part.rows, w0: part, w1: part, row0: 0, row1: 0, col0: part.rowStart }));
    if (a.bias && a.bias.size < out * 4) {
      throw new InvalidOptionError('bias', `needs ${out} f32 (${out * 4} bytes) for ${a.w.name} but has ${a.bias.size} bytes`);
    }
    if (a.rope) {
      const r = a.rope;
      if (out !== (r.nHeads + 2 * r.nKvHeads) * r.headDim) {
        throw new InvalidOptionError('rope', `${a.w.name} has ${out} rows, (nHeads + 2 nKvHeads) * headDim = ${(r.nHeads + 2 * r.nKvHeads) * r.headDim}`);
      }
      if (pieces.length !== 1) throw new InvalidOptionError('rope', `${a.w.name} must be one part for the fused RoPE (has ${pieces.length})`);
      // Rows in rotation pairs: one piece of out / 2 pairs writing nHeads * headDim Q values.
      pieces[0].n = out / 2;
      return this.build(a, inDim, r.nHeads * r.headDim, pieces, false);
    }
    return this.build(a, inDim, out, pieces, false);
  }

  /** Whether the fused RoPE epilogue takes this shape (GemvRope; else rope runs as its own kernel). */
  ropeFits(headDim: number, rotaryDim: number): boolean {
    const { ng, rpt } = this.gemv;
    return headDim % 4 === 0 && rotaryDim % 4 === 0 && (ng * rpt) % 4 === 0 && this.gemvMaxRows >= 1;
  }

  /** Whether decode (one row) runs the matrix-vector kernel, so GemvNormIn / GemvResidual / GemvRope apply. */
  get fusesDecode(): boolean {
    return this.gemvMaxRows >= 1;
  }

  /** y = silu(x Wg^T) * (x Wu^T) with W = [Wg; Wu] (gate rows first). */
  prepareGateUp(a: GateUpArgs): PreparedLinear {
    const [out, inDim] = checkWeight(a.w);
    if (out % 2 !== 0) throw new InvalidOptionError('w', `gate/up weight ${a.w.name} has an odd row count ${out}`);
    const f = out / 2;
    // Split [0, F) where a gate part or an up part ends, so each segment reads one part of each.
    const cuts = new Set<number>([0, f]);
    for (const part of a.w.parts) {
      if (part.rowStart > 0 && part.rowStart < f) cuts.add(part.rowStart);
      if (part.rowStart > f && part.rowStart < 2 * f) cuts.add(part.rowStart - f);
    }
    const bounds = [...cuts].sort((u, v) => u - v);
    const pieces: Piece[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const c0 = bounds[i];
      const g = partOf(a.w, c0);
      const u = partOf(a.w, f + c0);
      pieces.push({ n: bounds[i + 1] - c0, w0: g, w1: u, row0: c0 - g.rowStart, row1: f + c0 - u.rowStart, col0: c0 });
    }
    return this.build({ ...a, bias: undefined }, inDim, f, pieces, true);
  }

  /** The GEMM configuration in use (the default may fall back to fit the device's workgroup memory). */
  get gemmConfig(): GemmConfig {
    return this.gemm;
  }

  /** Releases the kernels' own buffers (prepared dispatches release theirs; destroy those first). */
  destroy(): void {
    releaseBuffer(this.ctx, this.dummy);
    releaseBuffer(this.ctx, this.scratch);
    this.scratch = undefined;
  }

  /**
   * Size hint for the prefill dequantization scratch: the [rows, in] shapes
   * of the quantized weights prefills will run (the engine passes its layer
   * matrices), so the first allocation holds the largest one whole. Nothing
   * is allocated here.
   */
  reserveDequantScratch(matrices: number[][]): void {
    if (this.prefillDequant === 'none') return;
    this.scratchHintBytes = Math.max(this.scratchHintBytes, dequantScratchBytes(this.prefillDequant, matrices, this.scratchMaxBytes));
  }

  /** Bytes of the dequantization scratch now allocated (0 before the first prefill that needs it). */
  get dequantScratchBytes(): number {
    return this.scratch?.size ?? 0;
  }

  /**
   * A q4 / q8 prefill through the scratch (LinearOptions.prefillDequant): per
   * chunk of output columns (as many whole GEMM tiles as the scratch holds),
   * the dequantization dispatch (gate/up: gate rows, then up rows after them)
   * and the GEMM reading the chunk as an f16 / f32 weight. undefined where
   * the scratch cannot hold one row (the in-kernel path runs instead).
   */
  private buildDequant(a: LinearArgs, inDim: number, outCols: number, pieces: Piece[], gateUp: boolean): PreparedLinear | undefined {
    const out = this.prefillDequant === 'f32' ? 'f32' : 'f16';
    const fmt = a.w.format as 'q4' | 'q8';
    const segs = gateUp ? 2 : 1;
    if (!this.scratch) {
      const need = Math.max(...pieces.map((pc) => expandedBytes(out, segs * pc.n * inDim)));
      const bytes = Math.min(this.scratchMaxBytes, Math.max(need, this.scratchHintBytes));
      this.scratch = createBuffer(this.ctx, bytes, STORAGE.rw, 'linear_dequant_scratch');
    }
    const scratch = this.scratch;
    let maxRows = Math.floor((Math.floor(scratch.size / 4) * (out === 'f16' ? 2 : 1)) / (segs * inDim));
    if (maxRows < 1) return undefined;
    const tile = gemmTile(this.gemm).tileN / segs;
    if (maxRows >= tile) maxRows -= maxRows % tile;
    const steps: Dispatch[] = [];
    try {
      for (const pc of pieces) {
        for (let c0 = 0; c0 < pc.n; c0 += maxRows) {
          const n = Math.min(maxRows, pc.n - c0);
          const range = { format: fmt, groupSize: a.w.groupSize, out, dst: scratch, count: n * inDim, label: a.w.name } as const;
          steps.push(prepareDequant(this.ctx, { ...range, part: pc.w0, srcElem0: (pc.row0 + c0) * inDim, dstElem0: 0 }));
          if (gateUp) steps.push(prepareDequant(this.ctx, { ...range, part: pc.w1, srcElem0: (pc.row1 + c0) * inDim, dstElem0: n * inDim }));
          const part: GpuWeightPart = { rowStart: 0, rows: segs * n, data: scratch };
          const w: GpuWeight = { name: `${a.w.name}_${out}`, format: out, shape: [segs * n, inDim], groupSize: 0, parts: [part] };
          const piece: Piece = { n, w0: part, w1: part, row0: 0, row1: gateUp ? n : 0, col0: pc.col0 + c0 };
          steps.push(this.build({ ...a, w }, inDim, outCols, [piece], gateUp));
        }
      }
    } catch (e) {
      for (const d of steps) d.destroy();
      throw e;
    }
    return {
      workgroups: 0,
      encode(pass: GPUComputePassEncoder) {
        for (const d of steps) d.encode(pass);
      },
      destroy() {
        for (const d of steps) d.destroy();
        steps.length = 0;
      },
    };
  }

  private build(a: LinearArgs, inDim: number, outCols: number, pieces: Piece[], gateUp: boolean): PreparedLinear {
    const { rows } = a;
    const xOff = a.xOffsetBytes ?? 0;
    const yOff = a.yOffsetBytes ?? 0;
    if (!Number.isInteger(rows) || rows < 1) throw new InvalidOptionError('rows', `must be a positive integer (got ${rows})`);
    if (xOff % 4 || yOff % 4) throw new InvalidOptionError('xOffsetBytes/yOffsetBytes', `must be multiples of 4 (got ${xOff}, ${yOff})`);
    if (a.x.size < xOff + rows * inDim * 4) {
      throw new InvalidOptionError('x', `needs ${xOff + rows * inDim * 4} bytes for ${rows} x ${inDim} f32 at offset ${xOff}, has ${a.x.size} (${a.w.name})`);
    }
    if (a.y.size < yOff + rows * outCols * 4) {
      throw new InvalidOptionError('y', `needs ${yOff + rows * outCols * 4} bytes for ${rows} x ${outCols} f32 at offset ${yOff}, has ${a.y.size} (${a.w.name})`);
    }
    const fmt = a.w.format;
    const quant = fmt === 'q8' || fmt === 'q4';
    const group = quant ? a.w.groupSize : 1;
    const epw = ELEMS_PER_WORD[fmt];
    const xOffElems = xOff / 4;
    const gemv = rows <= this.gemvMaxRows;
    const fused = a.normIn || a.residual || a.rope;
    if (fused && !(gemv && rows === 1)) throw new InvalidOptionError('rows', `normIn / residual / rope need one row on the matrix-vector kernel (got ${rows} rows, gemvMaxRows ${this.gemvMaxRows})`);
    if (a.residual && (gateUp || a.rope)) throw new InvalidOptionError('residual', 'a residual epilogue takes a plain projection');
    if (!gemv && quant && this.prefillDequant !== 'none' && rows >= this.dequantMinRows) {
      const d = this.buildDequant(a, inDim, outCols, pieces, gateUp);
      if (d) return d;
    }
    let pipeline: GPUComputePipeline;
    let perWg: number;
    let gemmRows = 0; // rows of x per GEMM workgroup
    // Split-K (gemv vector path): pass 1 (partials) then `pipeline` sums them and stores.
    let splitPass: { pipeline: GPUComputePipeline; sliceChunks: number; slices: number; nr: number } | undefined;
    let regWgs = 0; // workgroups of the reg kernel (0: one per block)
    if (gemv) {
      // (group is 1 for f32/f16: no scales, nothing to align.)
      const vec = inDim % (4 * epw) === 0 && (!quant || group % (4 * epw) === 0) && xOffElems % 4 === 0;
      const cfg = inDim >= 2 * outCols ? this.gemvLongK : this.gemv;
      const { tk, rpt, ng, unroll } = cfg;
      if (a.rope && (ng * rpt) % 4 !== 0) throw new InvalidOptionError('rope', `the fused RoPE needs ng * rpt % 4 == 0 (got ${ng} * ${rpt})`);
      const sgMin = subgroupMinSize(this.ctx);
      const sg = cfg.sg === true && this.ctx.features.has('subgroups') && (tk & (tk - 1)) === 0 && (sgMin & (sgMin - 1)) === 0;
      // x in registers (linear_gemv_reg.wgsl): one row; takes precedence over split-K.
      const perBlock = gateUp || a.rope ? (ng * rpt) / 2 : ng * rpt;
      const reg = vec && cfg.reg === true && rows === 1 ? planGemvReg({
        tk, rpt, ng, unroll, persist: cfg.persist, storeEach: cfg.storeEach, xGlobal: cfg.xGlobal, sg: cfg.sg === true && this.ctx.features.has('subgroups'), sgMin,
        nch: inDim / (4 * epw), epw, blocks: Math.max(...pieces.map((pc) => Math.ceil(pc.n / perBlock))),
        smemLimit: this.ctx.limits.maxComputeWorkgroupStorageSize,
      }) : undefined;
      const head = ((reg ? reg.sgw > 1 : sg) ? SG_HEAD : NO_SG_HEAD) + `const SGW: u32 = ${reg ? reg.sgw : Math.min(tk, sgMin)}u;\n` +
        `const ROWS: u32 = ${rows}u;\nconst TK: u32 = ${tk}u;\nconst RPT: u32 = ${rpt}u;\nconst NG: u32 = ${ng}u;\nconst UNROLL: u32 = ${unroll}u;\n` + (reg?.consts ?? '');
      // x staged in workgroup memory: rows x (tk * unroll) chunks of (epw + 1) vec4.
      const reduceBytes = (ng * rpt * (tk + 1) + rows * ng * rpt) * 4;
      const xsBudget = Math.min(GEMV_XS_BYTES, this.ctx.limits.maxComputeWorkgroupStorageSize - reduceBytes);
      const xs = vec && cfg.xs === true && rows * tk * unroll * (epw + 1) * 16 <= xsBudget;
      const kind = xs ? '_xs' : vec ? '' : '_any';
      // Epilogue: input scale (1 or the fused RMSNorm's) and the store.
      const epilogue = a.residual ? gemvResidSrc
        : (a.normIn ? gemvNormInSrc : ONE_SCALE) + (a.rope ? gemvRopeSrc : gemvStoreSrc);
      const constants: Record<string, number> = { GROUP: group, GATE_UP: gateUp ? 1 : 0, HAS_BIAS: a.bias ? 1 : 0 };
      if (a.rope) Object.assign(constants, { ROPE_ROWS: 1, KV_F16: a.rope.kvF16 ? 1 : 0 });
      const tag = a.residual ? '_resid' : `${a.normIn ? '_normin' : ''}${a.rope ? '_rope' : ''}`;
      const nch = inDim / (4 * epw);
      const sliceChunks = Math.ceil(nch / Math.max(1, cfg.splitK ?? 1));
      const slices = Math.ceil(nch / sliceChunks);
      if (reg) {
        regWgs = reg.pwg;
        pipeline = this.pipeline(`linear_gemv_reg${tag}${reg.sgw > 1 ? '_sg' : ''}_${fmt}`, head + FORMAT_SRC[fmt] + gemvCommonSrc + gemvRegSrc + epilogue, constants);
      } else if (vec && slices > 1) {
        const { KV_F16: _, ...c1 } = constants;
        splitPass = {
          pipeline: this.pipeline(`linear_gemv${kind}_partial${sg ? '_sg' : ''}_${fmt}`,
            head + FORMAT_SRC[fmt] + gemvCommonSrc + (xs ? gemvXsSrc : gemvSrc) + gemvPartialSrc, { ...c1, SPLIT_K: 1 }),
          sliceChunks, slices, nr: ng * rpt,
        };
        pipeline = this.pipeline(`linear_gemv_splitk${tag}_${fmt}`, head + FORMAT_SRC[fmt] + gemvCommonSrc + gemvSplitKSrc + epilogue, constants);
      } else {
        pipeline = this.pipeline(`linear_gemv${kind}${tag}${sg ? '_sg' : ''}_${fmt}`,
          head + FORMAT_SRC[fmt] + gemvCommonSrc + (xs ? gemvXsSrc : vec ? gemvSrc : gemvAnySrc) + epilogue, constants);
      }
      perWg = gateUp || a.rope ? (ng * rpt) / 2 : ng * rpt;
    } else {
      const wordPath = inDim % epw === 0 && (!quant || group % epw === 0);
      const consts = { GROUP: group, GATE_UP: gateUp ? 1 : 0, HAS_BIAS: a.bias ? 1 : 0 };
      const g = this.gemm;
      if ((g.variant ?? 'base') === 'base') {
        pipeline = this.pipeline(`linear_gemm_${fmt}`, `const BK: u32 = ${g.bk}u;\n` + FORMAT_SRC[fmt] + gemmSrc,
          { ...consts, WORD_PATH: wordPath ? 1 : 0, PREFETCH: g.prefetch ? 1 : 0 });
      } else {
        const shape = { format: fmt, epw, quant, group, inDim, xOffElems };
        pipeline = this.pipeline(`linear_gemm_${g.variant}_${fmt}`, gemmTiledSource(g, FORMAT_SRC[fmt], shape), consts);
      }
      gemmRows = gemmTile(g).tileM;
      perWg = gateUp ? gemmTile(g).tileN / 2 : gemmTile(g).tileN;
    }

    const uniforms: GPUBuffer[] = [];
    const steps: { pipeline: GPUComputePipeline; bg: GPUBindGroup; grid: [number, number] }[] = [];
    let workgroups = 0;
    const entries = (list: [number, GPUBuffer][]) => list.map(([binding, buffer]) => ({ binding, resource: { buffer } }));
    try {
      for (const pc of pieces) {
        const r = a.rope;
        const groups = Math.ceil(pc.n / perWg);
        const sp = splitPass;
        const params = uniformBuffer(this.ctx, [
          rows, pc.n, inDim, xOffElems,
          yOff / 4 + pc.col0, outCols, pc.row0, pc.row1,
          pc.col0, r?.headDim ?? 0, r?.rotaryDim ?? 0, r?.neox ? 1 : 0,
          a.normIn?.count ?? 0, a.normIn?.dim ?? 0, a.normIn?.eps ?? 0, r?.nHeads ?? 0,
          r?.nKvHeads ?? 0, r?.capacity ?? 0, workgroups, sp ? groups : 0x7fffffff,
          sp?.sliceChunks ?? 0, sp?.slices ?? 1, 0, 0,
        ], `${a.w.name}_linear_params`, [...new Array(14).fill('u32'), 'f32']);
        uniforms.push(params);
        const extra: [number, GPUBuffer][] = [];
        if (a.normIn) extra.push([8, a.normIn.ss]);
        if (a.residual) extra.push([8, a.residual.normW], [9, a.residual.h], [10, a.residual.ss]);
        if (a.rope) extra.push([9, a.rope.table], [10, a.rope.k], [11, a.rope.v], [12, a.rope.step]);
        const weights: [number, GPUBuffer][] = [[0, a.x], [1, pc.w0.data], [2, pc.w1.data], [3, pc.w0.scales ?? this.dummy], [4, pc.w1.scales ?? this.dummy]];
        let bindings: [number, GPUBuffer][];
        if (sp) {
          // (partials: (slices, groups, rows, NR) f32, owned like the uniforms)
          const part = createBuffer(this.ctx, sp.slices * groups * rows * sp.nr * 4, STORAGE.rw, `${a.w.name}_linear_partials`);
          uniforms.push(part);
          const bg1 = this.ctx.device.createBindGroup({
            label: `${a.w.name}_linear_partial`, layout: sp.pipeline.getBindGroupLayout(0), entries: entries([...weights, [7, params], [8, part]]),
          });
          steps.push({ pipeline: sp.pipeline, bg: bg1, grid: dispatchDims(this.ctx, sp.slices * groups) });
          bindings = [[0, part], [5, a.bias ?? this.dummy], [6, a.y], [7, params], ...extra];
        } else {
          bindings = [...weights, [5, a.bias ?? this.dummy], [6, a.y], [7, params], ...extra];
        }
        const bg = this.ctx.device.createBindGroup({ label: `${a.w.name}_linear`, layout: pipeline.getBindGroupLayout(0), entries: entries(bindings) });
        workgroups += groups;
        const grid: [number, number] = gemv ? dispatchDims(this.ctx, regWgs || groups) : [groups, Math.ceil(rows / gemmRows)];
        steps.push({ pipeline, bg, grid });
      }
    } catch (e) {
      for (const u of uniforms) releaseBuffer(this.ctx, u);
      throw e;
    }
    const ctx = this.ctx;
    return {
      workgroups,
      encode(pass: GPUComputePassEncoder) {
        let last: GPUComputePipeline | undefined;
        for (const s of steps) {
          if (s.pipeline !== last) pass.setPipeline((last = s.pipeline));
          pass.setBindGroup(0, s.bg);
          pass.dispatchWorkgroups(s.grid[0], s.grid[1]);
        }
      },
      destroy() {
        for (const u of uniforms) releaseBuffer(ctx, u);
        uniforms.length = 0;
      },
    };
  }

  private pipeline(label: string, code: string, constants: Record<string, number>): GPUComputePipeline {
    const key = `${Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(',')}|${code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.ctx.device.createShaderModule({ label, code });
      p = this.ctx.device.createComputePipeline({ label, layout: 'auto', compute: { module, entryPoint: 'main', constants } });
      this.pipelines.set(key, p);
    }
    return p;
  }
}

/** Subgroup reduction switch of linear_gemv_common.wgsl (sg_xor only called when SG_REDUCE). */
const SG_HEAD = 'enable subgroups;\nconst SG_REDUCE: bool = true;\nfn sg_xor(v: f32, m: u32) -> f32 { return subgroupShuffleXor(v, m); }\n';
const NO_SG_HEAD = 'const SG_REDUCE: bool = false;\nfn sg_xor(v: f32, m: u32) -> f32 { return v; }\n';

/** Smallest subgroup size of the adapter (4 where it does not say: the WebGPU minimum). */
function subgroupMinSize(ctx: GpuContext): number {
  return (ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 4;
}

/** The input scale of an epilogue without a fused norm. */
const ONE_SCALE = 'fn in_scale(lid: u32) -> f32 { return 1.0; }\n';


function partOf(w: GpuWeight, row: number): GpuWeightPart {
  const part = w.parts.find((pt) => row >= pt.rowStart && row < pt.rowStart + pt.rows);
  if (!part) throw new InvalidOptionError('w', `no part of ${w.name} holds row ${row}`);
  return part;
}

/** Validates a matrix weight against formats.ts; returns [out, in]. */
function checkWeight(w: GpuWeight): [number, number] {
  if (w.shape.length !== 2) throw new InvalidOptionError('w', `${w.name} must be a matrix [out, in], has shape [${w.shape}]`);
  const [out, inDim] = w.shape;
  if (!(out > 0 && inDim > 0)) throw new InvalidOptionError('w', `${w.name} has an empty shape [${w.shape}]`);
  if (!(w.format in FORMAT_SRC)) throw new InvalidOptionError('w', `${w.name} has unknown format '${w.format}'`);
  const quant = w.format === 'q8' || w.format === 'q4';
  if (quant && !(w.groupSize > 0 && inDim % w.groupSize === 0)) {
    throw new InvalidOptionError('w', `${w.name}: group size ${w.groupSize} must divide in = ${inDim}`);
  }
  const parts = [...w.parts].sort((u, v) => u.rowStart - v.rowStart);
  let next = 0;
  for (const part of parts) {
    if (part.rowStart !== next || part.rows <= 0) {
      throw new InvalidOptionError('w', `${w.name}: parts must tile rows 0..${out} without gaps (part at row ${part.rowStart} with ${part.rows} rows, expected row ${next})`);
    }
    next += part.rows;
    const need = packedBytes(w.format, part.rows * inDim);
    if (part.data.size < need) {
      throw new InvalidOptionError('w', `${w.name}: part at row ${part.rowStart} needs ${need} bytes of ${w.format} data, has ${part.data.size}`);
    }
    if (quant) {
      const sNeed = scaleBytes(w.format, part.rows * inDim, w.groupSize);
      if (!part.scales || part.scales.size < sNeed) {
        throw new InvalidOptionError('w', `${w.name}: part at row ${part.rowStart} needs ${sNeed} bytes of scales, has ${part.scales?.size ?? 0}`);
      }
    }
  }
  if (next !== out) throw new InvalidOptionError('w', `${w.name}: parts cover ${next} rows, shape says ${out}`);
  return [out, inDim];
}

/** CPU reference: y (rows, out) = x W^T (+ bias), f64 accumulation; `w` is the dequantized [out, in]. */
export function linearRef(x: Float32Array, w: Float32Array, rows: number, inDim: number, out: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias[o] : 0;
      for (let k = 0; k < inDim; k++) s += x[r * inDim + k] * w[o * inDim + k];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** CPU reference: y (rows, F) = silu(x Wg^T) * (x Wu^T), W = [Wg; Wu] dequantized [2F, in]. */
export function gateUpRef(x: Float32Array, w: Float32Array, rows: number, inDim: number, f: number): Float32Array {
  const gu = linearRef(x, w, rows, inDim, 2 * f);
  const y = new Float32Array(rows * f);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < f; c++) {
      const g = gu[r * 2 * f + c];
      y[r * f + c] = (g / (1 + Math.exp(-g))) * gu[r * 2 * f + f + c];
    }
  }
  return y;
}
