/**
 * HeadStats.columnBins (issue 8's heatmap): the per-KV-group histogram of the
 * selected column ids over COLUMN_BINS bins of [0, seqLen), recorded on the GPU
 * (kernels/sample_bins.wgsl) only after PrefillAttention.reportColumns(seqLen).
 * Also (issue 16, here because this file's shape has its pipelines compiled by then):
 * attentionPipelineSpecs lists every attention pipeline, so after compiling them no
 * prefill length, position, option or decode step creates a shader module or pipeline.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { uploadKv } from '../cases/attention.ts';
import { attentionPipelineSpecs, PrefillAttention } from '../../src/attention/index.ts';
import { DecodeAttention } from '../../kernels/attention_decode.ts';
import { StepUniform } from '../../kernels/prepared.ts';
import { getPipeline } from '../../src/gpu/pipelines.ts';
import { syntheticQkv } from '../../bench/synthetic/qkv.ts';
import { COLUMN_BINS, DEFAULT_ATTENTION, type AttentionOptions, type HeadStats } from '../../src/engine/types.ts';
import { createBuffer, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { InvalidOptionError } from '../../src/errors.ts';

const D = 32;
const OPTS = { ...DEFAULT_ATTENTION, attention: 'sample' as const, minSparseLen: 0, alpha: 0.95 };

/** Prefill of `seqLen` planted rows in chunks of `chunk`, one submit per chunk; stats and last selection. */
async function run(ctx: GpuContext, seqLen: number, chunk: number, report: number | undefined, needle: number) {
  const nHeads = 4,
    nKvHeads = 2;
  const qkv = syntheticQkv({ seqLen, nHeads, nKvHeads, headDim: D, kind: 'planted', needle, needleRows: 32, seed: 5 });
  const attn = await PrefillAttention.create(ctx, { nHeads, nKvHeads, headDim: D, kvDtype: 'f32', capacity: seqLen, maxRows: chunk });
  const rowW = nHeads * D;
  const bufs: GPUBuffer[] = [];
  try {
    const k = uploadKv(ctx, qkv.k, nKvHeads, seqLen, D, seqLen, 'f32', 'k');
    const v = uploadKv(ctx, qkv.v, nKvHeads, seqLen, D, seqLen, 'f32', 'v');
    const out = createBuffer(ctx, chunk * rowW * 4, STORAGE.rw, 'out');
    bufs.push(k, v, out);
    attn.reportColumns(report);
    for (let pos = 0; pos < seqLen; pos += chunk) {
      const q = uploadBuffer(ctx, qkv.q.subarray(pos * rowW, (pos + chunk) * rowW), 'q');
      bufs.push(q);
      const enc = ctx.device.createCommandEncoder({ label: 'columns-test' });
      attn.encode(enc, { q, kv: { k, v }, out, pos, rows: chunk, layer: 3 }, OPTS);
      ctx.device.queue.submit([enc.finish()]);
    }
    const stats = await attn.readStats();
    const selection = await attn.readSelection();
    return { stats, selection };
  } finally {
    for (const b of bufs) releaseBuffer(ctx, b);
    attn.destroy();
  }
}

function histogram(ids: number[], seqLen: number): number[] {
  const h = new Array<number>(COLUMN_BINS).fill(0);
  for (const c of ids) h[Math.floor((c * COLUMN_BINS) / seqLen)]++;
  return h;
}

const sum = (b: Uint16Array) => b.reduce((s, x) => s + x, 0);

describe('SampleAttention column report (Dawn)', () => {
  it('one chunk, S = 1024: bins sum to |I|, equal the histogram of the selected ids, the needle lands in its bin', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const seqLen = 1024,
      needle = 333;
    const { stats, selection } = await run(ctx, seqLen, seqLen, seqLen, needle);
    expect(liveBytes(ctx)).toBe(before);
    expect(stats).toHaveLength(4);
    for (const h of stats) {
      expect(h.columnBins).toBeInstanceOf(Uint16Array);
      expect(h.columnBins!.length).toBe(COLUMN_BINS);
      expect(sum(h.columnBins!)).toBe(h.selected);
      const ids = selection[Math.floor(h.head / 2)];
      expect(ids.length).toBe(h.selected);
      expect(Array.from(h.columnBins!)).toEqual(histogram(ids, seqLen));
      // no bin holds more columns than it spans; nothing past the window edge
      expect(Math.max(...h.columnBins!)).toBeLessThanOrEqual(seqLen / COLUMN_BINS);
      const lastBin = Math.floor(((seqLen - h.window - 1) * COLUMN_BINS) / seqLen);
      expect(h.columnBins!.slice(lastBin + 1).every((x) => x === 0)).toBe(true);
    }
    // It is sparse, and the planted needle column was kept and counted in bin floor(333 * 256 / 1024) = 83.
    expect(stats[0].selected).toBeLessThan(0.5 * (seqLen - stats[0].window));
    expect(selection.every((ids) => ids.includes(needle))).toBe(true);
    for (const h of stats) expect(h.columnBins![83]).toBeGreaterThanOrEqual(1);
  });

  it('chunked prefill (2 x 512 rows): each chunk record bins over the final length', async () => {
    const ctx = await testGpu();
    const seqLen = 1024;
    const { stats, selection } = await run(ctx, seqLen, 512, seqLen, 200);
    expect(stats).toHaveLength(8);
    const first = stats.slice(0, 4),
      second = stats.slice(4);
    for (const h of stats) expect(sum(h.columnBins!)).toBe(h.selected);
    // chunk 1 saw keys [0, 512) only: its bins past 128 are empty
    for (const h of first) {
      expect(h.selected).toBeGreaterThan(0);
      expect(h.columnBins!.slice(128).every((x) => x === 0)).toBe(true);
    }
    for (const h of second) expect(Array.from(h.columnBins!)).toEqual(histogram(selection[Math.floor(h.head / 2)], seqLen));
  });

  it('records nothing without reportColumns (and after turning it off)', async () => {
    const ctx = await testGpu();
    const off = await run(ctx, 512, 512, undefined, 100);
    expect(off.stats.length).toBe(4);
    expect(off.stats.every((h: HeadStats) => h.columnBins === undefined && h.selected > 0)).toBe(true);
    const zero = await run(ctx, 512, 512, 0, 100);
    expect(zero.stats.every((h) => h.columnBins === undefined)).toBe(true);
    const attn = await PrefillAttention.create(ctx, { nHeads: 2, nKvHeads: 1, headDim: D, kvDtype: 'f32', capacity: 64, maxRows: 64 });
    try {
      expect(() => attn.reportColumns(-3)).toThrow(InvalidOptionError);
      expect(() => attn.reportColumns(2.5)).toThrow(/reportColumns/);
    } finally {
      attn.destroy();
    }
  });

  it('attentionPipelineSpecs: after compiling them, prefill at any length / option and decode at any position create no module or pipeline', async () => {
    const ctx = await testGpu();
    const nHeads = 4,
      nKvHeads = 2,
      capacity = 160;
    await Promise.all(attentionPipelineSpecs(ctx, { nHeads, nKvHeads, headDim: D, kvDtype: 'f32' }).map((s) => getPipeline(ctx, s)));
    // Count what the device is asked to create from here on.
    const dev = ctx.device;
    const counts = { modules: 0, pipelines: 0 };
    const orig = { m: dev.createShaderModule, p: dev.createComputePipeline, pa: dev.createComputePipelineAsync };
    dev.createShaderModule = (d) => {
      counts.modules++;
      return orig.m.call(dev, d);
    };
    dev.createComputePipeline = (d) => {
      counts.pipelines++;
      return orig.p.call(dev, d);
    };
    dev.createComputePipelineAsync = (d) => {
      counts.pipelines++;
      return orig.pa.call(dev, d);
    };
    const bufs: GPUBuffer[] = [];
    let prefill: PrefillAttention | undefined, decode: DecodeAttention | undefined, step: StepUniform | undefined;
    try {
      prefill = await PrefillAttention.create(ctx, { nHeads, nKvHeads, headDim: D, kvDtype: 'f32', capacity, maxRows: 80 });
      decode = await DecodeAttention.create(ctx, { nHeads, nKvHeads, headDim: D, kvDtype: 'f32', capacity, maxRows: 1 });
      step = new StepUniform(ctx);
      const qkv = syntheticQkv({ seqLen: capacity, nHeads, nKvHeads, headDim: D, kind: 'planted', seed: 9 });
      const k = uploadKv(ctx, qkv.k, nKvHeads, capacity, D, capacity, 'f32', 'k');
      const v = uploadKv(ctx, qkv.v, nKvHeads, capacity, D, capacity, 'f32', 'v');
      const q = uploadBuffer(ctx, qkv.q.subarray(0, 80 * nHeads * D), 'q');
      const out = createBuffer(ctx, 80 * nHeads * D * 4, STORAGE.rw, 'out');
      bufs.push(k, v, q, out);
      prefill.reportColumns(capacity);
      // Dense at new lengths, appended chunks, sparse under every selection rule, the dense fallback.
      const runs: [number, number, Partial<AttentionOptions>][] = [
        [0, 1, { attention: 'dense' }],
        [1, 2, { attention: 'dense' }],
        [3, 7, { attention: 'dense' }],
        [10, 13, { attention: 'dense' }],
        [0, 80, {}],
        [80, 79, { selection: 'group' }],
        [0, 65, { selection: 'topup' }],
        [0, 66, { selection: 'head' }],
        [0, 80, { denseFallbackArea: 0.05 }],
        [80, 1, { selection: 'auto', topupBelow: 0 }],
      ];
      for (const [pos, rows, o] of runs) {
        const enc = ctx.device.createCommandEncoder();
        prefill.encode(enc, { q, kv: { k, v }, out, pos, rows, layer: 0 }, { ...OPTS, ...o });
        ctx.device.queue.submit([enc.finish()]);
      }
      expect((await prefill.readStats()).length).toBeGreaterThan(0);
      for (const pos of [0, 1, 63, 64, 159]) {
        step.set(pos, 1);
        decode.setStep(pos, 1);
        const d = decode.prepare({ q, kv: { k, v }, out, step: step.buffer });
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        d.encode(pass);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
        d.destroy();
      }
      await ctx.device.queue.onSubmittedWorkDone();
      expect(counts).toEqual({ modules: 0, pipelines: 0 });
      // The counters see a pipeline that is not in the cache.
      await getPipeline(ctx, { label: 'count_check', code: '@compute @workgroup_size(1) fn main() {}' });
      expect(counts).toEqual({ modules: 1, pipelines: 1 });
    } finally {
      Object.assign(dev, { createShaderModule: orig.m, createComputePipeline: orig.p, createComputePipelineAsync: orig.pa });
      for (const b of bufs) releaseBuffer(ctx, b);
      prefill?.destroy();
      decode?.destroy();
      step?.destroy();
    }
  });
});
