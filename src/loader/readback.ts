/**
 * GPU -> CPU readback of a loaded GpuWeight (tests, debugging): the raw
 * packed words of each part, or the values the kernels see, as f32.
 */
import { readBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { GpuWeight } from './formats.ts';
import { packedBytes, scaleBytes } from './formats.ts';
import { dequantize, unpackF16 } from './quant.ts';

/** Packed data and scales of every part, concatenated per part in row order. */
export async function readWeightRaw(ctx: GpuContext, w: GpuWeight): Promise<{ data: Uint32Array; scales?: Uint32Array }[]> {
  const cols = w.shape.length === 1 ? 1 : w.shape[1];
  const out = [];
  for (const p of w.parts) {
    const n = p.rows * cols;
    const data = new Uint32Array(await readBuffer(ctx, p.data, packedBytes(w.format, n)));
    const scales = p.scales ? new Uint32Array(await readBuffer(ctx, p.scales, scaleBytes(w.format, n, w.groupSize))) : undefined;
    out.push({ data, scales });
  }
  return out;
}

/** The weight as the kernels see it, f32 [rows * cols]. */
export async function readWeightF32(ctx: GpuContext, w: GpuWeight): Promise<Float32Array> {
  const cols = w.shape.length === 1 ? 1 : w.shape[1];
  const out = new Float32Array(w.shape[0] * cols);
  const raw = await readWeightRaw(ctx, w);
  w.parts.forEach((p, k) => {
    const n = p.rows * cols;
    const { data, scales } = raw[k];
    let v: Float32Array;
    switch (w.format) {
      case 'f32':
        v = new Float32Array(data.buffer, 0, n);
        break;
      case 'f16':
        v = unpackF16(data, n);
        break;
      case 'q8':
      case 'q4':
        v = dequantize(w.format, { data, scales: scales!, groupSize: w.groupSize }, n);
        break;
    }
    out.set(v, p.rowStart * cols);
  });
  return out;
}
