/**
 * Deterministic benchmark inputs shared by bench/gemm.ts and bench/kernels.ts:
 * a few random blocks of words (finite f32 / f16 in [-1, 1], any q codes, f16
 * scales in [0.001, 0.02]) tiled over GPU buffers, and weights [out, in] in any
 * format split into parts that fit one binding.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { createBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { packedBytes, scaleBytes, type GpuWeight, type WeightFormat } from '../src/loader/formats.ts';
import { f32ToF16 } from '../src/loader/quant.ts';
import type { Rng } from '../src/util/rng.ts';

export type BlockKind = 'f32' | 'f16' | 'bits' | 'scale';
export type Blocks = Record<BlockKind, Uint32Array>;

/** One block of `words` words per kind, drawn from `rng` in the order f32, f16, bits, scale. */
export function randomBlocks(rng: Rng, words: number): Blocks {
  const block = (kind: BlockKind): Uint32Array => {
    const w = new Uint32Array(words);
    const f = new Float32Array(w.buffer);
    for (let i = 0; i < w.length; i++) {
      if (kind === 'f32') f[i] = rng.uniform(-1, 1);
      else if (kind === 'f16') w[i] = f32ToF16(rng.uniform(-1, 1)) | (f32ToF16(rng.uniform(-1, 1)) << 16);
      else if (kind === 'scale') w[i] = f32ToF16(rng.uniform(0.001, 0.02)) | (f32ToF16(rng.uniform(0.001, 0.02)) << 16);
      else w[i] = (rng.next() * 2 ** 32) >>> 0;
    }
    return w;
  };
  return { f32: block('f32'), f16: block('f16'), bits: block('bits'), scale: block('scale') };
}

/** The block kind a weight format's data words come from. */
export const dataKind = (f: WeightFormat): BlockKind => (f === 'f32' ? 'f32' : f === 'f16' ? 'f16' : 'bits');

/** A storage buffer of `bytes` (rounded up to words) filled with `kind`'s block, repeated. */
export function filledBuffer(ctx: GpuContext, blocks: Blocks, bytes: number, kind: BlockKind, label: string): GPUBuffer {
  const buf = createBuffer(ctx, bytes, STORAGE.rw, label);
  const block = blocks[kind];
  const size = Math.ceil(bytes / 4) * 4;
  for (let off = 0; off < size; off += block.byteLength) {
    ctx.device.queue.writeBuffer(buf, off, block.buffer, 0, Math.min(block.byteLength, size - off));
  }
  return buf;
}

/**
 * A weight [out, inDim] in `format` (group size `group` for q8/q4), in parts of
 * at most `maxRows` rows so each fits one binding; `bytes` counts data + scales.
 */
export function randomWeight(
  ctx: GpuContext,
  blocks: Blocks,
  format: WeightFormat,
  out: number,
  inDim: number,
  group: number,
): { w: GpuWeight; bytes: number; buffers: GPUBuffer[]; maxRows: number } {
  const quant = format === 'q8' || format === 'q4';
  const groupSize = quant ? group : 0;
  const maxRows = Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / packedBytes(format, inDim)) - 1);
  const w: GpuWeight = { name: `bench_${format}_${out}x${inDim}`, format, shape: [out, inDim], groupSize, parts: [] };
  const buffers: GPUBuffer[] = [];
  let bytes = 0;
  for (let r0 = 0; r0 < out; r0 += maxRows) {
    const n = Math.min(maxRows, out - r0);
    const dBytes = packedBytes(format, n * inDim);
    const data = filledBuffer(ctx, blocks, dBytes, dataKind(format), `${w.name}.${r0}`);
    buffers.push(data);
    bytes += dBytes;
    let scales: GPUBuffer | undefined;
    if (quant) {
      const sBytes = scaleBytes(format, n * inDim, groupSize);
      scales = filledBuffer(ctx, blocks, sBytes, 'scale', `${w.name}.${r0}.scales`);
      buffers.push(scales);
      bytes += sBytes;
    }
    w.parts.push({ rowStart: r0, rows: n, data, scales });
  }
  return { w, bytes, buffers, maxRows };
}
