/**
 * Fast paths of quant.ts's quantizeQ8 / quantizeQ4 for the loader's hot loop:
 * the same arithmetic (same scale rounding, same Math.round of x / scale), so
 * the output is bit-identical to the reference (the loader tests compare
 * them), but words are assembled in locals and f16 scales decoded by table.
 * Falls back to the reference when a group does not start on a word.
 * Math.round is avoided: on V8 it is several times slower than Math.floor.
 */
import { f16ToF32, f32ToF16, quantizeQ4, quantizeQ8, type Quantized } from './quant.ts';

let lut: Float32Array | undefined;
function half(h: number): number {
  if (!lut) {
    lut = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) lut[i] = f16ToF32(i);
  }
  return lut[h];
}

/** Math.round(y) (ties toward +inf), exactly: floor(y + 0.5), corrected where y + 0.5 itself rounded up. */
function roundHalfUp(y: number): number {
  const r = Math.floor(y + 0.5);
  return r - y > 0.5 ? r - 1 : r;
}

export function fastQuantizeQ8(src: Float32Array, cols: number, groupSize: number): Quantized {
  if (groupSize % 4 !== 0 || cols % groupSize !== 0 || src.length % cols !== 0) return quantizeQ8(src, cols, groupSize);
  const nGroups = src.length / groupSize;
  const data = new Uint32Array(src.length / 4);
  const scales = new Uint32Array(Math.ceil(nGroups / 2));
  for (let g = 0; g < nGroups; g++) {
    const base = g * groupSize;
    let amax = 0;
    for (let i = 0; i < groupSize; i++) {
      const a = Math.abs(src[base + i]);
      if (a > amax) amax = a;
    }
    const sh = f32ToF16(amax / 127);
    const s = half(sh);
    scales[g >> 1] |= sh << ((g & 1) * 16);
    for (let i = 0; i < groupSize; i += 4) {
      let w = 0;
      for (let k = 0; k < 4; k++) {
        let q = s > 0 ? roundHalfUp(src[base + i + k] / s) : 0;
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        w |= (q & 0xff) << (k * 8);
      }
      data[(base + i) >> 2] = w;
    }
  }
  return { data, scales, groupSize };
}

export function fastQuantizeQ4(src: Float32Array, cols: number, groupSize: number): Quantized {
  if (groupSize % 8 !== 0 || cols % groupSize !== 0 || src.length % cols !== 0) return quantizeQ4(src, cols, groupSize);
  const nGroups = src.length / groupSize;
  const data = new Uint32Array(src.length / 8);
  const scales = new Uint32Array(Math.ceil(nGroups / 2));
  for (let g = 0; g < nGroups; g++) {
    const base = g * groupSize;
    let amax = 0,
      vmax = 0;
    for (let i = 0; i < groupSize; i++) {
      const v = src[base + i];
      const a = Math.abs(v);
      if (a > amax) {
        amax = a;
        vmax = v;
      }
    }
    const sh = f32ToF16(-vmax / 8);
    const s = half(sh);
    scales[g >> 1] |= sh << ((g & 1) * 16);
    for (let i = 0; i < groupSize; i += 8) {
      let w = 0;
      for (let k = 0; k < 8; k++) {
        let q = s !== 0 ? roundHalfUp(src[base + i + k] / s) + 8 : 8;
        q = q > 15 ? 15 : q < 0 ? 0 : q;
        w |= q << (k * 4);
      }
      data[(base + i) >> 3] = w >>> 0;
    }
  }
  return { data, scales, groupSize };
}
