/**
 * Weight formats on the GPU: the contract between the loader (which packs)
 * and the kernels (which unpack). All matrices are [out, in] row-major
 * (PyTorch Linear layout); element e = r * in + c. Math is always f32.
 *
 * - 'f32': array<f32>, one element per word.
 * - 'f16': array<u32>; element e lives in word e >> 1, low half when e is even
 *          (unpack2x16float(w)[e & 1]). ceil(n / 2) words.
 * - 'q8':  symmetric int8 in groups of `groupSize` consecutive elements of a
 *          row (groupSize divides `in`; per-output-channel is groupSize = in).
 *          data: array<u32>, element e in byte (e & 3) of word e >> 2, two's
 *          complement; scales: f16 packed like 'f16', one per group, group
 *          g = e / groupSize; value = q * scale.
 * - 'q4':  int4 in groups of groupSize (32, 64 or 128; divides `in`),
 *          q in [0, 15], value = (q - 8) * scale. data: array<u32>, element e
 *          in bits 4 * (e & 7) .. +3 of word e >> 3; scales as in q8.
 * Vectors (norm weights, biases) are always 'f32'.
 *
 * Big tensors are split by rows into parts, each within
 * maxStorageBufferBindingSize; part k covers rows [rowStart, rowStart + rows).
 */
export type WeightFormat = 'f32' | 'f16' | 'q8' | 'q4';

export interface GpuWeightPart {
  rowStart: number;
  rows: number;
  data: GPUBuffer;
  scales?: GPUBuffer;
}

export interface GpuWeight {
  name: string;
  format: WeightFormat;
  /** [out, in] for matrices, [n] for vectors. */
  shape: number[];
  /** Quantization group size along `in` (q8/q4); 0 otherwise. */
  groupSize: number;
  parts: GpuWeightPart[];
}

/** Bytes of packed data for `n` elements in `format`. */
export function packedBytes(format: WeightFormat, n: number): number {
  switch (format) {
    case 'f32':
      return n * 4;
    case 'f16':
      return Math.ceil(n / 2) * 4;
    case 'q8':
      return Math.ceil(n / 4) * 4;
    case 'q4':
      return Math.ceil(n / 8) * 4;
  }
}

/** Bytes of scales for `n` elements in groups of `groupSize` (f16 packed). */
export function scaleBytes(format: WeightFormat, n: number, groupSize: number): number {
  if (format !== 'q8' && format !== 'q4') return 0;
  return Math.ceil(n / groupSize / 2) * 4;
}
