/**
 * Reading weights back for comparison: a loaded GpuWeight from the GPU (its
 * raw packed words, or the values the kernels see, as f32), and checkpoint
 * tensors or canonical recipes from the files, as f32.
 */
import type { TensorRecipe } from '../../models/index.ts';
import { readBuffer } from '../../src/gpu/buffers.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { packedBytes, scaleBytes, type GpuWeight } from '../../src/gpu/formats.ts';
import type { FileSource, TensorEntry } from '../../src/loader/source.ts';
import { convertRows, fetchRows } from '../../src/loader/weights.ts';
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

/** A canonical tensor (after QKV unpacking / gate-up concatenation) as f32, converted as the loader converts it. */
export async function readRecipeF32(source: FileSource, recipe: TensorRecipe): Promise<Float32Array> {
  const cols = recipe.shape.length === 1 ? 1 : recipe.shape[1];
  const out = new Float32Array(recipe.shape[0] * cols);
  convertRows(await fetchRows(source, recipe, cols, 0, recipe.shape[0]), out, () => undefined);
  return out;
}

/** One checkpoint tensor as f32 (any rank: rows of its first dimension). */
export function readTensorF32(source: FileSource, entry: TensorEntry): Promise<Float32Array> {
  const rows = entry.shape[0] ?? 1;
  const cols = entry.shape.slice(1).reduce((a, b) => a * b, 1);
  return readRecipeF32(source, { name: 'embed', shape: [rows, cols], segments: [{ entry, rowStart: 0, rows }] });
}
