/**
 * SampleAttention's sparse pass (issue 6, speed work): the fused pass (stripes
 * j <= i - w, then the window (i - w, i], one online softmax) against the CPU
 * reference restricted to window ∪ selected, exactness at alpha = 1, forced tiles,
 * the per-KV-group dense fallback (denseFallbackArea; flagged groups run through
 * the indirect dense dispatch: none, some or all flagged) and per-head selection
 * (selection: 'head').
 * Head dim 32 keeps the SwiftShader pipelines small.
 */
import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { runPrefill } from '../cases/attention.ts';
import { attentionRef, type TileOverrides } from '../../kernels/attention_prefill.ts';
import { syntheticQkv, type SyntheticSpec } from '../../bench/synthetic/qkv.ts';
import { resolveAttentionOptions } from '../../src/attention/options.ts';
import { DEFAULT_ATTENTION, type AttentionOptions } from '../../src/engine/types.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import { relL2 } from '../helpers/compare.ts';

const D = 32;
const BASE: AttentionOptions = { ...DEFAULT_ATTENTION, attention: 'sample', minSparseLen: 0 };

interface Case {
  spec: SyntheticSpec;
  pos: number;
  qkv?: () => { q: Float32Array; k: Float32Array; v: Float32Array };
}

async function run(c: Case, opts: Partial<AttentionOptions>, tile?: TileOverrides) {
  const ctx = await testGpu();
  const qkv = c.qkv ? c.qkv() : syntheticQkv(c.spec);
  const { seqLen, nHeads, nKvHeads } = c.spec;
  const d = { nHeads, nKvHeads, headDim: D, seqLen, rows: seqLen - c.pos, pos: c.pos };
  const res = await runPrefill(ctx, qkv, d, { ...BASE, ...opts }, tile ? { tile } : {});
  return { qkv, d, res };
}

/**
 * CPU reference over window ∪ the selected columns of each KV group, or of each head when the
 * selection has one list per head (what the sparse pass must compute; a flagged unit lists every column).
 */
function restrictedRef(r: Awaited<ReturnType<typeof run>>): Float32Array {
  const { qkv, d, res } = r;
  const w = res.stats[0].window;
  const perUnit = d.nHeads / res.selection.length;
  const sets = res.selection.map((ids) => new Set(ids));
  return attentionRef(qkv.q.subarray(d.pos * d.nHeads * D), qkv.k, qkv.v, d, (h, i, j) => j > i - w || sets[Math.floor(h / perUnit)].has(j));
}

/** KV group 0 planted (stays sparse), group 1 random (flagged at denseFallbackArea 0.5): some groups fall back. */
function mixedQkv(seqLen: number, group: number) {
  const a = syntheticQkv({ seqLen, nHeads: group, nKvHeads: 1, headDim: D, kind: 'planted', seed: 31, needle: 150, stripes: 8 });
  const b = syntheticQkv({ seqLen, nHeads: group, nKvHeads: 1, headDim: D, kind: 'random', seed: 32 });
  const rowW = 2 * group * D;
  const q = new Float32Array(seqLen * rowW);
  for (let r = 0; r < seqLen; r++) {
    q.set(a.q.subarray(r * group * D, (r + 1) * group * D), r * rowW);
    q.set(b.q.subarray(r * group * D, (r + 1) * group * D), r * rowW + group * D);
  }
  const cat = (x: Float32Array, y: Float32Array) => {
    const z = new Float32Array(x.length + y.length);
    z.set(x);
    z.set(y, x.length);
    return z;
  };
  return { q, k: cat(a.k, b.k), v: cat(a.v, b.v) };
}
const MIXED: Case = { spec: { seqLen: 400, nHeads: 4, nKvHeads: 2, headDim: D, kind: 'random', seed: 0 }, pos: 0, qkv: () => mixedQkv(400, 2) };

function denseRef(r: Awaited<ReturnType<typeof run>>): Float32Array {
  return attentionRef(r.qkv.q.subarray(r.d.pos * r.d.nHeads * D), r.qkv.k, r.qkv.v, r.d);
}

// Random inputs at alpha 0.8 select many columns (many stripe tiles, ragged per-row bounds);
// fallback off so the pass stays sparse. GQA 4 and a pos > 0 chunk.
const RANDOM: Case = { spec: { seqLen: 333, nHeads: 8, nKvHeads: 2, headDim: D, kind: 'random', seed: 21 }, pos: 0 };
const CHUNK: Case = { spec: { seqLen: 420, nHeads: 4, nKvHeads: 2, headDim: D, kind: 'random', seed: 22 }, pos: 290 };
const PLANTED: Case = { spec: { seqLen: 700, nHeads: 4, nKvHeads: 2, headDim: D, kind: 'planted', seed: 23, needle: 201, stripes: 12 }, pos: 0 };
const SPARSE = { alpha: 0.8, denseFallbackArea: 1, windowRatio: 0.1 };

describe('SampleAttention sparse pass vs reference (Dawn)', () => {
  for (const [name, c, opts] of [
    ['random, GQA 4', RANDOM, SPARSE],
    ['random chunk at pos 290', CHUNK, SPARSE],
    ['planted with needle, alpha 0.95', PLANTED, { alpha: 0.95, denseFallbackArea: 1 }],
  ] as const) {
    it(`${name}: equals the window ∪ selected reference`, async () => {
      const fused = await run(c, opts);
      const nCols = c.spec.seqLen - fused.res.stats[0].window;
      const counts = fused.res.selection.map((ids) => ids.length);
      console.log(name, 'selected per group', counts, 'of', nCols, 'area', fused.res.stats[0].areaFraction.toFixed(3));
      // A real sparse case: something selected, not everything, not flagged dense.
      expect(counts.some((n) => n > 0)).toBe(true);
      expect(fused.res.stats.every((s) => s.areaFraction < 1)).toBe(true);
      expect(relL2(fused.res.out, restrictedRef(fused))).toBeLessThanOrEqual(1e-5);
    });
  }

  it('alpha = 1: windowRatio 1, or a small window with every stripe (no fallback), equals dense', async () => {
    for (const opts of [
      { alpha: 1, windowRatio: 1 },
      { alpha: 1, windowRatio: 1, denseFallbackArea: 1 },
      { alpha: 1, windowRatio: 0.1, denseFallbackArea: 1 },
    ]) {
      const r = await run(RANDOM, opts);
      expect(relL2(r.res.out, denseRef(r)), JSON.stringify(opts)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('a forced tile with 2 rows per thread (as in the wide default tile) gives the same result', async () => {
    const tile = { qr: 64, tpr: 4, bc: 16, rpt: 2 };
    const r = await run(RANDOM, SPARSE, tile);
    expect(relL2(r.res.out, restrictedRef(r))).toBeLessThanOrEqual(1e-5);
  });
});

describe('SampleAttention dense fallback per KV group (Dawn)', () => {
  it('random inputs, denseFallbackArea 0.5: every group runs dense and reports area 1, all columns, CRA 1', async () => {
    const r = await run(RANDOM, { alpha: 0.95, denseFallbackArea: 0.5 });
    const nCols = RANDOM.spec.seqLen - r.res.stats[0].window;
    expect(relL2(r.res.out, denseRef(r))).toBeLessThanOrEqual(1e-5);
    for (const s of r.res.stats) {
      expect(s.areaFraction).toBe(1);
      expect(s.selected).toBe(nCols);
      expect(s.cra).toBe(1);
    }
    expect(r.res.selection.every((ids) => ids.length === nCols)).toBe(true);
  });

  it('denseFallbackArea 1 never falls back; planted inputs stay sparse at 0.9 and fall back at 0.05', async () => {
    const never = await run(RANDOM, { alpha: 0.95, denseFallbackArea: 1 });
    expect(never.res.stats.every((s) => s.areaFraction < 1)).toBe(true);
    expect(relL2(never.res.out, restrictedRef(never))).toBeLessThanOrEqual(1e-5);
    // Planted heads need little; a bound just above the window's share keeps them sparse.
    const planted = await run(PLANTED, { alpha: 0.95, denseFallbackArea: 0.9 });
    expect(planted.res.stats.every((s) => s.areaFraction < 0.5)).toBe(true);
    const forced = await run(PLANTED, { alpha: 0.95, denseFallbackArea: 0.05 });
    expect(forced.res.stats.every((s) => s.areaFraction === 1 && s.cra === 1)).toBe(true);
    expect(relL2(forced.res.out, denseRef(forced))).toBeLessThanOrEqual(1e-5);
  });

  it('rejects a bad denseFallbackArea with a typed error naming the option', () => {
    expect(() => resolveAttentionOptions({ denseFallbackArea: 0 })).toThrow(InvalidOptionError);
    expect(() => resolveAttentionOptions({ denseFallbackArea: 1.5 })).toThrow(/denseFallbackArea/);
    expect(() => resolveAttentionOptions({ denseFallbackArea: Number.NaN })).toThrow(/denseFallbackArea/);
    expect(resolveAttentionOptions({ denseFallbackArea: 1 })).toMatchObject({ denseFallbackArea: 1 });
  });
});

describe('SampleAttention indirect dense fallback, per-head selection (Dawn)', () => {
  it('some groups flagged: the flagged group runs dense through the indirect dispatch, the other stays sparse', async () => {
    const r = await run(MIXED, { alpha: 0.95, denseFallbackArea: 0.5 });
    const dense = r.res.stats.map((s) => s.areaFraction === 1);
    // Heads 0-1 (planted group) sparse, heads 2-3 (random group) flagged.
    expect(dense).toEqual([false, false, true, true]);
    expect(relL2(r.res.out, restrictedRef(r))).toBeLessThanOrEqual(1e-5);
  });

  it("selection 'head': one list per head; output equals each head's own window ∪ selected reference", async () => {
    for (const [name, c, opts] of [
      ['random GQA 4', RANDOM, SPARSE],
      ['planted', PLANTED, { alpha: 0.95, denseFallbackArea: 1 }],
    ] as const) {
      const head = await run(c, { ...opts, selection: 'head' });
      const grp = await run(c, { ...opts, selection: 'group' });
      expect(head.res.selection.length).toBe(c.spec.nHeads);
      expect(head.res.stats.map((s) => s.head)).toEqual(Array.from({ length: c.spec.nHeads }, (_, h) => h));
      expect(relL2(head.res.out, restrictedRef(head))).toBeLessThanOrEqual(1e-5);
      const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
      console.log(
        `${name}: per-head CRA ${mean(head.res.stats.map((s) => s.cra)).toFixed(4)} area ${mean(head.res.stats.map((s) => s.areaFraction)).toFixed(3)}` +
          ` | per-group CRA ${mean(grp.res.stats.map((s) => s.cra)).toFixed(4)} area ${mean(grp.res.stats.map((s) => s.areaFraction)).toFixed(3)}`,
      );
      // Each head reaches the CRA goal on its own sampled rows (per group only the group's sum must).
      for (const s of head.res.stats) expect(s.cra).toBeGreaterThanOrEqual(opts.alpha - 1e-3);
    }
    // Per head with some heads flagged dense (fallback units are heads).
    const mixed = await run(MIXED, { alpha: 0.95, denseFallbackArea: 0.5, selection: 'head' });
    expect(mixed.res.stats.map((s) => s.areaFraction === 1)).toEqual([false, false, true, true]);
    expect(relL2(mixed.res.out, restrictedRef(mixed))).toBeLessThanOrEqual(1e-5);
  });

  it('forced wide-style tiles (RPT 4, 8 keys per tile), with and without the K/V register prefetch, give the reference', async () => {
    // 32 threads: 2 prefetched vec4s of K and of V per thread and tile.
    for (const pf of [false, true]) {
      const tile = { qr: 32, tpr: 4, bc: 8, rpt: 4, pf };
      const r = await run(RANDOM, SPARSE, tile);
      expect(relL2(r.res.out, restrictedRef(r)), `pf ${pf}`).toBeLessThanOrEqual(1e-5);
      const fb = await run(RANDOM, { alpha: 0.95, denseFallbackArea: 0.5, selection: 'head' }, tile);
      expect(relL2(fb.res.out, denseRef(fb)), `fallback pf ${pf}`).toBeLessThanOrEqual(1e-5);
      const dense = await run(CHUNK, { attention: 'dense' }, tile);
      expect(relL2(dense.res.out, denseRef(dense)), `dense pf ${pf}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('rejects a bad selection with a typed error naming the option', () => {
    expect(() => resolveAttentionOptions({ selection: 'kv' as never })).toThrow(/selection/);
    expect(() => resolveAttentionOptions({ sparsePass: 'split' } as never)).toThrow(/unknown option/);
    expect(resolveAttentionOptions({ selection: 'head' })).toMatchObject({ selection: 'head' });
  });
});
