/**
 * The fused decode step (EngineOptions.decodeVariant 'fused', src/engine/forward.ts)
 * against the golden float64 references of both families: every token of
 * `short` goes through the one-row plan (a 1-token prefill, then decodeStep)
 * and each step's logits must match the golden logits of that position (the
 * bound of golden.cases.ts); then the greedy continuation through decodeStep
 * and the engine's decode loop. prefillChunk 1 with the split-K prefill kernel: only the
 * decode pipelines compile (SwiftShader compiles slowly). (SIEVE_DECODE=fused runs all of test/engine/engine.test.ts
 * on this path too.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { openSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights } from '../../src/loader/weights.ts';
import { createEngine, type DenseEngine } from '../../src/engine/index.ts';
import type { DecodeVariant } from '../../src/engine/engine.ts';
import { compareLogits, readGolden } from './golden-file.ts';

const TOL = 1e-2;

const RUNS: [string, DecodeVariant, boolean][] = [
  ['chatglm2-tiny', 'fused', true],
  ['internlm2-tiny', 'fused', true],
];
/** Dispatches per layer of each plan (decodeDispatches: + embed, layer 0's norm, lm_head and the argmax). */
const PER_LAYER: Partial<Record<DecodeVariant, number>> = { fused: 6 };

for (const [model, variant, withGreedy] of RUNS) {
  const dir = `${FIXTURES}golden/${model}`;
  const golden = readGolden(`${dir}/golden.safetensors`);
  describe(`${model}: ${variant} decode (Dawn)`, () => {
    let engine: DenseEngine | undefined;
    let before = 0;
    const get = async () => {
      if (engine) return engine;
      const ctx = await testGpu();
      before = liveBytes(ctx);
      const fs = openSource(dir);
      const m = await readModel(fs);
      const weights = await loadWeights(ctx, fs, m.spec, m.plan, { format: 'f32' });
      engine = await createEngine(ctx, {
        spec: m.spec,
        weights,
        contextLength: 128,
        prefillChunk: 1,
        prefillKernel: 'split',
        kvDtype: 'f32',
        attention: { attention: 'dense' },
        decodeVariant: variant,
      });
      return engine;
    };
    afterAll(() => {
      if (!engine) return;
      const ctx = engine.ctx;
      engine.destroy();
      expect(liveBytes(ctx)).toBe(before);
    });

    it('logits at every position (one-row steps) match the golden logits', async () => {
      const e = await get();
      expect(e.fusedDecode).toBe(true);
      const argmax = e.decodeDispatches - e.spec.nLayers * PER_LAYER[variant]! - 3;
      expect(argmax === 1 || argmax === 2, `${e.decodeDispatches} dispatches per step`).toBe(true);
      e.truncate(0);
      const ids = Array.from(golden.get('short.input_ids')!.data);
      const want = golden.get('short.logits')!.data as Float32Array;
      const V = e.spec.vocabSize;
      let worst = 0;
      for (let i = 0; i < ids.length; i++) {
        if (i === 0) await e.prefill([ids[0]]);
        else await e.decodeStep(ids[i]);
        const c = compareLogits(await e.readLogits(), want.subarray(i * V, (i + 1) * V), V);
        expect(c.maxErr, `position ${i}`).toBeLessThanOrEqual(TOL * c.maxRef);
        expect(c.flips(2 * c.maxErr), `position ${i}`).toEqual([]);
        worst = Math.max(worst, c.maxErr / c.maxRef);
      }
      console.log(
        `${model} ${variant} decode: ${ids.length} steps, ${e.decodeDispatches} dispatches per step, max err ${worst.toExponential(2)} of max |golden|`,
      );
    }, 300_000);

    it.skipIf(!withGreedy)(
      'greedy: the golden continuation through decodeStep and the decode loop',
      async () => {
        const e = await get();
        const prompt = Array.from(golden.get('greedy.prompt_ids')!.data);
        const want = Array.from(golden.get('greedy.new_ids')!.data);
        e.truncate(0);
        await e.prefill(prompt.slice(0, 1));
        for (const id of prompt.slice(1)) await e.decodeStep(id);
        const first = await e.argmax();
        expect(first).toBe(want[0]);
        const got = [first];
        for (let i = 1; i < want.length; i++) {
          await e.decodeStep(got[i - 1]);
          got.push(await e.argmax());
        }
        expect(got).toEqual(want);
        // The engine's decode loop (greedy: ids kept on the GPU, steps recorded ahead), from the prompt's logits.
        e.truncate(prompt.length - 1);
        await e.decodeStep(prompt[prompt.length - 1]);
        const looped: number[] = [];
        for await (const id of e.decode({ maxTokens: want.length })) looped.push(id);
        expect(looped).toEqual(want);
      },
      300_000,
    );
  });
}
