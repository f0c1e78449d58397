/**
 * End to end: the PyTorch .bin folders run through readModel -> loadEngine
 * -> prefill. single-fp16 holds the golden weights exactly and gives the
 * golden logits of chatglm2-tiny within the golden tolerance (max |logit -
 * golden| <= 1e-2 x max |golden| at every position). sharded-bf16 holds those
 * weights rounded to bf16 (exactly round-to-nearest-even of every value: see
 * load.test.ts); the fixture's attention is sharp on purpose, so that
 * rounding alone moves the logits by ~4e-2 x max |golden|: it is held to
 * 6e-2 and to identical argmax wherever the golden top-2 gap exceeds twice
 * the error.
 */
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../src/engine/index.ts';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { compareLogits, readGolden } from '../engine/golden-file.ts';

const golden = readGolden(`${FIXTURES}golden/chatglm2-tiny/golden.safetensors`);

describe('PyTorch checkpoints: golden logits (Dawn)', () => {
  for (const [dir, tol, cases] of [
    ['single-fp16', 1e-2, ['short']],
    ['sharded-bf16', 6e-2, ['short']],
  ] as const) {
    it(`${dir}: ${cases.join(' and ')} within ${tol} x max|golden|`, async () => {
      const ctx = await testGpu();
      const before = liveBytes(ctx);
      const e = await loadEngine(ctx, `${FIXTURES}pytorch/${dir}`, {
        weights: 'f32',
        kvDtype: 'f32',
        contextLength: 256,
        prefillChunk: 64,
        attention: { attention: 'dense' },
      });
      try {
        for (const which of cases) {
          e.truncate(0);
          const ids = Array.from(golden.get(`${which}.input_ids`)!.data);
          const want = golden.get(`${which}.logits`)!.data as Float32Array;
          const { logits } = await e.prefill(ids, { allLogits: true });
          const c = compareLogits(logits!, want, e.spec.vocabSize);
          console.log(`pytorch ${dir} ${which}: max err ${(c.maxErr / c.maxRef).toExponential(2)} of max |golden|`);
          expect(c.maxErr).toBeLessThanOrEqual(tol * c.maxRef);
          expect(c.flips(2 * c.maxErr)).toEqual([]);
        }
      } finally {
        e.destroy();
      }
      expect(liveBytes(ctx)).toBe(before);
    });
  }
});
