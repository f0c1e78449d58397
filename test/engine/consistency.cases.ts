/**
 * The engine against itself on internlm2-tiny (f32): chunked prefill equals
 * one chunk, decode after a prefill of n equals a prefill of n + 1, truncate
 * reuses the cache, the split-K kernel used for prefill agrees with the flash
 * kernel, bad input is refused without changing state, destroy frees all.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import { createEngine, loadEngine, type DenseEngine, type LoadEngineOptions } from '../../src/engine/index.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights } from '../../src/loader/weights.ts';
import { readWeightF32 } from '../helpers/readback.ts';
import type { GpuWeight } from '../../src/loader/formats.ts';
import { ConfigError, ContextOverflowError, InvalidOptionError } from '../../src/errors.ts';
import { SHAPES, syntheticSpec, syntheticWeights, uploadWeight } from '../../bench/synthetic/weights.ts';
import { releaseWeight } from '../../src/engine/weights.ts';
import { Rng } from '../../src/util/rng.ts';

const DIR = `${FIXTURES}golden/internlm2-tiny`;
const N = 40;
const rng = new Rng(7);
const ids = Array.from({ length: N }, () => rng.int(512));

export function consistencyCases(): void {
  describe('engine consistency, internlm2-tiny f32 (Dawn)', () => {
    const engines: DenseEngine[] = [];
    let before = 0;
    let reference: Float32Array;
    const open = async (o: LoadEngineOptions) => {
      const ctx = await testGpu();
      if (engines.length === 0) before = liveBytes(ctx);
      const e = await loadEngine(ctx, DIR, { weights: 'f32', kvDtype: 'f32', contextLength: 64, attention: { attention: 'dense' }, ...o });
      engines.push(e);
      return e;
    };
    const row = (i: number) => reference.subarray(i * 512, (i + 1) * 512);

    afterAll(() => {
      if (!engines.length) return;
      const ctx = engines[0].ctx;
      for (const e of engines) e.destroy();
      expect(liveBytes(ctx)).toBe(before);
    });

    it('prefill in chunks of 7 gives the logits of one chunk', async () => {
      const one = await open({ prefillChunk: 64 });
      reference = (await one.prefill(ids, { allLogits: true })).logits!;
      const chunked = await open({ prefillChunk: 7 });
      const got = (await chunked.prefill(ids, { allLogits: true })).logits!;
      assertClose(got, reference, 'chunked vs one chunk', 1e-4, 1e-6);
      expect(chunked.kvLength).toBe(N);
    }, 300_000);

    it('decode after a prefill of n gives the logits of a prefill of n + 1', async () => {
      const e = engines[0];
      e.truncate(0);
      await e.prefill(ids.slice(0, N - 3));
      for (let i = N - 3; i < N; i++) {
        await e.decodeStep(ids[i]);
        assertClose(await e.readLogits(), row(i), `decode at ${i}`, 1e-4, 1e-6);
      }
      expect(e.kvLength).toBe(N);
    });

    it('truncate keeps the prefix: prefill of the rest continues it', async () => {
      const e = engines[1];
      e.truncate(13);
      await e.prefill(ids.slice(13, 30));
      assertClose(await e.readLogits(), row(29), 'after truncate', 1e-4, 1e-6);
    });

    it('the split-K cache kernel as prefill attention agrees with the flash kernel', async () => {
      const e = await open({ prefillChunk: 16, prefillKernel: 'split' });
      const got = (await e.prefill(ids, { allLogits: true })).logits!;
      assertClose(got, reference, 'split vs flash', 1e-4, 1e-6);
    });

    it('refuses bad ids and overflow with typed errors, state unchanged', async () => {
      const e = engines[0];
      e.truncate(10);
      await expect(e.prefill([1, 512])).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(e.prefill([1.5])).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(e.decodeStep(-1)).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(e.prefill(new Array(60).fill(1))).rejects.toBeInstanceOf(ContextOverflowError);
      expect(() => e.truncate(11)).toThrow(InvalidOptionError);
      expect(e.kvLength).toBe(10);
      const ctrl = new AbortController();
      ctrl.abort();
      await expect(e.prefill([1, 2], { signal: ctrl.signal })).rejects.toThrow(/abort/);
      expect(e.kvLength).toBe(10);
    });

    it('weights split in row parts (embedding, LM head, linears) give the same logits', async () => {
      const ctx = await testGpu();
      const fs = nodeSource(DIR);
      const model = await readModel(fs);
      const weights = await loadWeights(ctx, fs, model.spec, model.plan, { format: 'f32', maxPartBytes: 64 * 1024 });
      expect(weights.get('lmHead')!.parts.length).toBeGreaterThan(1);
      expect(weights.get('embed')!.parts.length).toBeGreaterThan(1);
      const e = await createEngine(ctx, { spec: model.spec, weights, contextLength: 64, prefillChunk: 64, kvDtype: 'f32', attention: { attention: 'dense' } });
      engines.push(e);
      const got = (await e.prefill(ids, { allLogits: true })).logits!;
      reference ??= (await (await open({ prefillChunk: 64 })).prefill(ids, { allLogits: true })).logits!;
      assertClose(got, reference, 'split weights', 1e-4, 1e-6);
      await e.decodeStep(ids[0]);
      expect((await e.readLogits()).every(Number.isFinite)).toBe(true);
    }, 300_000);

    // Quantized weights end to end (embedding gather, every linear, the LM head):
    // the same logits as an engine holding their dequantized values in f32.
    // (q4 only: q8 takes the same engine path; kernels/linear and embedding tests cover q8 itself.)
    for (const format of ['q4'] as const) {
      it(`${format} weights give the logits of their dequantized f32 values`, async () => {
        const ctx = await testGpu();
        const fs = nodeSource(DIR);
        const model = await readModel(fs);
        const wq = await loadWeights(ctx, fs, model.spec, model.plan, { format });
        const wf = new Map<string, GpuWeight>();
        for (const [name, w] of wq) wf.set(name, uploadWeight(ctx, name, await readWeightF32(ctx, w), w.shape));
        const opts = { spec: model.spec, contextLength: 16, prefillChunk: 12, kvDtype: 'f32' as const, attention: { attention: 'dense' as const } };
        const eq = await createEngine(ctx, { ...opts, weights: wq });
        engines.push(eq);
        const ef = await createEngine(ctx, { ...opts, weights: wf });
        engines.push(ef);
        const short = ids.slice(0, 12);
        const got = (await eq.prefill(short, { allLogits: true })).logits!;
        const want = (await ef.prefill(short, { allLogits: true })).logits!;
        assertClose(got, want, `${format} vs dequantized f32`, 1e-4, 1e-6);
      }, 300_000);
    }

    it('SampleAttention prefill runs through the engine and reports per-head sparsity', async () => {
      const e = await open({ prefillChunk: 64, attention: { attention: 'sample', minSparseLen: 16, minSampleRows: 4 } });
      const r = await e.prefill(ids, { allLogits: true });
      expect(r.sparsity?.mode).toBe('sample');
      expect(r.sparsity?.seqLen).toBe(N);
      expect(r.sparsity?.heads.length).toBe(e.spec.nLayers * e.spec.nHeads);
      for (const h of r.sparsity!.heads) expect(h.areaFraction).toBeGreaterThan(0);
      expect(r.logits!.every(Number.isFinite)).toBe(true);
      // Dense below minSparseLen: the same engine, a short prompt, reports dense.
      e.truncate(0);
      expect((await e.prefill(ids.slice(0, 8))).sparsity?.mode).toBe('dense');
    }, 300_000);

    it('a missing weight is a ConfigError naming it, and leaves nothing allocated', async () => {
      const ctx = await testGpu();
      const spec = syntheticSpec({ ...SHAPES.tiny, nLayers: 1 });
      const weights = await syntheticWeights(ctx, spec, { format: 'f32' });
      releaseWeight(ctx, weights.get('finalNorm')!);
      weights.delete('finalNorm');
      const live = liveBytes(ctx);
      await expect(createEngine(ctx, { spec, weights, contextLength: 32, prefillChunk: 8 })).rejects.toThrow(ConfigError);
      await expect(createEngine(ctx, { spec, weights, contextLength: 32, prefillChunk: 8 })).rejects.toThrow(/finalNorm/);
      expect(liveBytes(ctx)).toBe(live);
      for (const w of weights.values()) releaseWeight(ctx, w);
    }, 300_000);

    it('top-k on the GPU agrees with the logits', async () => {
      const e = engines[0];
      const logits = await e.readLogits();
      const { ids: top, values } = await e.topK(5);
      const sorted = Array.from(logits.keys())
        .sort((a, b) => logits[b] - logits[a] || a - b)
        .slice(0, 5);
      expect(Array.from(top)).toEqual(sorted);
      expect(Array.from(values)).toEqual(sorted.map((i) => logits[i]));
      expect(await e.argmax()).toBe(sorted[0]);
    });

    it('the greedy decode loop (ids kept on the GPU) gives the ids of stepped greedy decoding, stops at a stop id and at a full cache', async () => {
      const e = engines[0];
      const loop = async (o: Parameters<DenseEngine['decode']>[0]) => {
        const out: number[] = [];
        for await (const id of e.decode(o)) out.push(id);
        return out;
      };
      e.truncate(0);
      await e.prefill(ids.slice(0, 20));
      const first = await e.argmax();
      const stepped: number[] = [];
      let id = first;
      for (let i = 0; i < 12; i++) {
        await e.decodeStep(id);
        id = await e.argmax();
        stepped.push(id);
      }
      const logits = await e.readLogits();
      // Back to the prompt's logits (a prefill of its last token), then the loop.
      const again = async () => {
        e.truncate(19);
        await e.prefill(ids.slice(19, 20));
      };
      await again();
      expect(await loop({ maxTokens: 13 })).toEqual([first, ...stepped]);
      expect(e.kvLength).toBe(32);
      assertClose(await e.readLogits(), logits, 'logits after the decode loop', 1e-6, 1e-7);
      // Stop at the first occurrence of stepped[4]: it is yielded, and the cache ends before it.
      const seq = [first, ...stepped];
      const k = seq.indexOf(stepped[4]);
      await again();
      expect(await loop({ maxTokens: 13, stopIds: [stepped[4]] })).toEqual(seq.slice(0, k + 1));
      expect(e.kvLength).toBe(20 + k);
      await e.decodeStep(seq[k]);
      expect(await e.argmax()).toBe(seq[k + 1]);
      // A consumer that stops early: the cache holds every id it took but the last.
      await again();
      for await (const t of e.decode({ maxTokens: 13 })) if (t === stepped[2]) break;
      expect(e.kvLength).toBe(20 + seq.indexOf(stepped[2]));
      // The loop ends when the cache is full: contextLength - 20 + 1 ids, the last one not appended.
      await again();
      const full = await loop({ maxTokens: 64 });
      expect(full.slice(0, 13)).toEqual([first, ...stepped]);
      expect(full.length).toBe(e.contextLength - 20 + 1);
      expect(e.kvLength).toBe(e.contextLength);
      await expect(e.decodeStep(full[full.length - 1])).rejects.toBeInstanceOf(ContextOverflowError);
    });
  });
}
