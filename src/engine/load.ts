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
import type { LoadProgress, StageCount } from '../api/types.ts';
import { layoutFor } from '../loader/layout.ts';
import { maxPartBytes } from '../loader/weights.ts';
import { precompile } from '../gpu/pipelines.ts';
import { resolveKernelTier, type KernelsOption } from '../gpu/tier.ts';
import { DEFAULT_ATTENTION, type AttentionOptions, type KvDtype } from './types.ts';
import { resolveAttentionOptions } from '../attention/index.ts';
import { checkTier, createEngine, engineCanSparse, enginePipelineSpecs, type DenseEngine, type EngineOptions, type WeightInfo } from './engine.ts';
import { DEFAULT_KERNELS, DEFAULT_KV_DTYPE, DEFAULT_WEIGHTS, defaultContextLength, defaultPrefillChunk } from '../defaults.ts';

export interface LoadEngineOptions {
  /** GPU weight format (default DEFAULT_WEIGHTS, f16; every default: src/defaults.ts). */
  weights?: WeightFormat;
  groupSize?: number;
  contextLength?: number;
  kvDtype?: KvDtype;
  prefillChunk?: number;
  attention?: Partial<AttentionOptions>;
  prefillKernel?: EngineOptions['prefillKernel'];
  /** Kernel tier: 'auto' (default) or a tier forced for comparison (EngineOptions.kernels, src/gpu/tier.ts). */
  kernels?: KernelsOption;
  /** Stage progress: bytes read, tensors uploaded, pipelines compiled (the compile runs during the upload). */
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Load tensors holding NaN/Inf (default false: a ModelFormatError naming the tensor). */
  allowNonFinite?: boolean;
  /** Called with the model's spec before any weight is read (e.g. to compare the tokenizer's vocabulary). */
  checkSpec?: (spec: ModelSpec) => void;
}

export async function loadEngine(ctx: GpuContext, source: SourceInput, o: LoadEngineOptions = {}): Promise<DenseEngine> {
  const t0 = performance.now();
  // The kernel tier first: a forced tier the device lacks fails before anything is read or allocated.
  const tier = resolveKernelTier(ctx, o.kernels ?? DEFAULT_KERNELS);
  const fs = openSource(source);
  const model = await readModel(fs);
  const { spec } = model;
  if (o.contextLength !== undefined && o.contextLength > spec.contextLength) {
    throw new InvalidOptionError(
      'contextLength',
      `${o.contextLength} is above the model's maximum of ${spec.contextLength} positions (config.json's max_position_embeddings / seq_length)`,
      { value: o.contextLength, max: spec.contextLength },
    );
  }
  o.checkSpec?.(spec);
  const contextLength = o.contextLength ?? defaultContextLength(spec);
  const kvDtype = o.kvDtype ?? DEFAULT_KV_DTYPE;
  const format = o.weights ?? DEFAULT_WEIGHTS;
  checkTier(tier, kvDtype);
  const prefillChunk = o.prefillChunk ?? defaultPrefillChunk(spec, contextLength, ctx.limits.maxStorageBufferBindingSize);
  checkPlan(spec, model.plan, limitsOf(ctx), { format, groupSize: o.groupSize, contextLength, kvDtype, prefillChunk });

  // Stages: read (bytes), upload (tensors), compile (pipelines), each timed from the load's start.
  const stages: LoadProgress['stages'] = {
    read: { done: 0, total: 0, ms: 0 },
    upload: { done: 0, total: model.plan.recipes.length, ms: 0 },
    compile: { done: 0, total: 0, ms: 0 },
  };
  const bytes = { file: '', bytesDone: 0, bytesTotal: 0 };
  const report = (stage: LoadProgress['stage'], c: Partial<StageCount>) => {
    Object.assign(stages[stage], c, { ms: performance.now() - t0 });
    o.onProgress?.({ stage, ...bytes, stages: { read: { ...stages.read }, upload: { ...stages.upload }, compile: { ...stages.compile } } });
  };
  // Every pipeline the engine will use, compiled while the weights stream in (formats as the loader will choose them).
  const maxPart = maxPartBytes(ctx, { format, groupSize: o.groupSize });
  const planned = new Map<string, WeightInfo>(
    model.plan.recipes.map((r) => {
      const l = layoutFor(r.name, r.shape, { format, groupSize: o.groupSize }, maxPart);
      return [r.name, { format: l.format, groupSize: l.groupSize, shape: r.shape, parts: l.parts.length }];
    }),
  );
  const sparse = engineCanSparse(resolveAttentionOptions(o.attention ?? {}, DEFAULT_ATTENTION), contextLength);
  const specs = enginePipelineSpecs(ctx, spec, planned, { prefillChunk, kvDtype, prefillKernel: o.prefillKernel, sparse, tier });
  const compiling = precompile(ctx, specs, (p) => report('compile', { done: p.done, total: p.total }));
  compiling.catch(() => undefined); // surfaced below
  let weights;
  try {
    weights = await loadWeights(ctx, fs, spec, model.plan, {
      format,
      groupSize: o.groupSize,
      signal: o.signal,
      allowNonFinite: o.allowNonFinite,
      onProgress: (p) => {
        Object.assign(bytes, p);
        report('read', { done: p.bytesDone, total: p.bytesTotal });
      },
      onTensor: (done, total) => report('upload', { done, total }),
    });
  } catch (e) {
    await compiling.catch(() => undefined);
    throw e;
  }
  const readMs = stages.read.ms,
    uploadMs = performance.now() - t0;
  try {
    await compiling;
    const engine = await createEngine(ctx, {
      spec,
      weights,
      contextLength,
      kvDtype,
      prefillChunk,
      attention: o.attention,
      prefillKernel: o.prefillKernel,
      kernels: tier,
      // (the engine's own list: the same pipelines, plus any for weights the loader kept in f32)
      onCompile: (p) => {
        if (p.total > stages.compile.total) report('compile', { done: stages.compile.done + p.done, total: stages.compile.total + p.total });
      },
    });
    const totalMs = performance.now() - t0;
    engine.loadTimes = { readMs, uploadMs, compileMs: stages.compile.ms, totalMs };
    return engine;
  } catch (e) {
    releaseWeights(ctx, weights.values());
    throw e;
  }
}
