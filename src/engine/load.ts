/**
 * loadEngine: a checkpoint folder -> a DenseEngine, through the loader
 * (config.json -> ModelSpec, memory plan checked against the adapter before
 * anything is allocated, weights streamed to the GPU). Nothing stays on the
 * GPU when any step fails.
 */
import { InvalidOptionError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { ModelSpec } from '../../models/spec.ts';
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
  /** Load tensors holding NaN/Inf (default false: a ModelFormatError naming the tensor). */
  allowNonFinite?: boolean;
  /** Called with the model's spec before any weight is read (e.g. to compare the tokenizer's vocabulary). */
  checkSpec?: (spec: ModelSpec) => void;
}

export async function loadEngine(ctx: GpuContext, source: SourceInput, o: LoadEngineOptions = {}): Promise<DenseEngine> {
  const fs = openSource(source);
  const model = await readModel(fs);
  const { spec } = model;
  if (o.contextLength !== undefined && o.contextLength > spec.contextLength) {
    throw new InvalidOptionError('contextLength', `${o.contextLength} is above the model's maximum of ${spec.contextLength} positions (config.json's max_position_embeddings / seq_length)`, { value: o.contextLength, max: spec.contextLength });
  }
  o.checkSpec?.(spec);
  const contextLength = o.contextLength ?? defaultContextLength(spec);
  const kvDtype = o.kvDtype ?? DEFAULT_KV_DTYPE;
  const format = o.weights ?? DEFAULT_WEIGHTS;
  const prefillChunk = o.prefillChunk ?? defaultPrefillChunk(spec, contextLength, ctx.limits.maxStorageBufferBindingSize);
  checkPlan(spec, model.plan, limitsOf(ctx), { format, groupSize: o.groupSize, contextLength, kvDtype, prefillChunk });
  const weights = await loadWeights(ctx, fs, spec, model.plan, { format, groupSize: o.groupSize, onProgress: o.onProgress, signal: o.signal, allowNonFinite: o.allowNonFinite });
  try {
    return await createEngine(ctx, {
      spec, weights, contextLength, kvDtype, prefillChunk, attention: o.attention, prefillKernel: o.prefillKernel,
    });
  } catch (e) {
    releaseWeights(ctx, weights.values());
    throw e;
  }
}
