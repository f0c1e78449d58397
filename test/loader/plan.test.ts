import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { memSource, firstDiff } from './mem-source.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { readWeightF32, readRecipeF32 } from '../helpers/readback.ts';
import { checkPlan, kvCacheBytes, limitsOf, planMemory, type MemoryPlan, type MemoryPlanOptions, type PlanLimits } from '../../src/loader/memory-plan.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { TensorRecipe, WeightPlan } from '../../models/index.ts';
import { GpuLimitError } from '../../src/errors.ts';
import { BIG_LIMITS, INTERNLM2_7B, paperModel } from '../helpers/paper-model.ts';

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * The highest-quality format (f16, then q8, then q4) whose plan fits, with a
 * note saying why when it is not f16; throws checkPlan's GpuLimitError when
 * none fits. (Moved here from src/loader/memory-plan.ts: no load path uses it; its tests stay.)
 */
function fittingFormat(
  spec: ModelSpec,
  weights: WeightPlan | TensorRecipe[],
  limits: PlanLimits,
  o: MemoryPlanOptions = {},
): { plan: MemoryPlan; note?: string } {
  const f16 = planMemory(spec, weights, limits, { ...o, format: 'f16' });
  for (const format of ['f16', 'q8', 'q4'] as const) {
    try {
      const plan = checkPlan(spec, weights, limits, { ...o, format, groupSize: format === 'f16' ? undefined : o.groupSize });
      const note =
        format === 'f16'
          ? undefined
          : `f16 weights need ${MiB(f16.totalBytes)} in all, more than ${o.budgetBytes !== undefined ? `the budget of ${MiB(o.budgetBytes)}` : 'this GPU allows'}: loading ${format} (${MiB(plan.totalBytes)})`;
      return { plan, note };
    } catch (e) {
      if (!(e instanceof GpuLimitError) || format === 'q4') throw e;
    }
  }
  throw new Error('unreachable');
}

describe('memory plan', () => {
  it('InternLM2-7B: weights per format, KV cache 128 KiB per token (f16), embedding and LM head split at 128 MiB', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    expect(kvCacheBytes(spec, 1, 'f16')).toBe(128 * 1024);
    const f16 = planMemory(spec, plan, { maxBufferSize: 256 << 20, maxStorageBufferBindingSize: 128 << 20 }, { contextLength: 4096 });
    const head = f16.tensors.find((t) => t.name === 'lmHead')!;
    expect(head.parts.length).toBe(Math.ceil((92544 * 4096 * 2) / (128 << 20)));
    expect(head.parts.every((p) => p.dataBytes <= 128 << 20)).toBe(true);
    expect(f16.weightsBytes / 2 ** 30).toBeCloseTo(14.3, 0);
    const q4 = planMemory(spec, plan, BIG_LIMITS, { format: 'q4', contextLength: 4096 });
    // 4 bits + an f16 scale per 32 = 4.5 bits; norms f32
    expect(q4.weightsBytes / f16.weightsBytes).toBeGreaterThan(0.27);
    expect(q4.weightsBytes / f16.weightsBytes).toBeLessThan(0.3);
    expect(q4.kvCacheBytes).toBe(4096 * 128 * 1024);
  });

  // 512-row chunks: the figures below were set with the planner's old default chunk (now the engine's, up to 4096).
  it('over budget: GpuLimitError with the numbers and a suggestion that does fit', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    const budget = 10 * 2 ** 30;
    let err: GpuLimitError | undefined;
    try {
      checkPlan(spec, plan, BIG_LIMITS, { format: 'f16', contextLength: 4096, prefillChunk: 512, budgetBytes: budget });
    } catch (e) {
      err = e as GpuLimitError;
    }
    expect(err).toBeInstanceOf(GpuLimitError);
    expect(err!.message).toMatch(/needs .* MiB \(weights .* MiB in f16 \+ KV cache .* MiB for 4096 tokens .*budget is 10240\.0 MiB; try --weights q8/);
    const s = err!.details.suggestion as { format: 'q8'; contextLength: number };
    expect(planMemory(spec, plan, BIG_LIMITS, { format: s.format, contextLength: s.contextLength, prefillChunk: 512 }).totalBytes).toBeLessThanOrEqual(budget);
    // A budget where even q4 needs a shorter context.
    try {
      checkPlan(spec, plan, BIG_LIMITS, { format: 'q4', contextLength: 32768, prefillChunk: 512, budgetBytes: 6 * 2 ** 30 });
      throw new Error('should not fit');
    } catch (e) {
      expect((e as Error).message).toMatch(/try --weights q4 --context \d+/);
      const c = (e as GpuLimitError).details.suggestion as { contextLength: number };
      expect(c.contextLength % 256).toBe(0);
      expect(planMemory(spec, plan, BIG_LIMITS, { format: 'q4', contextLength: c.contextLength, prefillChunk: 512 }).totalBytes).toBeLessThanOrEqual(
        6 * 2 ** 30,
      );
      expect(planMemory(spec, plan, BIG_LIMITS, { format: 'q4', contextLength: c.contextLength + 256, prefillChunk: 512 }).totalBytes).toBeGreaterThan(
        6 * 2 ** 30,
      );
    }
  });

  it('fittingFormat keeps f16 when it fits and says why when it does not', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    expect(fittingFormat(spec, plan, BIG_LIMITS, { contextLength: 4096, prefillChunk: 512, budgetBytes: 40 * 2 ** 30 })).toMatchObject({
      plan: { format: 'f16' },
      note: undefined,
    });
    const q8 = fittingFormat(spec, plan, BIG_LIMITS, { contextLength: 4096, prefillChunk: 512, budgetBytes: 10 * 2 ** 30 });
    expect(q8.plan.format).toBe('q8');
    expect(q8.note).toMatch(/f16 weights need 15589\.0 MiB in all, more than the budget of 10240\.0 MiB: loading q8/);
    expect(fittingFormat(spec, plan, BIG_LIMITS, { contextLength: 4096, prefillChunk: 512, budgetBytes: 6 * 2 ** 30 }).plan.format).toBe('q4');
    expect(() => fittingFormat(spec, plan, BIG_LIMITS, { contextLength: 4096, prefillChunk: 512, budgetBytes: 2 * 2 ** 30 })).toThrow(GpuLimitError);
  });

  it('a 128K context with 4096-row chunks fits a 2 GiB binding limit (no buffer grows with chunk x context)', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    const limits = { maxBufferSize: 2 ** 40, maxStorageBufferBindingSize: 2 ** 31 - 4 };
    const p = checkPlan(spec, plan, limits, { format: 'q4', contextLength: 131072 + 64, prefillChunk: 4096 });
    // The largest buffer is the chunk's logits (4096 x vocab f32), not a 4096 x 131136 score matrix.
    expect(p.largestBufferBytes).toBe(4096 * spec.vocabSize * 4);
  });

  it('a KV layer buffer past the binding limit fails with a context suggestion', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    // One layer's K at 32768 tokens, f16: 8 * 32768 * 128 * 2 = 64 MiB.
    expect(() =>
      checkPlan(spec, plan, { maxBufferSize: 256 << 20, maxStorageBufferBindingSize: 32 << 20 }, { format: 'q4', contextLength: 32768, prefillChunk: 64 }),
    ).toThrow(/storage binding limit of 32\.0 MiB; try --weights q4 --context/);
  });

  it('fits: returns the plan; it equals what loadWeights allocates for every format', async () => {
    const ctx = await testGpu();
    const src = memSource({
      'config.json': readFileSync(`${FIXTURES}golden/chatglm2-tiny/config.json`),
      'model.safetensors': readFileSync(`${FIXTURES}golden/chatglm2-tiny/model.safetensors`),
    });
    const m = await readModel(src);
    for (const format of ['f32', 'f16', 'q8', 'q4'] as const) {
      const p = checkPlan(m.spec, m.plan, limitsOf(ctx), { format, contextLength: 256, budgetBytes: 64 << 20 });
      const before = liveBytes(ctx);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format });
      expect(liveBytes(ctx) - before).toBe(p.weightsBytes);
      releaseWeights(ctx, w.values());
    }
    // loadWeights also takes the checkpoint entries and maps them itself.
    const before = liveBytes(ctx);
    const w = await loadWeights(ctx, src, m.spec, m.checkpoint.entries);
    expect([...w.keys()]).toEqual(m.plan.recipes.map((r) => r.name));
    expect(liveBytes(ctx) - before).toBe(planMemory(m.spec, m.plan, limitsOf(ctx)).weightsBytes);
    releaseWeights(ctx, w.values());
  });
});

describe('f16 range check', () => {
  it('a tensor with values beyond f16 range is kept in f32 and reported', async () => {
    const ctx = await testGpu();
    const file = new Uint8Array(readFileSync(`${FIXTURES}stories260k/model.safetensors`));
    const src = memSource({ 'config.json': readFileSync(`${FIXTURES}stories260k/config.json`), 'model.safetensors': file });
    const m = await readModel(src);
    const wo = m.plan.recipes.find((r) => r.name === 'layers.2.wo')!.segments[0].entry;
    new DataView(file.buffer, file.byteOffset).setFloat32(wo.offset + 4 * 100, 1e6, true);
    const notes: string[] = [];
    const before = liveBytes(ctx);
    const progress: { bytesDone: number; bytesTotal: number }[] = [];
    const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f16', onNote: (n) => notes.push(n), onProgress: (p) => progress.push(p) });
    expect(progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1].bytesDone)).toBe(true);
    expect(progress.at(-1)!.bytesDone).toBe(progress.at(-1)!.bytesTotal);
    expect(w.keptF32).toEqual(['layers.2.wo']);
    expect(notes.join('\n')).toMatch(/layers\.2\.wo: values beyond the f16 range/);
    const g = w.get('layers.2.wo')!;
    expect(g.format).toBe('f32');
    const ref = await readRecipeF32(
      src,
      m.plan.recipes.find((r) => r.name === 'layers.2.wo')!,
    );
    expect(ref[100]).toBe(1e6);
    expect(firstDiff(await readWeightF32(ctx, g), ref)).toBe(-1);
    expect(w.get('layers.1.wo')!.format).toBe('f16');
    expect(liveBytes(ctx) - before).toBe(w.bytes);
    releaseWeights(ctx, w.values());
    expect(liveBytes(ctx)).toBe(before);
  });
});
