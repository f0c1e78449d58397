/**
 * loadEngine: a checkpoint folder -> a DenseEngine, through the loader
 * (config.json -> ModelSpec, memory plan checked against the adapter before
 * anything is allocated, weights streamed to the GPU). Nothing stays on the
 * GPU when any step fails.
 */
import type { GpuContext } from '../gpu/device.ts';
import { openSource, type SourceInput } from '../loader/sources.ts';
import { readModel } from '../loader/model.ts';
import { loadWeights, releaseWeights } from '../loader/weights.ts';
import { checkPlan, limitsOf } from '../loader/memory-plan.ts';
import type { WeightFormat } from '../loader/formats.ts';
import type { ByteProgress } from '../loader/url-source.ts';
import type { AttentionOptions, KvDtype } from './types.ts';
import { createEngine, type DenseEngine, type EngineOptions } from './engine.ts';
import { DEFAULT_KV_DTYPE, DEFAULT_WEIGHTS, defaultContextLength, defaultPrefillChunk } from '../defaults.ts';

export interface LoadEngineOptions {
  /** GPU weight format (default DEFAULT_WEIGHTS, f16; every default: src/defaults.ts). */
  weights?: WeightFormat;
  groupSize?: number;
  contextLength?: number;
  kvDtype?: KvDtype;
  prefillChunk?: number;
  attention?: Partial<AttentionOptions>;
  prefillKernel?: EngineOptions['prefillKernel'];
  onProgress?: (p: ByteProgress) => void;
  signal?: AbortSignal;
}

export async function loadEngine(ctx: GpuContext, source: SourceInput, o: LoadEngineOptions = {}): Promise<DenseEngine> {
  const fs = openSource(source);
  const model = await readModel(fs);
  const { spec } = model;
  const contextLength = o.contextLength ?? defaultContextLength(spec);
  const kvDtype = o.kvDtype ?? DEFAULT_KV_DTYPE;
  const format = o.weights ?? DEFAULT_WEIGHTS;
  const prefillChunk = o.prefillChunk ?? defaultPrefillChunk(spec, contextLength, ctx.limits.maxStorageBufferBindingSize);
  checkPlan(spec, model.plan, limitsOf(ctx), { format, groupSize: o.groupSize, contextLength, kvDtype, prefillChunk });
  const weights = await loadWeights(ctx, fs, spec, model.plan, { format, groupSize: o.groupSize, onProgress: o.onProgress, signal: o.signal });
  try {
    return await createEngine(ctx, {
      spec, weights, contextLength, kvDtype, prefillChunk, attention: o.attention, prefillKernel: o.prefillKernel,
    });
  } catch (e) {
    releaseWeights(ctx, weights.values());
    throw e;
  }
}
