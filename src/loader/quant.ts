/**
 * CPU conversion and quantization into the GPU weight formats of formats.ts
 * (dequantization, the kernels' test reference, is test/helpers/quant.ts).
 * Works on row-major [rows, cols] f32 data; groups run along cols.
 */

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** f32 -> IEEE half bits, round to nearest even; overflow -> +-inf. */
export function f32ToF16(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** IEEE half bits -> f32 value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bf16 bits -> f32 value. */
export function bf16ToF32(b: number): number {
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0];
}

export interface Quantized {
  data: Uint32Array;
  /** f16 scales packed in pairs, one per group. */
  scales: Uint32Array;
  groupSize: number;
}

/**
 * Symmetric int8 per group: scale = max|x| / 127 (rounded to f16), q = round(x / scale).
 * `cols` must be a multiple of groupSize.
 */
export function quantizeQ8(src: Float32Array, cols: number, groupSize: number): Quantized {
  checkGroups(src.length, cols, groupSize);
  const nGroups = src.length / groupSize;
  const data = new Uint32Array(Math.ceil(src.length / 4));
  const scales = new Uint32Array(Math.ceil(nGroups / 2));
  for (let g = 0; g < nGroups; g++) {
    let amax = 0;
    for (let i = 0; i < groupSize; i++) amax = Math.max(amax, Math.abs(src[g * groupSize + i]));
    const sh = f32ToF16(amax / 127);
    const s = f16ToF32(sh);
    scales[g >> 1] |= sh << ((g & 1) * 16);
    for (let i = 0; i < groupSize; i++) {
      const e = g * groupSize + i;
      const q = s > 0 ? Math.max(-127, Math.min(127, Math.round(src[e] / s))) : 0;
      data[e >> 2] |= (q & 0xff) << ((e & 3) * 8);
    }
  }
  return { data, scales, groupSize };
}

/**
 * int4 per group with offset 8: scale = max|x| / 7 (f16, sign chosen so the
 * largest-magnitude value maps to -8 when that is more precise), q = clamp(round(x / scale) + 8, 0, 15).
 */
export function quantizeQ4(src: Float32Array, cols: number, groupSize: number): Quantized {
  checkGroups(src.length, cols, groupSize);
  const nGroups = src.length / groupSize;
  const data = new Uint32Array(Math.ceil(src.length / 8));
  const scales = new Uint32Array(Math.ceil(nGroups / 2));
  for (let g = 0; g < nGroups; g++) {
    let amax = 0,
      vmax = 0;
    for (let i = 0; i < groupSize; i++) {
      const v = src[g * groupSize + i];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        vmax = v;
      }
    }
    // Map the extreme value to -8 (the wider side of [-8, 7]).
    const sh = f32ToF16(-vmax / 8);
    const s = f16ToF32(sh);
    scales[g >> 1] |= sh << ((g & 1) * 16);
    for (let i = 0; i < groupSize; i++) {
      const e = g * groupSize + i;
      const q = s !== 0 ? Math.max(0, Math.min(15, Math.round(src[e] / s) + 8)) : 8;
      data[e >> 3] |= q << ((e & 7) * 4);
    }
  }
  return { data, scales, groupSize };
}

function checkGroups(n: number, cols: number, groupSize: number): void {
  if (groupSize <= 0 || cols % groupSize !== 0 || n % cols !== 0) {
    throw new RangeError(`quantization group ${groupSize} must divide the row length ${cols} (n=${n})`);
  }
}
