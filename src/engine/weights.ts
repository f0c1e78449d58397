/**
 * Building GpuWeights from f32 arrays on the CPU: packing into a format and
 * splitting by rows. Used for synthetic models (tests, benchmarks); checkpoints
 * go through src/loader.
 */
import type { GpuContext } from '../gpu/device.ts';
import { releaseBuffer, uploadBuffer } from '../gpu/buffers.ts';
import type { GpuWeight, WeightFormat } from '../loader/formats.ts';
import { packF16, quantizeQ4, quantizeQ8 } from '../loader/quant.ts';

export interface UploadOptions {
  format?: WeightFormat;
  groupSize?: number;
  /** Rows per part (default: all rows in one part). */
  partRows?: number;
}

/** Uploads `data` ([rows, cols] or a vector) as a GpuWeight; vectors are always f32. */
export function uploadWeight(ctx: GpuContext, name: string, data: Float32Array, shape: number[], opts: UploadOptions = {}): GpuWeight {
  const isMatrix = shape.length === 2;
  const format: WeightFormat = isMatrix ? (opts.format ?? 'f32') : 'f32';
  const rows = isMatrix ? shape[0] : 1;
  const cols = isMatrix ? shape[1] : shape[0];
  const groupSize = format === 'q8' || format === 'q4' ? (opts.groupSize ?? Math.min(cols, 32)) : 0;
  const partRows = isMatrix ? Math.max(1, opts.partRows ?? rows) : 1;
  const w: GpuWeight = { name, format, shape, groupSize, parts: [] };
  try {
    for (let r0 = 0; r0 < rows; r0 += partRows) {
      const n = Math.min(partRows, rows - r0);
      const slice = data.subarray(r0 * cols, (r0 + n) * cols);
      const label = `${name}[${r0}:${r0 + n}]`;
      if (format === 'f32') w.parts.push({ rowStart: r0, rows: n, data: uploadBuffer(ctx, slice, label) });
      else if (format === 'f16') w.parts.push({ rowStart: r0, rows: n, data: uploadBuffer(ctx, packF16(slice), label) });
      else {
        const qz = format === 'q8' ? quantizeQ8(slice, cols, groupSize) : quantizeQ4(slice, cols, groupSize);
        w.parts.push({ rowStart: r0, rows: n, data: uploadBuffer(ctx, qz.data, label), scales: uploadBuffer(ctx, qz.scales, `${label}.scales`) });
      }
    }
  } catch (e) {
    releaseWeight(ctx, w);
    throw e;
  }
  return w;
}

export function releaseWeight(ctx: GpuContext, w: GpuWeight): void {
  for (const p of w.parts) { releaseBuffer(ctx, p.data); releaseBuffer(ctx, p.scales); }
  w.parts = [];
}
