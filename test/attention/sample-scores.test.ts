/**
 * SampleAttention's sampling phase (issue 6): the GEMM-shaped kernels
 * (kernels/sample_scores.wgsl) against an f64 CPU reference: row stats (lse,
 * window mass), per-head column scores and the KV group sums. Shapes cover
 * GQA 1/2/4/8, chunks at pos > 0, nSamp * group not a multiple of the tile,
 * every sampled (nSamp = rows), one-row chunks, headDim 64 / 80 / 37, an f16
 * cache, double-buffered and single-buffered chunks, forced tiles (8-wide
 * register blocks, the warp thread mapping), the row-stats kernel's key split
 * (partials + combine, incl. splits with no key below some rows) and column
 * tiles whose (head, row) stream straddles 2..8 heads.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uniformBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import { sparsePlan, type SparsePlan } from '../../src/attention/options.ts';
import { syntheticQkv } from '../../bench/synthetic/qkv.ts';
import { DEFAULT_ATTENTION, type KvDtype } from '../../src/engine/types.ts';
import { paramsWords } from '../../kernels/attention_prefill.ts';
import { SampleScores, samplingRef, scorePlan, scoreSource, rowSplits, type ScoreTile } from '../../kernels/sample_scores.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import { asStored, uploadKv } from '../cases/attention.ts';

interface Shape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  rows: number;
  pos: number;
  kvDtype?: KvDtype;
  windowRatio?: number;
  minSampleRows?: number;
  sampleRatio?: number;
}

interface Outputs {
  rowStats: Float32Array;
  colScores: Float32Array;
  groupScores: Float32Array;
}

function inputs(s: Shape) {
  const seqLen = s.pos + s.rows;
  const qkv = syntheticQkv({ seqLen, nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim: s.headDim, kind: 'planted', seed: 3 });
  const plan = sparsePlan(s.pos, s.rows, {
    ...DEFAULT_ATTENTION,
    windowRatio: s.windowRatio ?? 0.1,
    minSampleRows: s.minSampleRows ?? 50,
    sampleRatio: s.sampleRatio ?? 0.05,
  });
  return { seqLen, qkv, plan };
}

/** 'BSxBTxRXxRYxDK' as a tile. */
function tile(t: string): ScoreTile {
  const [bs, bt, rx, ry, dk] = t.split('x').map(Number);
  return { bs, bt, rx, ry, dk };
}

/**
 * Runs the sampling phase on the chunk (the default tiles of this adapter, or forced ones;
 * split: the row-stats kernel's key splits); outputs trimmed to nSamp rows / nCols columns.
 */
async function runSampling(
  ctx: GpuContext,
  s: Shape,
  which: { tiles?: { rows?: string; cols?: string }; split?: number } = {},
  data = inputs(s),
): Promise<Outputs> {
  const { seqLen, qkv, plan } = data;
  const capacity = seqLen + 3; // a cache larger than the sequence
  const dtype = s.kvDtype ?? 'f32';
  const dims = { nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim: s.headDim, kvDtype: dtype, capacity };
  const t = which.tiles ?? {};
  const scores = await SampleScores.create(ctx, dims, {
    rows: t.rows ? tile(t.rows) : undefined,
    cols: t.cols ? tile(t.cols) : undefined,
    split: which.split ?? 1,
  });
  const kernels = {
    encodeSampling: (pass: GPUComputePassEncoder, b: Parameters<SampleScores['encode']>[1], nSamp: number, nCols: number) => {
      scores.encode(pass, b, nSamp, nCols, seqLen);
      if (which.split) expect(scores.lastSplit).toBe(which.split);
    },
    destroy: () => scores.destroy(),
  };
  const rowW = s.nHeads * s.headDim;
  const bufs: GPUBuffer[] = [];
  try {
    const q = uploadBuffer(ctx, qkv.q.subarray(s.pos * rowW, seqLen * rowW), 'q'); // (rows, nHeads * headDim)
    const k = uploadKv(ctx, qkv.k, s.nKvHeads, seqLen, s.headDim, capacity, dtype, 'k'); // (nKvHeads, capacity, headDim)
    const rowStats = createBuffer(ctx, s.nHeads * plan.nSamp * 8, STORAGE.rw, 'rowStats'); // (nHeads, nSamp, 2)
    const colScores = createBuffer(ctx, s.nHeads * capacity * 4, STORAGE.rw, 'colScores'); // (nHeads, capacity)
    const groupScores = createBuffer(ctx, s.nKvHeads * capacity * 4, STORAGE.rw, 'groupScores'); // (nKvHeads, capacity)
    const words = paramsWords({
      rows: s.rows,
      pos: s.pos,
      nHeads: s.nHeads,
      nKvHeads: s.nKvHeads,
      capacity,
      window: plan.window,
      nSamp: plan.nSamp,
      sampBlock: plan.sampBlock,
      nBlocks: plan.nBlocks,
      nCols: plan.nCols,
      statsOffset: 0,
      scale: Math.LOG2E / Math.sqrt(s.headDim),
      alpha: 0.95,
    });
    const params = uniformBuffer(ctx, new Uint32Array(words), 'params');
    bufs.push(q, k, rowStats, colScores, groupScores, params);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    kernels.encodeSampling(pass, { q, k, rowStats, colScores, groupScores, params: { buffer: params } }, plan.nSamp, plan.nCols);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    const cols = async (b: GPUBuffer, n: number) => {
      const all = await readF32(ctx, b, n * capacity);
      const out = new Float32Array(n * plan.nCols);
      for (let h = 0; h < n; h++) out.set(all.subarray(h * capacity, h * capacity + plan.nCols), h * plan.nCols);
      return out;
    };
    return {
      rowStats: await readF32(ctx, rowStats, s.nHeads * plan.nSamp * 2),
      colScores: await cols(colScores, s.nHeads),
      groupScores: await cols(groupScores, s.nKvHeads),
    };
  } finally {
    for (const b of bufs) releaseBuffer(ctx, b);
    kernels.destroy();
  }
}

function reference(s: Shape, data: ReturnType<typeof inputs>) {
  const { seqLen, qkv } = data;
  const rowW = s.nHeads * s.headDim;
  return samplingRef(
    qkv.q.subarray(s.pos * rowW, seqLen * rowW),
    asStored(qkv.k, s.kvDtype ?? 'f32'),
    { nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim: s.headDim, seqLen, rows: s.rows, pos: s.pos },
    data.plan,
  );
}

/** lse and window mass compared separately (different scales). */
function split(rs: ArrayLike<number>): [number[], number[]] {
  const lse: number[] = [],
    win: number[] = [];
  for (let i = 0; i < rs.length; i += 2) {
    lse.push(rs[i]);
    win.push(rs[i + 1]);
  }
  return [lse, win];
}

function expectClose(got: Outputs, want: Outputs | ReturnType<typeof reference>, what: string, rtol: number) {
  const [gl, gw] = split(got.rowStats);
  const [wl, ww] = split(want.rowStats);
  assertClose(gl, wl, `${what} lse`, rtol, 0);
  assertClose(gw, ww, `${what} window mass`, rtol, 1e-6);
  assertClose(got.colScores, want.colScores, `${what} colScores`, rtol, 1e-6);
  assertClose(got.groupScores, want.groupScores, `${what} groupScores`, rtol, 1e-6);
}

function describePlan(p: SparsePlan) {
  return `nSamp ${p.nSamp} nCols ${p.nCols} w ${p.window}`;
}

describe('SampleAttention sampling kernels (Dawn)', () => {
  const SHAPES: [string, Shape][] = [
    [
      'GQA 4, D 80 (double-buffered chunks), f16 cache, chunk at pos > 0',
      { nHeads: 8, nKvHeads: 2, headDim: 80, rows: 130, pos: 170, kvDtype: 'f16', windowRatio: 0.08 },
    ],
    ['MHA, D 37 (scalar loads, odd chunk count), every row sampled', { nHeads: 2, nKvHeads: 2, headDim: 37, rows: 90, pos: 0, minSampleRows: 200 }],
    ['GQA 8, D 64, one-row chunk at pos > 0', { nHeads: 8, nKvHeads: 1, headDim: 64, rows: 1, pos: 200, minSampleRows: 1 }],
    ['GQA 2, D 64, 4-row blocks over 300 rows, nSamp * group % 16 != 0', { nHeads: 4, nKvHeads: 2, headDim: 64, rows: 300, pos: 0 }],
  ];
  for (const [name, s] of SHAPES) {
    it(`default tiles = f64 reference: ${name}`, async () => {
      const ctx = await testGpu();
      const before = liveBytes(ctx);
      const data = inputs(s);
      console.log(`${name}: ${describePlan(data.plan)}`);
      expectClose(await runSampling(ctx, s, {}, data), reference(s, data), 'default tiles vs f64', 2e-5);
      expect(liveBytes(ctx)).toBe(before);
    });
  }

  // Forced splits (16-key tiles): 7 splits leave the lightest row blocks' last splits without
  // keys ((max, sum) = (-inf, 0) partials).
  const SPLITS: [string, Shape, number][] = [
    ['GQA 4, D 80, f16 cache, chunk at pos > 0, 7 splits', SHAPES[0][1], 7],
    ['GQA 2, D 37 (scalar loads), chunk at pos > 0, 3 splits', { nHeads: 4, nKvHeads: 2, headDim: 37, rows: 120, pos: 150 }, 3],
  ];
  for (const [name, s, split] of SPLITS) {
    it(`split row stats = f64 reference: ${name}`, async () => {
      const ctx = await testGpu();
      const before = liveBytes(ctx);
      const data = inputs(s);
      console.log(`${name}: ${describePlan(data.plan)}`);
      expectClose(await runSampling(ctx, s, { split }, data), reference(s, data), `split ${split} vs f64`, 2e-5);
      expect(liveBytes(ctx)).toBe(before);
    });
  }

  // 8-wide register blocks on either side (the GPU default has 8 x 8), one vec4 per chunk and the
  // warp thread mapping (cols: 16 x 4 threads) at D 37, 4 heads per KV group. The GPU default tile
  // itself (128 x 128 x 8 x 8 x 16) takes ~27 s to compile on SwiftShader; bench/sampling --check
  // compares it on the GPU.
  it('forced tiles rows 32x64x8x4x4, cols 64x32x4x8x4 = f64 reference: GQA 4, D 37, pos > 0, 2 splits', async () => {
    const ctx = await testGpu();
    const s: Shape = { nHeads: 8, nKvHeads: 2, headDim: 37, rows: 120, pos: 150 };
    const data = inputs(s);
    const got = await runSampling(ctx, s, { tiles: { rows: '32x64x8x4x4', cols: '64x32x4x8x4' }, split: 2 }, data);
    expectClose(got, reference(s, data), 'forced tiles vs f64', 2e-5);
  });

  it('auto split: only when few workgroups, at least 4 K tiles per split', () => {
    expect(rowSplits(820, 32768, 128)).toBe(1); // 32K unchunked: enough row blocks
    expect(rowSplits(104, 4096, 128)).toBe(5); // first 4096-row chunk: 512 target / 104, 8 tiles per split
    expect(rowSplits(104, 32768, 128)).toBe(5);
    expect(rowSplits(104, 32768, 128, 0, 1024)).toBe(10);
    expect(rowSplits(8, 256, 128)).toBe(1); // too few keys to split
    expect(rowSplits(104, 4096, 128, 1)).toBe(1); // off
    expect(rowSplits(104, 300, 128, 9)).toBe(3); // forced, capped at one tile per split
  });

  it('tile plans: subgroup-free source, defaults fit the device, bad overrides are typed errors', async () => {
    const ctx = await testGpu();
    const dims = { nHeads: 32, nKvHeads: 8, headDim: 256, kvDtype: 'f32' as const, capacity: 1024 };
    for (const kind of ['rows', 'cols'] as const) {
      const plan = scorePlan(ctx, 256, kind);
      expect(plan.smemBytes).toBeLessThanOrEqual(ctx.limits.maxComputeWorkgroupStorageSize);
      expect(plan.nt).toBeGreaterThanOrEqual(Math.max(plan.bs, plan.bt));
      expect(scoreSource(dims, kind, plan)).not.toMatch(/enable subgroups|subgroup[A-Z]/);
    }
    expect(scorePlan(ctx, 80, 'rows').db).toBe(true); // 10 chunks of 8 dims
    expect(scorePlan(ctx, 40, 'rows').db).toBe(false); // 5 chunks
    expect(() => scorePlan(ctx, 64, 'rows', { rx: 2 })).toThrow(InvalidOptionError);
    expect(() => scorePlan(ctx, 64, 'cols', { bs: 64, bt: 16, rx: 8, ry: 4 })).toThrow(/cover/);
    expect(() => scorePlan(ctx, 64, 'cols', { dk: 6 })).toThrow(/dk/);
  });
});
