/**
 * Synthetic models for benchmarks and tests: a ModelSpec from a few numbers
 * and random weights made on the GPU (a seeded CPU block of at most 1 MiB per
 * row length is uploaded once and replicated by GPU copies, so a
 * 7B model is never held in JS memory nor stored anywhere).
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, uploadBuffer, writeBuffer } from '../../src/gpu/buffers.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { packedBytes, scaleBytes, type GpuWeight, type WeightFormat } from '../../src/loader/formats.ts';
import { quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { packF16 } from '../../test/helpers/quant.ts';
import { Rng } from '../../src/util/rng.ts';
import { releaseWeight } from '../../src/engine/weights.ts';

export interface SyntheticShape {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim?: number;
  ffnDim: number;
  vocabSize: number;
  contextLength?: number;
  family?: ModelSpec['family'];
}

/** Shapes of the published checkpoints (MODELS.md). */
export const SHAPES: Record<string, SyntheticShape> = {
  'internlm2-1.8b': { dim: 2048, nLayers: 24, nHeads: 16, nKvHeads: 8, ffnDim: 8192, vocabSize: 92544, contextLength: 32768 },
  'internlm2-7b': { dim: 4096, nLayers: 32, nHeads: 32, nKvHeads: 8, ffnDim: 14336, vocabSize: 92544, contextLength: 32768 },
  tiny: { dim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 256, vocabSize: 512, contextLength: 4096 },
};

export function syntheticSpec(s: SyntheticShape): ModelSpec {
  const headDim = s.headDim ?? s.dim / s.nHeads;
  const family = s.family ?? 'internlm2';
  return {
    family,
    modelType: family === 'internlm2' ? 'internlm2' : 'chatglm',
    dim: s.dim,
    nLayers: s.nLayers,
    nHeads: s.nHeads,
    nKvHeads: s.nKvHeads,
    headDim,
    ffnDim: s.ffnDim,
    vocabSize: s.vocabSize,
    normEps: 1e-5,
    qkvBias: family === 'chatglm2',
    rope:
      family === 'internlm2'
        ? { variant: 'neox', base: 1e6, rotaryDim: headDim, maxPositions: s.contextLength ?? 4096 }
        : { variant: 'interleaved-half', base: 10000, rotaryDim: headDim / 2, maxPositions: s.contextLength ?? 4096 },
    contextLength: s.contextLength ?? 4096,
    eosIds: [2],
    config: {},
  };
}

const BLOCK_BYTES = 1 << 20;

/**
 * A buffer of `bytes` filled by repeating `seed` (a GPU buffer holding one
 * block): GPU copies only, one command buffer per buffer filled.
 */
function replicated(ctx: GpuContext, bytes: number, seed: GPUBuffer, label: string): GPUBuffer {
  const buf = createBuffer(ctx, bytes, STORAGE.rw, label);
  const enc = ctx.device.createCommandEncoder({ label: `fill ${label}` });
  for (let at = 0; at < buf.size; at += seed.size) enc.copyBufferToBuffer(seed, 0, buf, at, Math.min(seed.size, buf.size - at));
  ctx.device.queue.submit([enc.finish()]);
  return buf;
}

/** Random weights for every canonical tensor of `spec`, matrices in `format`. */
export async function syntheticWeights(
  ctx: GpuContext,
  spec: ModelSpec,
  o: { format: WeightFormat; groupSize?: number; seed?: number },
): Promise<Map<string, GpuWeight>> {
  const rng = new Rng(o.seed ?? 1);
  const gs = o.format === 'q4' || o.format === 'q8' ? (o.groupSize ?? 32) : 0;
  const maxPart = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const blocks = new Map<number, { data: GPUBuffer; scales?: GPUBuffer }>();
  const seeds: GPUBuffer[] = [];
  const seed = (a: ArrayBufferView, label: string) => {
    const b = createBuffer(ctx, a.byteLength & ~3, STORAGE.rw, label);
    writeBuffer(ctx, b, 0, new Uint8Array(a.buffer, a.byteOffset, a.byteLength & ~3));
    seeds.push(b);
    return b;
  };
  // One block per row length: whole rows of uniform values with std 1/sqrt(cols).
  const blockFor = (cols: number) => {
    let b = blocks.get(cols);
    if (b) return b;
    const rows = Math.max(1, Math.floor(BLOCK_BYTES / 4 / cols));
    const vals = rng.fill(rows * cols, Math.sqrt(3 / cols));
    if (o.format === 'f32') b = { data: seed(vals, `seed${cols}`) };
    else if (o.format === 'f16') b = { data: seed(packF16(vals), `seed${cols}`) };
    else {
      const q = o.format === 'q8' ? quantizeQ8(vals, cols, gs) : quantizeQ4(vals, cols, gs);
      b = { data: seed(q.data, `seed${cols}`), scales: seed(q.scales, `seed${cols}.scales`) };
    }
    blocks.set(cols, b);
    return b;
  };
  const out = new Map<string, GpuWeight>();
  const matrix = (name: string, rows: number, cols: number) => {
    const rowBytes = packedBytes(o.format, cols);
    const perPart = Math.max(1, Math.floor(maxPart / rowBytes / 64) * 64) || rows;
    const w: GpuWeight = { name, format: o.format, shape: [rows, cols], groupSize: gs, parts: [] };
    out.set(name, w);
    const b = blockFor(cols);
    for (let r0 = 0; r0 < rows; r0 += perPart) {
      const n = Math.min(perPart, rows - r0);
      w.parts.push({
        rowStart: r0,
        rows: n,
        data: replicated(ctx, packedBytes(o.format, n * cols), b.data, `${name}[${r0}]`),
        scales: b.scales ? replicated(ctx, scaleBytes(o.format, n * cols, gs), b.scales, `${name}[${r0}].scales`) : undefined,
      });
    }
  };
  const ones = new Float32Array(spec.dim).fill(1);
  const vector = (name: string, n: number, v: Float32Array) => {
    const data = createBuffer(ctx, n * 4, STORAGE.rw, name);
    writeBuffer(ctx, data, 0, v.subarray(0, n));
    out.set(name, { name, format: 'f32', shape: [n], groupSize: 0, parts: [{ rowStart: 0, rows: 1, data }] });
  };
  try {
    const qkvRows = (spec.nHeads + 2 * spec.nKvHeads) * spec.headDim;
    matrix('embed', spec.vocabSize, spec.dim);
    for (let l = 0; l < spec.nLayers; l++) {
      const p = `layers.${l}.`;
      vector(p + 'attnNorm', spec.dim, ones);
      matrix(p + 'wqkv', qkvRows, spec.dim);
      if (spec.qkvBias) vector(p + 'bqkv', qkvRows, rng.fill(qkvRows, 0.1));
      matrix(p + 'wo', spec.dim, spec.nHeads * spec.headDim);
      vector(p + 'ffnNorm', spec.dim, ones);
      matrix(p + 'wGateUp', 2 * spec.ffnDim, spec.dim);
      matrix(p + 'wDown', spec.dim, spec.ffnDim);
    }
    vector('finalNorm', spec.dim, ones);
    matrix('lmHead', spec.vocabSize, spec.dim);
    await ctx.device.queue.onSubmittedWorkDone();
  } catch (e) {
    for (const w of out.values()) releaseWeight(ctx, w);
    throw e;
  } finally {
    for (const b of seeds) releaseBuffer(ctx, b);
  }
  return out;
}

/**
 * Building GpuWeights from f32 arrays on the CPU: packing into a format and
 * splitting by rows (kernel and engine tests; checkpoints go through src/loader).
 */
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
