/**
 * Structured synthetic models: a small model of each family loads through
 * the real loader (readModel -> loadWeights on WebGPU), and the attention of
 * its first layer, computed on the CPU from the GPU-loaded weights for a
 * 384-token prompt, shows the planted sink, bands, stripes and needle; the
 * 7B shapes are served without materializing them; the folder writer; the
 * prompt generator; and through the engine, the needle decides the answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../src/engine/index.ts';
import { readModel } from '../../src/loader/model.ts';
import { readWeightF32, readRecipeF32 } from '../helpers/readback.ts';
import { readCheckpoint } from '../../src/loader/safetensors.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { attentionRow, layerQK, rowMass } from '../../bench/synthetic/analyze.ts';
import { syntheticPrompt } from '../../bench/synthetic/prompt.ts';
import { structuredSource, writeStructuredModel } from '../../bench/synthetic/source.ts';
import { PRESETS, roleOf, TOKENS, type StructuredOptions } from '../../bench/synthetic/structured.ts';
import { testGpu } from '../helpers/gpu.ts';

const SMALL: Record<'internlm2' | 'chatglm2', StructuredOptions> = {
  internlm2: { family: 'internlm2', dim: 512, nLayers: 2, nHeads: 8, nKvHeads: 2, ffnDim: 256, vocabSize: 256, dtype: 'BF16', seed: 11 },
  chatglm2: { family: 'chatglm2', dim: 512, nLayers: 2, nHeads: 8, nKvHeads: 2, ffnDim: 256, vocabSize: 256, headDim: 64, dtype: 'F16', seed: 12 },
};

describe('structured synthetic model: planted attention structure through the loader (real WebGPU)', () => {
  for (const family of ['internlm2', 'chatglm2'] as const) {
    it(`${family}: sink, bands, stripes and needle in layer 0 at 384 tokens`, async () => {
      const ctx = await testGpu();
      const src = structuredSource(SMALL[family]);
      const m = await readModel(src);
      expect(m.spec.family).toBe(family);
      const names = ['embed', 'layers.0.attnNorm', 'layers.0.wqkv', ...(m.spec.qkvBias ? ['layers.0.bqkv'] : [])];
      const recipes = m.plan.recipes.filter((r) => names.includes(r.name));
      const gpu = await loadWeights(ctx, src, m.spec, { recipes, dropped: [] }, { format: 'f32' });
      const w: Record<string, Float32Array> = {};
      try {
        for (const r of recipes) {
          w[r.name] = await readWeightF32(ctx, gpu.get(r.name)!);
          expect(sameBytes(w[r.name], await readRecipeF32(src, r)), r.name).toBe(true); // the GPU holds what the file says
        }
      } finally {
        releaseWeights(ctx, gpu.values());
      }
      const S = 384;
      const prompt = syntheticPrompt({ seqLen: S, vocabSize: m.spec.vocabSize, needles: 2, stripeEvery: 48, seed: 5 });
      const rows = [S - 1, S - 4, 300, 250, 200];
      const qk = layerQK(m.spec, { embed: w.embed, attnNorm: w['layers.0.attnNorm'], wqkv: w['layers.0.wqkv'], bqkv: w['layers.0.bqkv'] }, prompt.ids, rows);
      const kinds = new Set<string>();
      let bandChecks = 0;
      for (let h = 0; h < m.spec.nHeads; h++) {
        const plan = src.weights.plan(0, h);
        kinds.add(plan.kind);
        const band = Math.ceil(2 * plan.bandWidth) + 2;
        for (const i of rows) {
          const p = attentionRow(m.spec, qk, h, i);
          const mass = rowMass(p, i, band, prompt.stripes, prompt.needles);
          const where = `head ${h} (${plan.kind}) row ${i}`;
          if (plan.kind === 'retrieval') {
            if (i >= prompt.questionStart) expect(mass.needles, where).toBeGreaterThan(0.9);
            else {
              expect(mass.needles, where).toBeLessThan(0.01);
              expect(mass.sink, where).toBeGreaterThan(0.5);
            }
          } else if (plan.kind === 'mixed') {
            // Planted columns and the band hold nearly all the mass; stripes stand far above other columns.
            expect(mass.sink + mass.band + mass.stripes, where).toBeGreaterThan(0.85);
            // The sink column stands far above a typical background column (the median of the
            // ordinary columns outside the band: the heavy background's mean is set by its tail).
            const background = medianAt(p, i, band + 1, i, prompt);
            expect(mass.sink / Math.max(background, 1e-30), where).toBeGreaterThan(100);
            if (!Number.isNaN(mass.stripeLift)) expect(mass.stripeLift, where).toBeGreaterThan(10);
            expect(mass.needles, where).toBeLessThan(0.01);
            if (plan.bandWidth <= 48) {
              // Band: mean probability near the diagonal far above that at 3W-6W.
              const near = meanAt(p, i, 0, Math.max(1, plan.bandWidth / 2), prompt);
              const far = meanAt(p, i, 3 * plan.bandWidth, 6 * plan.bandWidth, prompt);
              expect(near / Math.max(far, 1e-30), where).toBeGreaterThan(10);
              bandChecks++;
            }
          } else {
            expect(mass.stripeLift, where).toBeLessThan(10);
            expect(mass.needles, where).toBeLessThan(0.2);
          }
        }
      }
      expect([...kinds].sort()).toEqual(['diffuse', 'mixed', 'retrieval']);
      expect(bandChecks).toBeGreaterThan(0);
    });
  }
});

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** Median probability of ordinary (and question) columns at distance [d0, d1] from row i. */
function medianAt(p: Float64Array, i: number, d0: number, d1: number, prompt: { ids: Int32Array }): number {
  const xs: number[] = [];
  for (let j = Math.max(1, Math.ceil(i - d1)); j <= i - d0; j++) {
    const role = roleOf(prompt.ids[j]);
    if (role === 'ordinary' || role === 'query') xs.push(p[j]);
  }
  xs.sort((a, b) => a - b);
  return xs.length ? xs[xs.length >> 1] : 0;
}

/** Mean probability of ordinary (and question) columns at distance [d0, d1] from row i. */
function meanAt(p: Float64Array, i: number, d0: number, d1: number, prompt: { ids: Int32Array }): number {
  let s = 0,
    n = 0;
  for (let j = Math.max(1, Math.ceil(i - d1)); j <= i - d0; j++) {
    const role = roleOf(prompt.ids[j]);
    if (role !== 'ordinary' && role !== 'query') continue;
    s += p[j];
    n++;
  }
  return n ? s / n : 0;
}

describe('structured synthetic model: heavy (default) vs flat background', () => {
  it('heavy: per-token salience gives a mixed head heavy-tailed far logits; flat keeps the old weights without it', async () => {
    const base = { family: 'internlm2' as const, dim: 512, nLayers: 1, nHeads: 4, nKvHeads: 1, ffnDim: 64, vocabSize: 1024, dtype: 'F32' as const, seed: 6 };
    const S = 1024;
    const prompt = syntheticPrompt({ seqLen: S, vocabSize: base.vocabSize, seed: 2 });
    const i = S - 1;
    const sd: Record<string, number> = {},
      corr: Record<string, number> = {};
    const heavyWeights = structuredSource({ ...base }).weights; // the default is heavy
    for (const background of ['heavy', 'flat'] as const) {
      const src = structuredSource({ ...base, background });
      const m = await readModel(src);
      const w = canonicalLayer0(src, m.spec);
      const qk = layerQK(m.spec, w, prompt.ids, [i]);
      const h = [0, 1, 2, 3].find((x) => src.weights.plan(0, x).kind === 'mixed')!;
      const plan = src.weights.plan(0, h);
      const D = m.spec.headDim;
      // Logits of ordinary keys far from row i (outside 4 band widths and 256).
      const far: number[] = [],
        zeta: number[] = [];
      for (let j = 1; j < i - Math.max(256, 4 * plan.bandWidth); j++) {
        if (roleOf(prompt.ids[j]) !== 'ordinary') continue;
        zeta.push(heavyWeights.zeta(prompt.ids[j]));
        let x = 0;
        for (let d = 0; d < D; d++) x += qk.q[(i * m.spec.nHeads + h) * D + d] * qk.k[j * m.spec.nKvHeads * D + d];
        far.push(x / Math.sqrt(D));
      }
      const mean = far.reduce((a, b) => a + b, 0) / far.length;
      sd[background] = Math.sqrt(far.reduce((a, b) => a + (b - mean) ** 2, 0) / far.length);
      corr[background] = correlation(far, zeta);
      if (background === 'heavy') {
        expect(plan.salience).toBeGreaterThanOrEqual(1.5);
        const zs = Array.from({ length: 2000 }, (_, t) => src.weights.zeta(TOKENS.firstOrdinary + t));
        const zm = zs.reduce((a, b) => a + b, 0) / zs.length;
        const zsd = Math.sqrt(zs.reduce((a, b) => a + (b - zm) ** 2, 0) / zs.length);
        expect(Math.abs(zm)).toBeLessThan(0.1);
        expect(Math.abs(zsd - 1)).toBeLessThan(0.1);
        expect(src.weights.zeta(TOKENS.sink)).toBe(0);
        expect(JSON.parse(await src.text('config.json')).sieve_synthetic.background).toBe('heavy');
      } else {
        expect(plan.salience).toBe(0);
        expect(src.weights.zeta(TOKENS.firstOrdinary + 5)).toBe(0);
      }
    }
    console.log(
      `mixed head, far logits: std heavy ${sd.heavy.toFixed(2)}, flat ${sd.flat.toFixed(2)} (RoPE band sidelobes); correlation with zeta: heavy ${corr.heavy.toFixed(2)}, flat ${corr.flat.toFixed(2)}`,
    );
    expect(sd.heavy).toBeGreaterThan(sd.flat);
    expect(corr.heavy).toBeGreaterThan(0.5);
    expect(Math.abs(corr.flat)).toBeLessThan(0.2);
    expect(() => structuredSource({ ...base, background: 'bogus' as never })).toThrow(/background/);
  });
});

function correlation(a: number[], b: number[]): number {
  const ma = a.reduce((x, y) => x + y, 0) / a.length,
    mb = b.reduce((x, y) => x + y, 0) / b.length;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let k = 0; k < a.length; k++) {
    sab += (a[k] - ma) * (b[k] - mb);
    saa += (a[k] - ma) ** 2;
    sbb += (b[k] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Canonical layer-0 weights (embed, attnNorm, wqkv with rows Q heads, K heads, V heads) straight from the generator. */
function canonicalLayer0(
  src: ReturnType<typeof structuredSource>,
  spec: { nHeads: number; nKvHeads: number; headDim: number; dim: number; vocabSize: number },
) {
  const { nHeads: H, nKvHeads: G, headDim: D, dim } = spec;
  const per = H / G;
  const raw = src.tensorRows('model.layers.0.attention.wqkv.weight', 0, (H + 2 * G) * D);
  const wqkv = new Float32Array(raw.length);
  let r = 0;
  for (let g = 0; g < G; g++) {
    for (let s = 0; s < per + 2; s++) {
      for (let d = 0; d < D; d++, r++) {
        const dst = s < per ? (g * per + s) * D + d : s === per ? (H + g) * D + d : (H + G + g) * D + d;
        wqkv.set(raw.subarray(r * dim, (r + 1) * dim), dst * dim);
      }
    }
  }
  return {
    embed: src.tensorRows('model.tok_embeddings.weight', 0, spec.vocabSize),
    attnNorm: src.tensorRows('model.layers.0.attention_norm.weight', 0, 1),
    wqkv,
  };
}

describe('structured synthetic model: outputs', () => {
  it('7B shapes are served without materializing them: spec, shards, consistent bytes', async () => {
    const src = structuredSource({ ...PRESETS['internlm2-7b'], seed: 3 });
    const m = await readModel(src);
    expect([m.spec.dim, m.spec.nLayers, m.spec.nHeads, m.spec.nKvHeads, m.spec.ffnDim, m.spec.vocabSize]).toEqual([4096, 32, 32, 8, 14336, 92544]);
    expect(m.checkpoint.files.length).toBeGreaterThanOrEqual(7);
    expect(m.checkpoint.totalBytes).toBeGreaterThan(15e9);
    // An unaligned read equals the two reads it splits into; tensorRows agrees with the bytes.
    const e = m.checkpoint.entries.find((x) => x.name === 'model.layers.20.feed_forward.w2.weight')!;
    const off = e.offset + 3 * e.shape[1] * 2 + 5;
    const whole = await src.read(e.file, off, 70001);
    const a = await src.read(e.file, off, 33333);
    const b = await src.read(e.file, off + 33333, 70001 - 33333);
    expect(sameBytes(whole.subarray(0, 33333), a)).toBe(true);
    expect(sameBytes(whole.subarray(33333), b)).toBe(true);
    const rowBytes = e.shape[1] * 2;
    const row = new Uint16Array((await src.read(e.file, e.offset + 7 * rowBytes, rowBytes)).buffer);
    const f32 = src.tensorRows(e.name, 7, 1);
    for (let c = 0; c < f32.length; c += 997) {
      const back = new Float32Array(new Uint32Array([row[c] << 16]).buffer)[0];
      expect(Math.abs(back - f32[c])).toBeLessThanOrEqual(Math.abs(f32[c]) * 2 ** -8);
    }
    for (const p of ['chatglm2-6b', 'internlm2-1.8b'] as const) {
      const s2 = await readModel(structuredSource(PRESETS[p]));
      expect(s2.spec.dim).toBe(PRESETS[p].dim);
    }
  });

  it('writes a sharded folder whose bytes equal the source (via the safetensors layout)', async () => {
    const dir = mkdtempSync(`${tmpdir()}/structured-`);
    try {
      const opts: StructuredOptions = { ...PRESETS['chatglm2-tiny'], dtype: 'F32', shardBytes: 1 << 20 };
      const out = await writeStructuredModel(dir, opts);
      expect(out.files.length).toBeGreaterThan(1);
      const disk = nodeSource(dir);
      const src = structuredSource(opts);
      const ck = await readCheckpoint(disk);
      expect(ck.entries.map((e) => e.name)).toEqual((await readCheckpoint(src)).entries.map((e) => e.name));
      for (const e of ck.entries.filter((_, k) => k % 4 === 0)) {
        expect(sameBytes(await disk.read(e.file, e.offset, e.byteLength), await src.read(e.file, e.offset, e.byteLength)), e.name).toBe(true);
      }
      expect(JSON.parse(await disk.text('config.json')).model_type).toBe('chatglm');
      await disk.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prompts put the sink first, stripes spread out, needles at depth and the question last', () => {
    const p = syntheticPrompt({ seqLen: 4096, vocabSize: 92544, needles: 3, needleDepth: 0.25, stripeEvery: 256, seed: 9 });
    expect(p.ids[0]).toBe(TOKENS.sink);
    expect(p.needles).toEqual([1024, 1025, 1026]);
    expect(p.questionStart).toBe(4088);
    for (const j of p.needles) expect(roleOf(p.ids[j])).toBe('needle');
    for (let j = p.questionStart; j < 4096; j++) expect(roleOf(p.ids[j])).toBe('query');
    expect(p.stripes.length).toBeGreaterThan(10);
    for (const j of p.stripes) expect(roleOf(p.ids[j])).toBe('stripe');
    const roles = Array.from(p.ids, (t) => roleOf(t));
    expect(roles.filter((r) => r === 'stripe').length).toBe(p.stripes.length);
    expect(roles.filter((r) => r === 'sink').length).toBe(1);
    expect(syntheticPrompt({ seqLen: 4096, vocabSize: 92544, needles: 3, needleDepth: 0.25, seed: 9 }).ids).toEqual(p.ids);
  });
});

describe('structured synthetic model through the engine (Dawn)', () => {
  it("next token follows the LM-head chain, and after a needle prompt it is the needle's successor", async () => {
    const ctx = await testGpu();
    const src = structuredSource({ family: 'internlm2', dim: 256, nLayers: 4, nHeads: 4, nKvHeads: 2, ffnDim: 512, vocabSize: 512, seed: 4 });
    const e = await loadEngine(ctx, src, { weights: 'f32', kvDtype: 'f32', contextLength: 320, prefillChunk: 128, attention: { attention: 'dense' } });
    try {
      const V = e.spec.vocabSize;
      for (const needles of [0, 1]) {
        const prompt = syntheticPrompt({ seqLen: 300, vocabSize: V, needles, seed: 3, stripeEvery: 64 });
        const ids = Array.from(prompt.ids);
        e.truncate(0);
        const { logits } = await e.prefill(ids, { allLogits: true });
        const argmax = (r: number) => {
          let b = -Infinity,
            bi = -1;
          for (let c = 0; c < V; c++) {
            const v = logits![r * V + c];
            expect(Number.isFinite(v)).toBe(true);
            if (v > b) {
              b = v;
              bi = c;
            }
          }
          return bi;
        };
        let chain = 0;
        for (let r = 0; r < prompt.questionStart; r++) if (argmax(r) === src.weights.sigma(ids[r])) chain++;
        expect(chain / prompt.questionStart).toBeGreaterThan(0.9);
        if (needles) {
          const last = argmax(ids.length - 1);
          expect(last).toBe(src.weights.sigma(ids[prompt.needles[0]]));
          expect(last).not.toBe(src.weights.sigma(ids[ids.length - 1]));
        }
      }
    } finally {
      e.destroy();
    }
  });
});
