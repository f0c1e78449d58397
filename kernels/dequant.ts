/**
 * Launcher for the `dequant` entry point of kernels/linear.wgsl: expands a range of a q4 / q8 weight part into
 * the 'f32' weight format of src/gpu/formats.ts, in a scratch buffer the
 * prefill GEMM then reads as a plain f32 weight (kernels/linear.ts,
 * LinearOptions.prefillDequantMinRows; issue 9: the GEMM's in-kernel q4
 * decoding measured ~5% slower on the H100, and a 14336 x 4096 q4 weight
 * expands in ~50-60 us of HBM traffic against a ~12 ms GEMM at M = 4096).
 *
 * Sizes: dequantScratchBytes() is what the memory plan reserves and what the
 * engine hints to LinearKernels: the largest per-layer matrix, expanded,
 * within one storage binding.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { releaseBuffer, uniformBuffer } from '../src/gpu/buffers.ts';
import { dispatchDims, pipeline as pipelineOf, type PipelineSpec } from '../src/gpu/pipelines.ts';
import type { GpuWeightPart } from '../src/gpu/formats.ts';
import type { Dispatch } from './prepared.ts';
import { InvalidOptionError } from '../src/errors.ts';
import source from './linear.wgsl?raw';
import { wgslHeader } from '../src/gpu/wgsl-header.ts';

/** Fewest prefill rows that expand a q4 / q8 weight before the GEMM (evidence: LinearOptions.prefillDequantMinRows). */
export const DEFAULT_DEQUANT_MIN_ROWS = 256;

const EPW = { q4: 8, q8: 4 } as const;
/** FORMAT of kernels/linear.wgsl and its GEMM chunk type (the header needs both; dequant reads neither chunk nor act). */
const FORMAT_ID = { q4: 3, q8: 2 } as const;
const WCHUNK = { q4: 'array<u32, 1>', q8: 'vec2<u32>' } as const;
const THREADS = 256;

/** Bytes of `elems` weight elements in the expanded format. */
export function expandedBytes(elems: number): number {
  return Math.ceil(elems / 4) * 16; // whole vec4 (dst is bound as array<vec4<u32>>)
}

/**
 * Scratch bytes for the largest of `matrices` ([rows, in] shapes of the
 * per-layer weights a prefill GEMM reads) expanded to f32, at most
 * `maxBindingBytes` (bigger weights run in row chunks).
 */
export function dequantScratchBytes(matrices: number[][], maxBindingBytes: number): number {
  const largest = Math.max(0, ...matrices.map(([r, c]) => expandedBytes(r * c)));
  return Math.min(largest, Math.floor(maxBindingBytes / 16) * 16);
}

export interface DequantRangeArgs {
  format: 'q4' | 'q8';
  /** Quantization group along `in` (formats.ts). */
  groupSize: number;
  /** The source part (data, scales). */
  part: GpuWeightPart;
  /** First element of the range, counted from the part's first element. */
  srcElem0: number;
  count: number;
  /** (dstElem0 + count) f32 elements, rounded up to whole vec4 (expandedBytes); first destination element. */
  dst: GPUBuffer;
  dstElem0: number;
  label: string;
}

/** The pipelines prepareDequant may use for `format` (vector and any-range paths). */
export function dequantSpecs(format: 'q4' | 'q8'): PipelineSpec[] {
  return [true, false].map((vec) => ({
    label: `dequant_${format}_${vec ? 'vec' : 'any'}`,
    // (the f32 expansion is the same in every tier: the header of tier 'f32')
    code: wgslHeader('f32', { consts: { FORMAT: FORMAT_ID[format] }, aliases: { WChunk: WCHUNK[format], yt: 'f32' } }) + source,
    entryPoint: 'dequant',
    constants: { VEC: vec ? 1 : 0 },
  }));
}

/** Whether a range takes the one-source-word-per-thread path (whole vec2/vec4 stores). */
export function dequantVec(format: 'q4' | 'q8', groupSize: number, srcElem0: number, dstElem0: number, count: number): boolean {
  const epw = EPW[format];
  return srcElem0 % epw === 0 && dstElem0 % epw === 0 && count % epw === 0 && groupSize % epw === 0;
}

/**
 * One dispatch expanding a range; the returned Dispatch owns its uniform.
 * Ranges written by consecutive dispatches may share a vec4 (offsets not
 * multiples of 4): the non-vector path keeps the other elements.
 */
export function prepareDequant(ctx: GpuContext, a: DequantRangeArgs): Dispatch {
  const { format, groupSize, srcElem0, dstElem0, count } = a;
  if (format !== 'q4' && format !== 'q8') throw new InvalidOptionError('format', `dequantization takes q4 or q8, got '${format}' (${a.label})`);
  if (!a.part.scales) throw new InvalidOptionError('w', `${a.label}: a ${format} part needs scales`);
  if (!(groupSize > 0 && count > 0 && srcElem0 >= 0 && dstElem0 >= 0)) {
    throw new InvalidOptionError('dequant', `${a.label}: bad range (group ${groupSize}, src ${srcElem0}, dst ${dstElem0}, count ${count})`);
  }
  if (a.dst.size < expandedBytes(dstElem0 + count)) {
    throw new InvalidOptionError('dst', `${a.label}: needs ${expandedBytes(dstElem0 + count)} bytes, has ${a.dst.size}`);
  }
  if (srcElem0 + count > 2 ** 32 - 64 || dstElem0 + count > 2 ** 32 - 64) {
    throw new InvalidOptionError('dequant', `${a.label}: element offsets above 2^32`);
  }
  const vec = dequantVec(format, groupSize, srcElem0, dstElem0, count);
  const epw = EPW[format];
  // (VEC: one source word each; else one destination vec4 each)
  const threads = vec ? count / epw : Math.ceil((dstElem0 + count) / 4) - Math.floor(dstElem0 / 4);
  const p0 = pipelineOf(ctx, dequantSpecs(format)[vec ? 0 : 1]);
  const params = uniformBuffer(ctx, [srcElem0, dstElem0, count, groupSize], `${a.label}_dequant_params`);
  let bg: GPUBindGroup;
  try {
    bg = ctx.device.createBindGroup({
      label: `${a.label}_dequant`,
      layout: p0.getBindGroupLayout(0),
      entries: [a.part.data, a.part.scales, a.dst, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  } catch (e) {
    releaseBuffer(ctx, params);
    throw e;
  }
  const grid = dispatchDims(ctx, Math.ceil(threads / THREADS));
  const p = p0;
  let live = true;
  return {
    encode(pass: GPUComputePassEncoder) {
      pass.setPipeline(p);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(grid[0], grid[1]);
    },
    destroy() {
      if (live) releaseBuffer(ctx, params);
      live = false;
    },
  };
}
