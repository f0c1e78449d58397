/**
 * Reference packing and dequantization of the GPU weight formats
 * (src/gpu/formats.ts): what the kernels are tested against. The loader's own
 * packing is src/loader/quant.ts (f16 conversion, q8/q4 quantizers).
 */
import type { WeightFormat } from '../../src/gpu/formats.ts';
import { f16ToF32, f32ToF16, quantizeQ4, quantizeQ8, type Quantized } from '../../src/loader/quant.ts';

/** Packs f32 values as f16 pairs into u32 words (element e: word e>>1, low half if even). */
export function packF16(src: Float32Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(src.length / 2));
  for (let i = 0; i < src.length; i++) out[i >> 1] |= f32ToF16(src[i]) << ((i & 1) * 16);
  return out;
}

export function unpackF16(words: Uint32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16ToF32((words[i >> 1] >>> ((i & 1) * 16)) & 0xffff);
  return out;
}

/** Dequantizes q8/q4 data back to f32 (the reference for kernels and error checks). */
export function dequantize(format: 'q8' | 'q4', q: Quantized, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let e = 0; e < n; e++) {
    const g = Math.floor(e / q.groupSize);
    const s = f16ToF32((q.scales[g >> 1] >>> ((g & 1) * 16)) & 0xffff);
    if (format === 'q8') {
      const b = (q.data[e >> 2] >>> ((e & 3) * 8)) & 0xff;
      out[e] = (b >= 128 ? b - 256 : b) * s;
    } else {
      out[e] = (((q.data[e >> 3] >>> ((e & 7) * 4)) & 0xf) - 8) * s;
    }
  }
  return out;
}

/** What `format` stores for `src`, as f32: the value the kernels actually see. */
export function roundTrip(format: WeightFormat, src: Float32Array, cols: number, groupSize: number): Float32Array {
  switch (format) {
    case 'f32':
      return src.slice();
    case 'f16':
      return unpackF16(packF16(src), src.length);
    case 'q8':
      return dequantize('q8', quantizeQ8(src, cols, groupSize), src.length);
    case 'q4':
      return dequantize('q4', quantizeQ4(src, cols, groupSize), src.length);
  }
}
