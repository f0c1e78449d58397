/**
 * The engine against the independent float64 references of the two families
 * (../shared/fixtures/golden): logits at every position of `short` and `long`,
 * and the greedy continuation through prefill + KV-cache decode.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { loadEngine, type DenseEngine } from '../../src/engine/index.ts';
import type { KvDtype } from '../../src/engine/types.ts';
import type { WeightFormat } from '../../src/loader/formats.ts';
import { compareLogits, readGolden } from './golden-file.ts';

// f32 is the golden comparison; f16 weights + f16 KV (internlm2, bf16 on disk) run `short` and the greedy path at the same bound.
const VARIANTS: { weights: WeightFormat; kv: KvDtype; tol: number; cases: string[] }[] = [
  { weights: 'f32', kv: 'f32', tol: 1e-2, cases: ['short', 'long'] },
  { weights: 'f16', kv: 'f16', tol: 1e-2, cases: ['short'] },
];
const F16_MODELS = ['internlm2-tiny'];

export function goldenCases(): void {
  for (const model of ['chatglm2-tiny', 'internlm2-tiny']) {
    const dir = `${FIXTURES}golden/${model}`;
    const golden = readGolden(`${dir}/golden.safetensors`);
    for (const v of VARIANTS.filter((x) => x.weights === 'f32' || F16_MODELS.includes(model))) {
      describe(`${model} weights ${v.weights}, KV ${v.kv} (Dawn)`, () => {
        let engine: DenseEngine | undefined;
        let before = 0;
        const get = async () => {
          if (!engine) {
            const ctx = await testGpu();
            before = liveBytes(ctx);
            engine = await loadEngine(ctx, dir, { weights: v.weights, kvDtype: v.kv, contextLength: 256, prefillChunk: 64, attention: { attention: 'dense' } });
          }
          return engine;
        };
        afterAll(() => {
          if (!engine) return;
          const ctx = engine.ctx;
          engine.destroy();
          expect(liveBytes(ctx)).toBe(before);
        });

        for (const which of v.cases) {
          it(`${which}: logits at every position within ${v.tol} x max|golden|`, async () => {
            const e = await get();
            e.truncate(0);
            const ids = Array.from(golden.get(`${which}.input_ids`)!.data);
            const want = golden.get(`${which}.logits`)!.data as Float32Array;
            const { logits } = await e.prefill(ids, { allLogits: true });
            const c = compareLogits(logits!, want, e.spec.vocabSize);
            console.log(
              `${model} ${v.weights}/${v.kv} ${which}: max err ${c.maxErr.toExponential(3)} (${(c.maxErr / c.maxRef).toExponential(2)} of max |golden| ${c.maxRef.toFixed(3)})`,
            );
            expect(c.maxErr).toBeLessThanOrEqual(v.tol * c.maxRef);
            expect(c.flips(2 * c.maxErr)).toEqual([]);
            // The last row also stays on the GPU as engine.logits.
            const last = await e.readLogits();
            expect(compareLogits(last, want.subarray(want.length - e.spec.vocabSize), e.spec.vocabSize).maxErr).toBeLessThanOrEqual(v.tol * c.maxRef);
          }, 300_000);
        }

        it('greedy: 24 tokens through prefill + KV-cache decode', async () => {
          const e = await get();
          e.truncate(0);
          const prompt = Array.from(golden.get('greedy.prompt_ids')!.data);
          const want = Array.from(golden.get('greedy.new_ids')!.data);
          await e.prefill(prompt);
          const got: number[] = [];
          for (let i = 0; i < want.length; i++) {
            const id = await e.argmax();
            got.push(id);
            if (i + 1 < want.length) await e.decodeStep(id);
          }
          expect(got).toEqual(want);
          expect(e.kvLength).toBe(prompt.length + want.length - 1);
        }, 300_000);
      });
    }
  }
}
