/**
 * Launcher for dequant_f16.wgsl: expands a range of a q4 / q8 weight part
 * into the 'f16' (or 'f32') weight format of src/loader/formats.ts, in a
 * scratch buffer the prefill GEMM then reads as a plain f16 weight
 * (LinearOptions.prefillDequant in kernels/linear.ts; issue 9: the GEMM's
 * in-kernel q4 decoding measured ~6% slower than f16 on the H100, and a
 * 14336 x 4096 q4 weight expands in ~50-60 us of HBM traffic against a
 * ~12 ms GEMM at M = 4096).
 *
 * Sizes: dequantScratchBytes() is what the memory plan reserves and what the
 * engine hints to LinearKernels: the largest per-layer matrix, expanded,
 * within one storage binding.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { releaseBuffer, uniformBuffer } from '../src/gpu/buffers.ts';
import { dispatchDims } from '../src/gpu/pipelines.ts';
import type { GpuWeightPart } from '../src/loader/formats.ts';
import type { Dispatch } from '../src/engine/types.ts';
import { InvalidOptionError } from '../src/errors.ts';
import dequantSrc from './dequant_f16.wgsl?raw';
import f16BitsSrc from './f16_bits.wgsl?raw';
import q8Src from './linear_q8.wgsl?raw';
import q4Src from './linear_q4.wgsl?raw';

/** What a quantized prefill weight is expanded to before the GEMM ('none': the GEMM decodes in-kernel). */
export type PrefillDequant = 'f16' | 'f32' | 'none';
export const PREFILL_DEQUANTS: readonly PrefillDequant[] = ['f16', 'f32', 'none'];
/**
 * Default: expand to f32 (exact) when a prefill has at least DEFAULT_DEQUANT_MIN_ROWS rows. H100
 * 09:25 (bench/gpu-results/h100-0925-gemm-dequant.json, trvlsw): q4 40.4 / 40.3 TFLOP/s at
 * 4096^3 / 4096x14336x4096 with f32, 40.0 / 39.9 with f16 (which also rounds the weights), 38.1 /
 * 38.3 decoding in the GEMM.
 */
export const DEFAULT_PREFILL_DEQUANT: PrefillDequant = 'f32';
export const DEFAULT_DEQUANT_MIN_ROWS = 256;

const EPW = { q4: 8, q8: 4 } as const;
const FORMAT_SRC = { q4: q4Src, q8: q8Src } as const;
const THREADS = 256;

/** Bytes of `elems` weight elements in the expanded format. */
export function expandedBytes(out: 'f16' | 'f32', elems: number): number {
  return out === 'f16' ? Math.ceil(elems / 2) * 4 : elems * 4;
}

/**
 * Scratch bytes for the largest of `matrices` ([rows, in] shapes of the
 * per-layer weights a prefill GEMM reads) expanded to `out`, at most
 * `maxBindingBytes` (bigger weights run in row chunks).
 */
export function dequantScratchBytes(out: 'f16' | 'f32', matrices: number[][], maxBindingBytes: number): number {
  const largest = Math.max(0, ...matrices.map(([r, c]) => expandedBytes(out, r * c)));
  return Math.min(largest, Math.floor(maxBindingBytes / 4) * 4);
}

export interface DequantRangeArgs {
  format: 'q4' | 'q8';
  /** Quantization group along `in` (formats.ts). */
  groupSize: number;
  out: 'f16' | 'f32';
  /** The source part (data, scales). */
  part: GpuWeightPart;
  /** First element of the range, counted from the part's first element. */
  srcElem0: number;
  count: number;
  /** (dstElem0 + count) elements in `out`; first destination element. */
  dst: GPUBuffer;
  dstElem0: number;
  label: string;
}

const devicePipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** The generated header: output flags, the dst binding and its store helpers. */
function header(format: 'q4' | 'q8', out: 'f16' | 'f32', vec: boolean): string {
  const flags = `const OUT_F16: bool = ${out === 'f16'};\nconst VEC: bool = ${vec};\n`;
  const words = 'fn dst_get(d: u32) -> u32 { return dst[d]; }\nfn dst_set(d: u32, w: u32) { dst[d] = w; }\n';
  if (!vec) {
    return flags + '@group(0) @binding(2) var<storage, read_write> dst: array<u32>; // (dstElem0 + count) elements\n' + words +
      'fn store_word(i: u32, v: array<f32, EPW>) {}\n';
  }
  const pk = (a: number, b: number) => `f32_to_f16(v[${a}]) | (f32_to_f16(v[${b}]) << 16u)`;
  const f4 = (a: number) => `bitcast<vec4<u32>>(vec4<f32>(v[${a}], v[${a + 1}], v[${a + 2}], v[${a + 3}]))`;
  let vecType: string, body: string;
  if (out === 'f16' && format === 'q4') {
    vecType = 'vec4<u32>'; body = `dst[p.dstElem0 / 8u + i] = vec4<u32>(${pk(0, 1)}, ${pk(2, 3)}, ${pk(4, 5)}, ${pk(6, 7)});`;
  } else if (out === 'f16') {
    vecType = 'vec2<u32>'; body = `dst[p.dstElem0 / 4u + i] = vec2<u32>(${pk(0, 1)}, ${pk(2, 3)});`;
  } else if (format === 'q4') {
    vecType = 'vec4<u32>'; body = `dst[p.dstElem0 / 4u + 2u * i] = ${f4(0)};\n  dst[p.dstElem0 / 4u + 2u * i + 1u] = ${f4(4)};`;
  } else {
    vecType = 'vec4<u32>'; body = `dst[p.dstElem0 / 4u + i] = ${f4(0)};`;
  }
  const n = vecType === 'vec4<u32>' ? 4 : 2;
  return flags + `@group(0) @binding(2) var<storage, read_write> dst: array<${vecType}>; // (dstElem0 + count) elements, ${n} words per vector\n` +
    `fn dst_get(d: u32) -> u32 { return dst[d / ${n}u][d % ${n}u]; }\nfn dst_set(d: u32, w: u32) { dst[d / ${n}u][d % ${n}u] = w; }\n` +
    `fn store_word(i: u32, v: array<f32, EPW>) {\n  ${body}\n}\n`;
}

/** The WGSL of one dequantization pipeline (exported for tests). */
export function dequantSource(format: 'q4' | 'q8', out: 'f16' | 'f32', vec: boolean): string {
  return header(format, out, vec) + FORMAT_SRC[format] + f16BitsSrc + dequantSrc;
}

/** Whether a range takes the one-source-word-per-thread path (whole vec2/vec4 stores). */
export function dequantVec(format: 'q4' | 'q8', groupSize: number, srcElem0: number, dstElem0: number, count: number): boolean {
  const epw = EPW[format];
  return srcElem0 % epw === 0 && dstElem0 % epw === 0 && count % epw === 0 && groupSize % epw === 0;
}

/**
 * One dispatch expanding a range; the returned Dispatch owns its uniform.
 * Ranges written by consecutive dispatches may share an f16 word (odd
 * element offsets): the non-vector path keeps the other half.
 */
export function prepareDequant(ctx: GpuContext, a: DequantRangeArgs): Dispatch {
  const { format, out, groupSize, srcElem0, dstElem0, count } = a;
  if (format !== 'q4' && format !== 'q8') throw new InvalidOptionError('format', `dequantization takes q4 or q8, got '${format}' (${a.label})`);
  if (!a.part.scales) throw new InvalidOptionError('w', `${a.label}: a ${format} part needs scales`);
  if (!(groupSize > 0 && count > 0 && srcElem0 >= 0 && dstElem0 >= 0)) {
    throw new InvalidOptionError('dequant', `${a.label}: bad range (group ${groupSize}, src ${srcElem0}, dst ${dstElem0}, count ${count})`);
  }
  if (a.dst.size < expandedBytes(out, dstElem0 + count)) {
    throw new InvalidOptionError('dst', `${a.label}: needs ${expandedBytes(out, dstElem0 + count)} bytes, has ${a.dst.size}`);
  }
  if (srcElem0 + count > 2 ** 32 - 64 || dstElem0 + count > 2 ** 32 - 64) {
    throw new InvalidOptionError('dequant', `${a.label}: element offsets above 2^32`);
  }
  const vec = dequantVec(format, groupSize, srcElem0, dstElem0, count);
  const epw = EPW[format];
  const threads = vec ? count / epw : out === 'f16' ? Math.ceil((dstElem0 + count) / 2) - Math.floor(dstElem0 / 2) : count;
  let cache = devicePipelines.get(ctx.device);
  if (!cache) devicePipelines.set(ctx.device, (cache = new Map()));
  const key = `${format}_${out}_${vec ? 'vec' : 'any'}`;
  let pipeline = cache.get(key);
  if (!pipeline) {
    const module = ctx.device.createShaderModule({ label: `dequant_${key}`, code: dequantSource(format, out, vec) });
    pipeline = ctx.device.createComputePipeline({ label: `dequant_${key}`, layout: 'auto', compute: { module, entryPoint: 'main' } });
    cache.set(key, pipeline);
  }
  const params = uniformBuffer(ctx, [srcElem0, dstElem0, count, groupSize], `${a.label}_dequant_params`);
  let bg: GPUBindGroup;
  try {
    bg = ctx.device.createBindGroup({
      label: `${a.label}_dequant`, layout: pipeline.getBindGroupLayout(0),
      entries: [a.part.data, a.part.scales, a.dst, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  } catch (e) {
    releaseBuffer(ctx, params);
    throw e;
  }
  const grid = dispatchDims(ctx, Math.ceil(threads / THREADS));
  const p = pipeline;
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
