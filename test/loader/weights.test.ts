import { describe, expect, it } from 'vitest';
import { firstDiff } from './mem-source.ts';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { readWeightF32, readWeightRaw, readRecipeF32 } from '../helpers/readback.ts';
import { planMemory, limitsOf } from '../../src/loader/memory-plan.ts';
import { quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { packF16, dequantize } from '../helpers/quant.ts';
import { AbortedError, NetworkError } from '../../src/errors.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { structuredSource } from '../../bench/synthetic/source.ts';
import { PRESETS } from '../../bench/synthetic/structured.ts';

const MODELS = ['golden/chatglm2-tiny', 'golden/internlm2-tiny', 'stories260k'];

/** Raw F16 bits of a recipe's canonical rows (only for F16 sources). */
async function rawF16(src: FileSource, r: Awaited<ReturnType<typeof readModel>>['plan']['recipes'][number]): Promise<Uint16Array> {
  const parts: Uint16Array[] = [];
  for (const s of r.segments) {
    const rowBytes = s.entry.byteLength / s.entry.shape[0];
    const b = await src.read(s.entry.file, s.entry.offset + s.rowStart * rowBytes, s.rows * rowBytes);
    parts.push(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
  }
  const out = new Uint16Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('loadWeights (real WebGPU)', () => {
  for (const dir of MODELS) {
    it(`${dir}: every tensor round-trips in f16 (bit exact vs the file's halves), vectors in f32; plan == allocated`, async () => {
      const ctx = await testGpu();
      const src = nodeSource(FIXTURES + dir);
      const m = await readModel(src);
      const before = liveBytes(ctx);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f16' });
      try {
        expect(liveBytes(ctx) - before).toBe(planMemory(m.spec, m.plan, limitsOf(ctx), { format: 'f16' }).weightsBytes);
        expect(w.bytes).toBe(liveBytes(ctx) - before);
        expect([...w.keys()].sort()).toEqual(m.plan.recipes.map((r) => r.name).sort());
        for (const r of m.plan.recipes) {
          const g = w.get(r.name)!;
          const ref = await readRecipeF32(src, r);
          if (r.shape.length === 1) {
            expect(g.format).toBe('f32');
            expect(firstDiff(await readWeightF32(ctx, g), ref), r.name).toBe(-1);
            continue;
          }
          expect(g.format).toBe('f16');
          const words = (await readWeightRaw(ctx, g))[0].data;
          const expected = r.segments[0].entry.dtype === 'F16' ? new Uint32Array((await rawF16(src, r)).buffer.slice(0)) : packF16(ref);
          expect(words.length).toBe(expected.length);
          let bad = -1;
          for (let i = 0; i < words.length && bad < 0; i++) if (words[i] !== expected[i]) bad = i;
          expect(bad, `${r.name} word ${bad}`).toBe(-1);
        }
      } finally {
        releaseWeights(ctx, w.values());
        await src.close();
      }
      expect(liveBytes(ctx)).toBe(before);
    });
  }

  it('f32 keeps values exactly; a tiny part limit splits every matrix by rows and still round-trips', async () => {
    const ctx = await testGpu();
    const src = nodeSource(FIXTURES + 'golden/internlm2-tiny');
    const m = await readModel(src);
    const before = liveBytes(ctx);
    const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f32', maxPartBytes: 64 << 10 });
    expect(liveBytes(ctx) - before).toBe(planMemory(m.spec, m.plan, limitsOf(ctx), { format: 'f32', maxPartBytes: 64 << 10 }).weightsBytes);
    const embed = w.get('embed')!;
    expect(embed.parts.length).toBe(4); // [512, 128] f32: 512 B a row, 64 KiB parts = 128 rows each
    expect(embed.parts.map((p) => p.rowStart)).toEqual([0, 128, 256, 384]);
    for (const r of m.plan.recipes) expect(firstDiff(await readWeightF32(ctx, w.get(r.name)!), await readRecipeF32(src, r)), r.name).toBe(-1);
    releaseWeights(ctx, w.values());
    await src.close();
    expect(liveBytes(ctx)).toBe(before);
  });

  const Q_CASES = [
    ['q8', 0, 'cpu'],
    ['q4', 32, 'cpu'],
    ['q8', 0, 'gpu'],
    ['q8', 32, 'gpu'],
    ['q4', 32, 'gpu'],
    ['q4', 128, 'gpu'],
  ] as const;
  for (const [format, groupSize, quantizeOn] of Q_CASES) {
    it(`${format} g${groupSize} on the ${quantizeOn}: matches the CPU reference${quantizeOn === 'cpu' ? ' exactly' : ' (up to f32-division near-ties)'} and the originals within the quantization error`, async () => {
      const ctx = await testGpu();
      const src = nodeSource(FIXTURES + 'stories260k');
      const m = await readModel(src);
      const before = liveBytes(ctx);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format, groupSize, quantizeOn, maxPartBytes: 8 << 10 });
      expect(liveBytes(ctx) - before).toBe(planMemory(m.spec, m.plan, limitsOf(ctx), { format, groupSize, maxPartBytes: 8 << 10 }).weightsBytes);
      let elems = 0,
        differ = 0;
      for (const r of m.plan.recipes) {
        if (r.shape.length === 1) continue;
        const g = w.get(r.name)!;
        const x = await readRecipeF32(src, r);
        const got = await readWeightF32(ctx, g);
        const cols = r.shape[1];
        const q = g.format === 'q8' ? quantizeQ8(x, cols, g.groupSize) : quantizeQ4(x, cols, g.groupSize);
        const ref = dequantize(g.format as 'q8' | 'q4', q, x.length);
        // Error bound per group: half a step for q8 (amax / 127 / 2), one step for q4 (amax / 8), plus f16 scale rounding.
        const bound = g.format === 'q8' ? 0.5 / 127 + 1e-3 : 1 / 8 + 1e-3;
        for (let s = 0; s < x.length; s += g.groupSize) {
          let amax = 0;
          for (let i = s; i < s + g.groupSize; i++) amax = Math.max(amax, Math.abs(x[i]));
          const step = amax / (g.format === 'q8' ? 127 : 8);
          for (let i = s; i < s + g.groupSize; i++) {
            if (Math.abs(got[i] - x[i]) > amax * bound) throw new Error(`${r.name}[${i}]: ${got[i]} vs ${x[i]}`);
            if (got[i] !== ref[i]) {
              differ++;
              if (Math.abs(got[i] - ref[i]) > step * 1.01) throw new Error(`${r.name}[${i}]: ${got[i]} vs reference ${ref[i]}: more than one step`);
            }
          }
        }
        elems += x.length;
      }
      console.log(`${format} g${groupSize} ${quantizeOn}: ${differ} of ${elems} differ from the CPU reference`);
      if (quantizeOn === 'cpu') expect(differ).toBe(0);
      else expect(differ / elems).toBeLessThan(1e-3);
      if (format === 'q4') expect(w.notes.some((n) => n.includes('wDown'))).toBe(true); // 172 columns: no q4 group divides
      releaseWeights(ctx, w.values());
      await src.close();
      expect(liveBytes(ctx)).toBe(before);
    });
  }

  it('a read failure midway and an abort release every buffer already created', async () => {
    const ctx = await testGpu();
    const base = nodeSource(FIXTURES + 'stories260k');
    const m = await readModel(base);
    let reads = 0;
    const flaky: FileSource = {
      ...base,
      name: base.name,
      read: async (p, o, l) => {
        if (++reads === 20) throw new NetworkError('connection reset');
        return base.read(p, o, l);
      },
    };
    const before = liveBytes(ctx);
    await expect(loadWeights(ctx, flaky, m.spec, m.plan, { format: 'q4' })).rejects.toThrow(NetworkError);
    expect(liveBytes(ctx)).toBe(before);
    const ac = new AbortController();
    const progress: number[] = [];
    const p = loadWeights(ctx, base, m.spec, m.plan, {
      signal: ac.signal,
      onProgress: (e) => {
        progress.push(e.bytesDone);
        if (progress.length === 10) ac.abort();
      },
    });
    await expect(p).rejects.toThrow(AbortedError);
    expect(liveBytes(ctx)).toBe(before);
    expect(progress.every((v, i) => i === 0 || v >= progress[i - 1])).toBe(true);
    await base.close();
  });

  it('readAhead keeps that many row blocks in flight (the source can ask for it); a failure still releases everything', async () => {
    const ctx = await testGpu();
    // Embedding and LM head of 16384 x 256 f32 rows: four 4 MiB blocks each.
    const base = structuredSource({ ...PRESETS['internlm2-tiny'], nLayers: 1, vocabSize: 16384, dtype: 'F32', seed: 1, contextLength: 64 });
    const m = await readModel(base);
    // Counted on the embedding's reads only (blocks of other recipes read several segments each).
    const emb = m.plan.recipes.flatMap((r) => r.segments.map((g) => g.entry)).find((e) => e.name === 'model.tok_embeddings.weight')!;
    const load = async (readAhead: number | undefined, hint: number | undefined, failAt = 0) => {
      let inflight = 0,
        maxInflight = 0,
        reads = 0;
      const src: FileSource & { readAhead?: number } = {
        ...base,
        name: base.name,
        readAhead: hint,
        read: async (p, o, l) => {
          if (failAt && ++reads === failAt) throw new NetworkError('connection reset');
          const counted = p === emb.file && o >= emb.offset && o < emb.offset + emb.byteLength;
          if (counted) maxInflight = Math.max(maxInflight, ++inflight);
          await new Promise((r) => setTimeout(r, 2));
          try {
            return await base.read(p, o, l);
          } finally {
            if (counted) inflight--;
          }
        },
      };
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f16', readAhead });
      releaseWeights(ctx, w.values());
      return maxInflight;
    };
    const before = liveBytes(ctx);
    expect(await load(undefined, undefined)).toBe(1); // default: the next block is read while one converts
    expect(await load(undefined, 3)).toBe(3); // the source's hint
    expect(await load(2, 3)).toBe(2); // the option wins
    await expect(load(4, undefined, 3)).rejects.toThrow(NetworkError);
    expect(liveBytes(ctx)).toBe(before);
  });
});
