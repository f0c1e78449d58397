/**
 * Launcher and CPU references for the linear-layer kernels, all in kernels/linear.wgsl:
 *   y (rows, out) = x (rows, in) W^T (+ bias)            prepare()
 *   y (rows, F)   = silu(x Wg^T) * (x Wu^T), W = [Wg; Wu] prepareGateUp()
 * with W packed in any weight format of src/gpu/formats.ts (f32, f16, q8,
 * q4) and split by rows into parts. Prefill (rows > gemvMaxRows) runs the
 * register-tiled GEMM (entry point `gemm`); q4 / q8 prefills of
 * prefillDequantMinRows rows or more first expand the weight to f32 in a
 * scratch buffer (`dequant`, kernels/dequant.ts) and run the f32 GEMM on it. Up to
 * gemvMaxRows rows run the matrix-vector kernel (`gemv_store`, or with a decode
 * fusion `gemv_residual` / `gemv_rope`, NORM_IN for the input norm), one row
 * of x per workgroup set (the row count is the dispatch size). Shapes the
 * vector loads do not take (K or the group not a multiple of the 16-byte
 * chunk, unaligned x offsets; no published checkpoint has them) run the
 * element-wise `gemv_any_*` entry points for any row count. Each part (or gate/up segment) is
 * one dispatch writing its own column range of y. Everything is built in
 * prepare(): the returned Dispatch only replays. Pipelines come from the
 * device's cache (src/gpu/pipelines.ts); linearPipelineSpecs() lists those an
 * engine may use, so its load compiles them all. The source of each is the generated
 * header (linearSource: tier, weight format, output element) + kernels/linear.wgsl.
 *
 * Speed design (issue 9): the GEMM dequantizes each weight tile once into
 * workgroup memory, so its inner loop is the same f32 8x8 register block for
 * every format; the matrix-vector kernel streams 16-byte weight chunks with
 * every x chunk serving several rows, and decodes int4/int8 without
 * int->float conversions and f16 by bit moves (dec_word in linear.wgsl).
 * H100 figures: in the kernels' comments.
 *
 * Tiers (src/gpu/tier.ts): x, h and y are `act` (f16 in tier 'f16'; byte offsets and sizes
 * count 2 bytes per element there), except y of the residual epilogue (the residual stream)
 * and of yF32 outputs (logits), which are f32 in every tier.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, uniformBuffer } from '../src/gpu/buffers.ts';
import { dispatchDims, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { packedBytes, scaleBytes, type GpuWeight, type GpuWeightPart, type WeightFormat } from '../src/gpu/formats.ts';
import type { Dispatch } from './prepared.ts';
import { InvalidOptionError } from '../src/errors.ts';
import { TENSOR_MIN_ROWS, TensorLinear, tensorLinearFits, tensorLinearSpec } from './linear_tensor.ts';
import type { KernelTier } from '../src/gpu/tier.ts';
import { actBytes, wgslHeader } from '../src/gpu/wgsl-header.ts';
import source from './linear.wgsl?raw';
import { DEFAULT_DEQUANT_MIN_ROWS, dequantScratchBytes, dequantSpecs, expandedBytes, prepareDequant } from './dequant.ts';
/** FORMAT of kernels/linear.wgsl for each weight format. */
const FORMAT_ID: Record<WeightFormat, number> = { f32: 0, f16: 1, q8: 2, q4: 3 };
/** The GEMM's weight chunk type (WChunk of kernels/linear.wgsl): CH elements along k in 4, 2 or 1 word(s). */
const WCHUNK: Record<WeightFormat, string> = { f32: 'vec4<u32>', f16: 'vec4<u32>', q8: 'vec2<u32>', q4: 'array<u32, 1>' };

/**
 * The source of every linear pipeline: the generated header (src/gpu/wgsl-header.ts: the tier's
 * act, the weight format, WChunk, and the output element yt: act, or f32 for the residual stream
 * and logits) + kernels/linear.wgsl.
 */
export function linearSource(tier: KernelTier, format: WeightFormat, yF32: boolean): string {
  return wgslHeader(tier, { consts: { FORMAT: FORMAT_ID[format] }, aliases: { WChunk: WCHUNK[format], yt: yF32 ? 'f32' : 'act' } }) + source;
}

/** Elements per u32 word of each format. */
export const ELEMS_PER_WORD: Record<WeightFormat, number> = { f32: 1, f16: 2, q8: 4, q4: 8 };
/** Elements per weight chunk of the GEMM's vector loads (CH in linear.wgsl). */
const GEMM_CHUNK: Record<WeightFormat, number> = { f32: 4, f16: 8, q8: 8, q4: 8 };
/** Weight rows per matrix-vector workgroup (NG * RPT of linear.wgsl). */
const GEMV_NR = 16;
/** Weight rows per GEMM workgroup and rows of x per GEMM workgroup. */
const GEMM_TILE = 128;

export interface LinearArgs {
  /** (rows, in) f32 starting at xOffsetBytes */
  x: GPUBuffer;
  xOffsetBytes?: number;
  /** [out, in] */
  w: GpuWeight;
  /** (out) f32 */
  bias?: GPUBuffer;
  /** (rows, out) act (f32 with yF32 or residual) starting at yOffsetBytes; with rope: (nHeads * headDim) roped Q */
  y: GPUBuffer;
  yOffsetBytes?: number;
  /** y holds f32 whatever the tier (logits); the residual epilogue's y (the residual stream) always does. */
  yF32?: boolean;
  rows: number;
  /** Decode fusions (matrix-vector kernel, rows = 1; see the GemvNormIn / GemvResidual / GemvRope docs). */
  normIn?: GemvNormIn;
  residual?: GemvResidual;
  rope?: GemvRope;
}

/**
 * x is h = x_res * normW (a GemvResidual output) and the products are scaled
 * by RMSNorm's 1 / sqrt(sum(x_res^2) / dim + eps), sum(x_res^2) given as
 * `count` partial sums: y = rmsnorm(x_res) W^T (linear.wgsl NORM_IN).
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
 * GemvNormIn; PreparedLinear.workgroups says how many) (linear.wgsl gemv_residual).
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
 * The QKV projection with RoPE and the KV-cache write fused (linear.wgsl gemv_rope):
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

/** A prepared linear; workgroups: how many the matrix-vector kernel runs per row (GemvResidual partial sums). */
export type PreparedLinear = Dispatch & { workgroups: number };

export interface GateUpArgs {
  /** (rows, in) f32 */
  x: GPUBuffer;
  xOffsetBytes?: number;
  /** [2F, in]: gate rows 0..F-1, then up rows F..2F-1 */
  w: GpuWeight;
  /** (rows, F) act */
  y: GPUBuffer;
  yOffsetBytes?: number;
  rows: number;
  normIn?: GemvNormIn;
}

export interface LinearOptions {
  /** Largest row count that runs the matrix-vector kernel (default 8, at most 8). */
  gemvMaxRows?: number;
  /**
   * Fewest rows of a q4 / q8 prefill that expand the weight to f32 before the GEMM (default 256;
   * H100 09:25, bench/gpu-results/h100-0925-gemm-dequant.json: q4 40.4 / 40.3 TFLOP/s at
   * 4096^3 / 4096x14336x4096 with the f32 expansion against 38.1 / 38.3 decoding in the GEMM).
   */
  prefillDequantMinRows?: number;
  /** Cap on the dequantization scratch (default: the storage binding limit); larger weights run in row chunks. */
  prefillScratchMaxBytes?: number;
  /**
   * The 'tensor' kernel tier (src/gpu/tier.ts; the device must support it): prefills of
   * TENSOR_MIN_ROWS rows or more whose weight fits (f16 / q8 / q4, tensorLinearFits) and whose x
   * starts on a 16-byte boundary run kernels/linear_tensor.wgsl; everything else as without it.
   */
  tensor?: boolean;
}

/** Whether a prefill of `rows` rows of this weight runs the tensor kernel (LinearOptions.tensor). */
export function tensorRoute(tensor: boolean | undefined, w: Pick<GpuWeight, 'format' | 'shape' | 'groupSize'>, rows: number, xOffsetBytes = 0): boolean {
  return !!tensor && rows >= TENSOR_MIN_ROWS && xOffsetBytes % 16 === 0 && tensorLinearFits(w as GpuWeight);
}

/** K step of the default GEMM: 16, or 8 where the device's workgroup memory is below the 16.5 KiB BK 16 needs. */
export function gemmBk(ctx: GpuContext): 8 | 16 {
  return ctx.limits.maxComputeWorkgroupStorageSize >= 2 * 16 * 33 * 16 ? 16 : 8;
}

/** The epilogue of a matrix-vector dispatch (the decode fusions, see GemvNormIn / GemvResidual / GemvRope). */
export type GemvEpilogue = 'store' | 'normIn' | 'residual' | 'rope' | 'normInRope';

/** What selects one linear pipeline (besides the format's weight layout). */
interface PipelineKey {
  gemv: boolean;
  /** vector path (gemv: 16-byte chunks; GEMM: vec4 x and whole chunks) or the any-shape kernel */
  vec: boolean;
  format: WeightFormat;
  group: number;
  gateUp: boolean;
  bias: boolean;
  epilogue: GemvEpilogue;
  kvF16: boolean;
  tier: KernelTier;
  /** y is f32 whatever the tier (the residual stream, logits); the residual epilogue always is. */
  yF32: boolean;
}

/** The entry point of kernels/linear.wgsl that runs each epilogue (normIn is NORM_IN on store / rope). */
const EPILOGUE_ENTRY: Record<GemvEpilogue, string> = { store: 'store', normIn: 'store', residual: 'residual', rope: 'rope', normInRope: 'rope' };

function specOf(ctx: GpuContext, k: PipelineKey): PipelineSpec {
  const constants: Record<string, number> = { GROUP: k.group, GATE_UP: k.gateUp ? 1 : 0, HAS_BIAS: k.bias ? 1 : 0 };
  const yF32 = k.yF32 || (k.gemv && k.epilogue === 'residual');
  const code = linearSource(k.tier, k.format, yF32);
  const tier = k.tier;
  const yTag = yF32 && tier === 'f16' ? '_yf32' : '';
  if (!k.gemv) return { label: `linear_gemm_${k.format}${yTag}`, code, entryPoint: 'gemm', constants: { ...constants, BK: gemmBk(ctx) }, tier };
  const rope = k.epilogue === 'rope' || k.epilogue === 'normInRope';
  if (rope) Object.assign(constants, { ROPE_ROWS: 1, KV_F16: k.kvF16 ? 1 : 0 });
  if (k.epilogue === 'normIn' || k.epilogue === 'normInRope') constants.NORM_IN = 1;
  const entryPoint = `gemv${k.vec ? '' : '_any'}_${EPILOGUE_ENTRY[k.epilogue]}`;
  const epi = k.epilogue === EPILOGUE_ENTRY[k.epilogue] ? '' : `_${k.epilogue}`;
  return { label: `linear_${entryPoint}${epi}_${k.format}${yTag}`, code, entryPoint, constants, tier };
}

/** Whether a weight of `inDim` columns in `format` / `group` takes the vector kernels at x offset xOffElems. */
function vecPaths(format: WeightFormat, group: number, inDim: number, xOffElems: number): { gemv: boolean; gemm: boolean } {
  const epw = ELEMS_PER_WORD[format];
  const quant = format === 'q8' || format === 'q4';
  const ch = GEMM_CHUNK[format];
  return {
    gemv: inDim % (4 * epw) === 0 && (!quant || group % (4 * epw) === 0) && xOffElems % 4 === 0,
    gemm: inDim % 4 === 0 && xOffElems % 4 === 0 && inDim % ch === 0 && (!quant || group % ch === 0),
  };
}

/** One way an engine uses a weight matrix (for linearPipelineSpecs). */
export interface LinearUse {
  format: WeightFormat;
  groupSize: number;
  /** [out, in] */
  shape: number[];
  gateUp?: boolean;
  bias?: boolean;
  /** Rows it runs with: 'decode' (1), 'prefill' (1 .. prefillChunk), or both. */
  rows: 'decode' | 'prefill' | 'both';
  /** Largest row count of a prefill (the chunk). */
  maxRows?: number;
  /** The decode fusion it runs with (decode rows only). */
  epilogue?: GemvEpilogue;
  kvF16?: boolean;
  /** x may start at any row of a [rows, in] activation (the LM head of a prefill's last row). */
  anyRowOffset?: boolean;
  /** Its output is f32 whatever the tier (the LM head's logits). */
  yF32?: boolean;
}

/**
 * The pipelines the linear kernels may build for these uses: every
 * matrix-vector / GEMM / dequantization pipeline prepare() can pick for them
 * with these options, so an engine's load compiles them all.
 */
export function linearPipelineSpecs(ctx: GpuContext, uses: LinearUse[], opts: LinearOptions = {}, tier: KernelTier = 'f32'): PipelineSpec[] {
  const gemvMaxRows = Math.min(8, opts.gemvMaxRows ?? 8);
  const minRows = opts.prefillDequantMinRows ?? DEFAULT_DEQUANT_MIN_ROWS;
  const out: PipelineSpec[] = [];
  for (const u of uses) {
    const [, inDim] = u.shape;
    const quant = u.format === 'q8' || u.format === 'q4';
    const group = quant ? u.groupSize : 1;
    const maxRows = u.rows === 'decode' ? 1 : (u.maxRows ?? Infinity);
    // x offsets: 0, or any row of the activation ((rows - 1) * inDim elements).
    const offsets = u.anyRowOffset && inDim % 4 !== 0 ? [0, 1] : [0];
    const base = {
      format: u.format,
      group,
      gateUp: u.gateUp === true,
      bias: u.bias === true,
      epilogue: 'store' as GemvEpilogue,
      kvF16: u.kvF16 === true,
      tier,
      yF32: u.yF32 === true,
    };
    for (const off of offsets) {
      const vec = vecPaths(u.format, group, inDim, off);
      if (u.rows !== 'prefill' && u.epilogue && u.epilogue !== 'store') {
        out.push(specOf(ctx, { ...base, gemv: true, vec: vec.gemv, epilogue: u.epilogue }));
      } else if (gemvMaxRows >= 1) {
        out.push(specOf(ctx, { ...base, gemv: true, vec: vec.gemv }));
      }
      if (u.rows === 'decode' || maxRows <= gemvMaxRows) continue;
      // The tensor kernel from TENSOR_MIN_ROWS rows (LinearOptions.tensor); the GEMM below it (gemvMaxRows <= 8).
      const tensor = tensorRoute(opts.tensor, u, maxRows);
      if (tensor) out.push(tensorLinearSpec(u.format, u.gateUp ? 'gateup' : u.bias ? 'bias' : 'plain')!);
      // (shapes the GEMM does not take run the any-shape matrix-vector kernel, pushed above or here)
      out.push(specOf(ctx, vec.gemm ? { ...base, gemv: false, vec: true } : { ...base, gemv: true, vec: false }));
      if (quant && maxRows >= minRows && (!tensor || minRows < TENSOR_MIN_ROWS) && vecPaths('f32', 1, inDim, off).gemm) {
        // the expanded weight: an f32 GEMM (group 1), after the dequantization pass
        out.push(specOf(ctx, { ...base, format: 'f32', group: 1, gemv: false, vec: true }));
        out.push(...dequantSpecs(u.format as 'q4' | 'q8'));
      }
    }
  }
  return out;
}

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
  private readonly gemvMaxRows: number;
  private readonly dequantMinRows: number;
  private readonly scratchMaxBytes: number;
  /** The prefill dequantization scratch (allocated by the first prepare that needs it) and its size hint. */
  private scratch?: GPUBuffer;
  private scratchHintBytes = 0;
  /** The tensor tier's launcher (LinearOptions.tensor). */
  private readonly tensor?: TensorLinear;

  private constructor(
    private ctx: GpuContext,
    private dummy: GPUBuffer,
    opts: LinearOptions,
    /** The kernel tier (src/gpu/tier.ts): activations x, h and y are `act` of it (2 bytes in 'f16'). */
    readonly tier: KernelTier,
  ) {
    this.gemvMaxRows = Math.min(8, opts.gemvMaxRows ?? 8);
    this.dequantMinRows = opts.prefillDequantMinRows ?? DEFAULT_DEQUANT_MIN_ROWS;
    if (!(Number.isInteger(this.dequantMinRows) && this.dequantMinRows >= 1)) {
      throw new InvalidOptionError('prefillDequantMinRows', `must be a positive integer (got ${opts.prefillDequantMinRows})`);
    }
    const bind = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    this.scratchMaxBytes = Math.floor(Math.min(bind, opts.prefillScratchMaxBytes ?? Infinity) / 16) * 16;
    if (!(this.scratchMaxBytes >= 16)) {
      throw new InvalidOptionError('prefillScratchMaxBytes', `must be at least 16 (got ${opts.prefillScratchMaxBytes})`);
    }
    if (opts.tensor) this.tensor = new TensorLinear(ctx);
  }

  /** Whether prefills may run the tensor kernel (LinearOptions.tensor). */
  get usesTensor(): boolean {
    return this.tensor !== undefined;
  }

  static async create(ctx: GpuContext, opts: LinearOptions = {}, tier: KernelTier = 'f32'): Promise<LinearKernels> {
    const dummy = createBuffer(ctx, 16, STORAGE.rw, 'linear_dummy');
    try {
      return new LinearKernels(ctx, dummy, opts, tier);
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
    return headDim % 4 === 0 && rotaryDim % 4 === 0 && this.gemvMaxRows >= 1;
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

  /** Releases the kernels' own buffers (prepared dispatches release theirs; destroy those first). */
  destroy(): void {
    releaseBuffer(this.ctx, this.dummy);
    releaseBuffer(this.ctx, this.scratch);
    this.scratch = undefined;
    this.tensor?.destroy();
  }

  /**
   * Size hint for the prefill dequantization scratch: the [rows, in] shapes
   * of the quantized weights prefills will run (the engine passes its layer
   * matrices), so the first allocation holds the largest one whole. Nothing
   * is allocated here.
   */
  reserveDequantScratch(matrices: number[][]): void {
    this.scratchHintBytes = Math.max(this.scratchHintBytes, dequantScratchBytes(matrices, this.scratchMaxBytes));
  }

  /** Bytes of the dequantization scratch now allocated (0 before the first prefill that needs it). */
  get dequantScratchBytes(): number {
    return this.scratch?.size ?? 0;
  }

  /**
   * A q4 / q8 prefill through the scratch: per chunk of output columns (as
   * many whole GEMM tiles as the scratch holds), the dequantization dispatch
   * (gate/up: gate rows, then up rows after them) and the GEMM reading the
   * chunk as an f32 weight. undefined where the scratch cannot hold one row
   * (the in-kernel path runs instead).
   */
  private buildDequant(a: LinearArgs, inDim: number, outCols: number, pieces: Piece[], gateUp: boolean): PreparedLinear | undefined {
    const fmt = a.w.format as 'q4' | 'q8';
    const segs = gateUp ? 2 : 1;
    if (!this.scratch) {
      const need = Math.max(...pieces.map((pc) => expandedBytes(segs * pc.n * inDim)));
      const bytes = Math.min(this.scratchMaxBytes, Math.max(need, this.scratchHintBytes));
      this.scratch = createBuffer(this.ctx, bytes, STORAGE.rw, 'linear_dequant_scratch');
    }
    const scratch = this.scratch;
    let maxRows = Math.floor(Math.floor(scratch.size / 4) / (segs * inDim));
    if (maxRows < 1) return undefined;
    const tile = GEMM_TILE / segs;
    if (maxRows >= tile) maxRows -= maxRows % tile;
    const steps: Dispatch[] = [];
    try {
      for (const pc of pieces) {
        for (let c0 = 0; c0 < pc.n; c0 += maxRows) {
          const n = Math.min(maxRows, pc.n - c0);
          const range = { format: fmt, groupSize: a.w.groupSize, dst: scratch, count: n * inDim, label: a.w.name } as const;
          steps.push(prepareDequant(this.ctx, { ...range, part: pc.w0, srcElem0: (pc.row0 + c0) * inDim, dstElem0: 0 }));
          if (gateUp) steps.push(prepareDequant(this.ctx, { ...range, part: pc.w1, srcElem0: (pc.row1 + c0) * inDim, dstElem0: n * inDim }));
          const part: GpuWeightPart = { rowStart: 0, rows: segs * n, data: scratch };
          const w: GpuWeight = { name: `${a.w.name}_f32`, format: 'f32', shape: [segs * n, inDim], groupSize: 0, parts: [part] };
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
    // Element sizes: x is act; y is act, or f32 (yF32, and the residual stream of the residual epilogue).
    const xb = actBytes(this.tier);
    const yF32 = a.yF32 === true || !!a.residual;
    const yb = yF32 ? 4 : xb;
    const xType = xb === 4 ? 'f32' : 'f16';
    const yType = yb === 4 ? 'f32' : 'f16';
    if (!Number.isInteger(rows) || rows < 1) throw new InvalidOptionError('rows', `must be a positive integer (got ${rows})`);
    if (xOff % xb || yOff % yb) throw new InvalidOptionError('xOffsetBytes/yOffsetBytes', `must be multiples of ${xb} / ${yb} (got ${xOff}, ${yOff})`);
    if (a.x.size < xOff + rows * inDim * xb) {
      throw new InvalidOptionError(
        'x',
        `needs ${xOff + rows * inDim * xb} bytes for ${rows} x ${inDim} ${xType} at offset ${xOff}, has ${a.x.size} (${a.w.name})`,
      );
    }
    if (a.y.size < yOff + rows * outCols * yb) {
      throw new InvalidOptionError(
        'y',
        `needs ${yOff + rows * outCols * yb} bytes for ${rows} x ${outCols} ${yType} at offset ${yOff}, has ${a.y.size} (${a.w.name})`,
      );
    }
    const fmt = a.w.format;
    const quant = fmt === 'q8' || fmt === 'q4';
    const group = quant ? a.w.groupSize : 1;
    const xOffElems = xOff / xb;
    const vec = vecPaths(fmt, group, inDim, xOffElems);
    const fused = a.normIn || a.residual || a.rope;
    if (fused && !(rows <= this.gemvMaxRows && rows === 1))
      throw new InvalidOptionError(
        'rows',
        `normIn / residual / rope need one row on the matrix-vector kernel (got ${rows} rows, gemvMaxRows ${this.gemvMaxRows})`,
      );
    if (a.residual && (gateUp || a.rope)) throw new InvalidOptionError('residual', 'a residual epilogue takes a plain projection');
    if (this.tensor && !fused && tensorRoute(true, a.w, rows, xOff)) {
      const d = this.tensor.prepare({ x: a.x, xOffsetBytes: xOff, w: a.w, bias: a.bias, y: a.y, yOffsetBytes: yOff, rows }, gateUp);
      return { workgroups: 0, encode: (pass) => d.encode(pass), destroy: () => d.destroy() };
    }
    if (rows > this.gemvMaxRows && quant && rows >= this.dequantMinRows && vecPaths('f32', 1, inDim, xOffElems).gemm) {
      const d = this.buildDequant(a, inDim, outCols, pieces, gateUp);
      if (d) return d;
    }
    // The GEMM for more than gemvMaxRows rows where its vector loads fit; else the matrix-vector kernel, one row per workgroup set.
    const gemv = rows <= this.gemvMaxRows || !vec.gemm;
    const epilogue: GemvEpilogue = a.residual ? 'residual' : a.rope ? (a.normIn ? 'normInRope' : 'rope') : a.normIn ? 'normIn' : 'store';
    const p = pipeline(
      this.ctx,
      specOf(this.ctx, {
        gemv,
        vec: gemv ? vec.gemv : true,
        format: fmt,
        group,
        gateUp,
        bias: !!a.bias,
        epilogue,
        kvF16: a.rope?.kvF16 === true,
        tier: this.tier,
        yF32,
      }),
    );
    const tileN = gemv ? GEMV_NR : GEMM_TILE;
    const perWg = gateUp || a.rope ? tileN / 2 : tileN;

    const uniforms: GPUBuffer[] = [];
    const steps: { bg: GPUBindGroup; grid: [number, number] }[] = [];
    let workgroups = 0;
    const entries = (list: [number, GPUBuffer][]) => list.map(([binding, buffer]) => ({ binding, resource: { buffer } }));
    try {
      for (const pc of pieces) {
        const r = a.rope;
        const groups = Math.ceil(pc.n / perWg);
        const params = uniformBuffer(
          this.ctx,
          [
            rows,
            pc.n,
            inDim,
            xOffElems,
            yOff / yb + pc.col0,
            outCols,
            pc.row0,
            pc.row1,
            pc.col0,
            r?.headDim ?? 0,
            r?.rotaryDim ?? 0,
            r?.neox ? 1 : 0,
            a.normIn?.count ?? 0,
            a.normIn?.dim ?? 0,
            a.normIn?.eps ?? 0,
            r?.nHeads ?? 0,
            r?.nKvHeads ?? 0,
            r?.capacity ?? 0,
            workgroups,
            groups,
          ],
          `${a.w.name}_linear_params`,
          [...new Array(14).fill('u32'), 'f32'],
        );
        uniforms.push(params);
        const extra: [number, GPUBuffer][] = [];
        // (the GEMM binds 0..7; the store and rope epilogues read ssIn at 8, a dummy without NORM_IN)
        if (gemv && !a.residual) extra.push([8, a.normIn?.ss ?? this.dummy]);
        if (a.residual) extra.push([8, a.residual.normW], [9, a.residual.h], [10, a.residual.ss]);
        if (a.rope) extra.push([9, a.rope.table], [10, a.rope.k], [11, a.rope.v], [12, a.rope.step]);
        const bindings: [number, GPUBuffer][] = [
          [0, a.x],
          [1, pc.w0.data],
          [2, pc.w1.data],
          [3, pc.w0.scales ?? this.dummy],
          [4, pc.w1.scales ?? this.dummy],
          [5, a.bias ?? this.dummy],
          [6, a.y],
          [7, params],
          ...extra,
        ];
        const bg = this.ctx.device.createBindGroup({ label: `${a.w.name}_linear`, layout: p.getBindGroupLayout(0), entries: entries(bindings) });
        workgroups += groups;
        // gemv: `groups` workgroups per row of x; GEMM: column tiles x row tiles.
        const grid: [number, number] = gemv ? dispatchDims(this.ctx, groups * rows) : [groups, Math.ceil(rows / GEMM_TILE)];
        steps.push({ bg, grid });
      }
    } catch (e) {
      for (const u of uniforms) releaseBuffer(this.ctx, u);
      throw e;
    }
    const ctx = this.ctx;
    return {
      workgroups,
      encode(pass: GPUComputePassEncoder) {
        pass.setPipeline(p);
        for (const s of steps) {
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
}

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
  if (!(w.format in FORMAT_ID)) throw new InvalidOptionError('w', `${w.name} has unknown format '${w.format}'`);
  const quant = w.format === 'q8' || w.format === 'q4';
  if (quant && !(w.groupSize > 0 && inDim % w.groupSize === 0)) {
    throw new InvalidOptionError('w', `${w.name}: group size ${w.groupSize} must divide in = ${inDim}`);
  }
  const parts = [...w.parts].sort((u, v) => u.rowStart - v.rowStart);
  let next = 0;
  for (const part of parts) {
    if (part.rowStart !== next || part.rows <= 0) {
      throw new InvalidOptionError(
        'w',
        `${w.name}: parts must tile rows 0..${out} without gaps (part at row ${part.rowStart} with ${part.rows} rows, expected row ${next})`,
      );
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
