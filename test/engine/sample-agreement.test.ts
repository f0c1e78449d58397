/**
 * SampleAttention at model level (issue 6, "Model level"): dense prefill vs
 * SampleAttention prefill of whole models on real WebGPU, all-position
 * logits compared. Bars: top-1 agreement over all positions >= 98% at
 * alpha 0.95 and >= 99% at alpha 0.99; on the structured synthetic model also
 * the first 16 greedy tokens (prefill, then KV-cache decode) identical.
 *  - stories260k (real pretrained weights, f32, context 512): a story of
 *    300-512 tokens encoded with its tokenizer, minSparseLen lowered to 64.
 *  - the structured synthetic model (bench/synthetic, tiny dims) at 1024 tokens
 *    of syntheticPrompt (sink, stripes, a needle and question rows), minSparseLen
 *    lowered to the prompt's length, the whole prompt in one chunk. (At 2048
 *    tokens and the default minSparseLen the case took 180 s of CI's 2 cores:
 *    dense attention is quadratic, and the sparse path runs the same kernels at 1024.)
 * Other options stay at DEFAULT_ATTENTION. Figures are printed for the report.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type DenseEngine, type SparsityReport } from '../../src/engine/index.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { syntheticPrompt } from '../../bench/synthetic/prompt.ts';
import { structuredSource } from '../../bench/synthetic/source.ts';
import { PRESETS } from '../../bench/synthetic/structured.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import { compareLogits, prefillAndGreedy } from '../helpers/agreement.ts';
import { STORY } from '../helpers/story.ts';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';

const BARS = [{ alpha: 0.95, top1: 0.98 }, { alpha: 0.99, top1: 0.99 }] as const;

/**
 * stories260k at alpha 0.95. The default selection 'auto' is 'topup' at these
 * lengths (every head topped up to alpha; 'group' from 16384 tokens on): 98.33%
 * at 480 tokens. Over eight story lengths (bench/agreement.ts, BENCHMARKS.md
 * "Column selection under GQA"): topup 98.42% mean (2 of 8 lengths under 98%:
 * 64 sampled rows are a noisy estimate this short), topup with 128 sampled rows
 * 98.06-99.39% (none under), the long-prompt rule 'group' 97.56% (97.92% here).
 * So the bar is asserted at the defaults and with 128 sampled rows; 'group' is
 * asserted against its measured level (a regression guard, not the issue's bar).
 */
const STORIES_095 = { minSampleRows: 128 };
const STORIES_095_GROUP = { selection: 'group' as const };
const STORIES_095_GROUP_FLOOR = 0.975;


function sparsityLine(s: SparsityReport | undefined): string {
  if (!s) return 'no sparsity report';
  const cra = s.heads.length ? s.heads.reduce((a, h) => a + h.cra, 0) / s.heads.length : NaN;
  return `mode ${s.mode}, ${s.heads.length} heads, mean area ${s.meanAreaFraction.toFixed(3)}, mean sampled CRA ${cra.toFixed(4)}`;
}

describe('SampleAttention vs dense prefill at model level (Dawn)', () => {
  let engine: DenseEngine | undefined;
  afterAll(() => engine?.destroy());

  it('stories260k (real weights): top-1 agreement over a 300-512 token story', async () => {
    const ctx = await testGpu();
    const dir = `${FIXTURES}stories260k`;
    const tok = await loadTokenizer(nodeSource(dir));
    const ids = tok.encode(STORY, { bos: true }).slice(0, 480);
    expect(ids.length).toBeGreaterThanOrEqual(300);
    engine = await loadEngine(ctx, dir, { weights: 'f32', kvDtype: 'f32', contextLength: 512, prefillChunk: 512 });
    try {
      const V = engine.spec.vocabSize;
      const dense = await prefillAndGreedy(engine, ids, 0, { attention: { attention: 'dense' } });
      const runs = [
        { ...BARS[0], extra: {}, floor: BARS[0].top1 },
        { ...BARS[0], extra: STORIES_095, floor: BARS[0].top1 },
        { ...BARS[0], extra: STORIES_095_GROUP, floor: STORIES_095_GROUP_FLOOR },
        { ...BARS[1], extra: {}, floor: BARS[1].top1 },
      ];
      for (const bar of runs) {
        const sample = await prefillAndGreedy(engine, ids, 0, { attention: { attention: 'sample', alpha: bar.alpha, minSparseLen: 64, ...bar.extra } });
        expect(sample.sparsity?.mode).toBe('sample');
        const a = compareLogits(dense.logits, sample.logits, V);
        console.log(`stories260k S=${ids.length} alpha ${bar.alpha} ${JSON.stringify(bar.extra)}: top-1 ${(100 * a.top1).toFixed(2)}% (${a.rows - Math.round(a.top1 * a.rows)} rows differ${a.mismatches.length ? ` at ${a.mismatches.join(',')}` : ''}), max |dlogit| ${a.maxAbsDiff.toFixed(4)}; ${sparsityLine(sample.sparsity)}`);
        expect(Number.isFinite(a.maxAbsDiff)).toBe(true);
        expect(a.top1, `alpha ${bar.alpha} ${JSON.stringify(bar.extra)}`).toBeGreaterThanOrEqual(bar.floor);
      }
    } finally {
      engine.destroy();
      engine = undefined;
    }
  }, 120_000);

  it('structured synthetic model at 1024 tokens: top-1 agreement and the first 16 greedy tokens', async () => {
    const ctx = await testGpu();
    const S = 1024, STEPS = 16;
    // Narrower than PRESETS['internlm2-tiny'] (2 heads, 1 KV head) to keep dense 2K prefill affordable on SwiftShader.
    const src = structuredSource({ ...PRESETS['internlm2-tiny'], dim: 128, nHeads: 2, nKvHeads: 1, ffnDim: 256, dtype: 'F32', seed: 21, contextLength: S + STEPS });
    engine = await loadEngine(ctx, src, { weights: 'f32', kvDtype: 'f32', contextLength: S + STEPS, prefillChunk: S });
    try {
      const V = engine.spec.vocabSize;
      const prompt = syntheticPrompt({ seqLen: S, vocabSize: V, needles: 2, stripeEvery: 64, seed: 8 });
      const ids = Array.from(prompt.ids);
      const dense = await prefillAndGreedy(engine, ids, STEPS, { attention: { attention: 'dense' } });
      const kinds = Array.from({ length: 2 * 2 }, (_, k) => src.weights.plan(k >> 1, k & 1).kind);
      console.log(`structured: head kinds ${kinds.join(',')}; dense greedy ${dense.greedy.join(',')}; needle successor ${src.weights.sigma(ids[prompt.needles[0]])}`);
      for (const bar of BARS) {
        const sample = await prefillAndGreedy(engine, ids, STEPS, { attention: { attention: 'sample', alpha: bar.alpha, minSparseLen: S } });
        expect(sample.sparsity?.mode).toBe('sample');
        const a = compareLogits(dense.logits, sample.logits, V);
        console.log(`structured internlm2-tiny S=${S} alpha ${bar.alpha}: top-1 ${(100 * a.top1).toFixed(2)}%, max |dlogit| ${a.maxAbsDiff.toFixed(4)}, greedy ${sample.greedy.filter((t, k) => t === dense.greedy[k]).length}/${STEPS} same; ${sparsityLine(sample.sparsity)}; dense ${dense.ms.toFixed(0)} ms, sample ${sample.ms.toFixed(0)} ms`);
        expect(sample.sparsity!.meanAreaFraction).toBeLessThan(1);
        expect(a.top1, `alpha ${bar.alpha}`).toBeGreaterThanOrEqual(bar.top1);
        expect(sample.greedy, `alpha ${bar.alpha}`).toEqual(dense.greedy);
      }
    } finally {
      engine.destroy();
      engine = undefined;
    }
  }, 120_000);
});
