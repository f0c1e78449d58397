import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16, quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { dequantize, packF16, unpackF16 } from '../helpers/quant.ts';
import { Rng } from '../../src/util/rng.ts';

describe('CPU quantization reference', () => {
  it('f16 conversion rounds to nearest and round-trips halves exactly', () => {
    for (let h = 0; h < 0x7c00; h += 7) expect(f32ToF16(f16ToF32(h))).toBe(h);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f16ToF32(f32ToF16(0.1))).toBeCloseTo(0.1, 3);
    const x = new Rng(1).fill(33);
    const y = unpackF16(packF16(x), 33);
    for (let i = 0; i < 33; i++) expect(Math.abs(y[i] - x[i])).toBeLessThan(1e-3);
  });
  it('q8 errors stay within half a step, q4 within one step (its range is asymmetric)', () => {
    const rng = new Rng(2);
    const x = rng.fillNormal(64 * 8);
    for (const [fmt, bound] of [
      ['q8', 0.51 / 127],
      ['q4', 1 / 8],
    ] as const) {
      const q = fmt === 'q8' ? quantizeQ8(x, 64, 32) : quantizeQ4(x, 64, 32);
      const d = dequantize(fmt, q, x.length);
      for (let g = 0; g < x.length / 32; g++) {
        let amax = 0;
        for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[g * 32 + i]));
        for (let i = 0; i < 32; i++) expect(Math.abs(d[g * 32 + i] - x[g * 32 + i])).toBeLessThanOrEqual(amax * (bound + 1e-3));
      }
    }
  });
});
