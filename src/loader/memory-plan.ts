/**
 * Memory plan: bytes for weights (per format, exactly what loadWeights
 * allocates: same layout code), KV cache and activations, checked against
 * the adapter's limits and an optional budget before anything is allocated.
 *
 * KV cache (engine/types.ts layout, K and V per layer [nKvHeads, capacity, headDim]):
 *   kvCacheBytes = contextLength * nLayers * 2 * nKvHeads * headDim * (4 | 2)
 *
 * Activations: an upper bound for one prefill chunk of T = min(prefillChunk,
 * contextLength) rows, all f32, counting every per-chunk buffer a layer needs
 * alive at once (the engine reuses them across layers):
 *   x, xNorm, attnOut(wo), ffnOut      4 * T * dim
 *   qkv                                T * (nHeads + 2 nKvHeads) * headDim
 *   attention context (before wo)      T * nHeads * headDim
 *   gateUp, act                        T * 3 * ffnDim
 *   logits (every row, for tests)      T * vocabSize
 *   SampleAttention scratch            (2 nHeads + 2 nKvHeads) * contextLength (column scores per
 *                                      head and per KV group, selected-column lists, src/attention)
 * The flash kernels never hold a score matrix, so no buffer grows with
 * T * contextLength (an earlier plan counted one, which capped the context
 * at 130816 positions for 4096-row chunks under a 2 GiB binding limit).
 * times 4 bytes. Decode (T = 1) is always below this.
 *
 * Dequantization scratch (q4 / q8 weights, prefill chunks of at least
 * prefillDequantMinRows rows, kernels/dequant.ts): the largest per-layer
 * matrix expanded to f16 (or f32), at most one storage binding.
 */
import { GpuLimitError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { TensorRecipe, WeightPlan } from '../../models/index.ts';
import { DEFAULT_DEQUANT_MIN_ROWS, dequantScratchBytes } from '../../kernels/dequant.ts';
import { DEFAULT_KV_DTYPE, DEFAULT_WEIGHTS, defaultPrefillChunk } from '../defaults.ts';
import { checkFormatOptions, layoutBytes, layoutFor, type FormatOptions, type LoadFormat, type WeightLayout } from './layout.ts';

export interface MemoryPlanOptions extends FormatOptions {
  /** Context to reserve KV cache for (default: the model's contextLength). */
  contextLength?: number;
  /** KV cache dtype (default f16, as the engine's: src/defaults.ts). */
  kvDtype?: 'f16' | 'f32';
  /** Prefill chunk rows (default: the engine's, defaultPrefillChunk in src/defaults.ts). */
  prefillChunk?: number;
  /** Optional cap on total bytes (e.g. what the app wants to spend). */
  budgetBytes?: number;
  /** LinearOptions.prefillDequantMinRows the engine will run with (default: theirs). */
  prefillDequantMinRows?: number;
}

export interface PlanLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export interface MemoryPlan {
  format: LoadFormat;
  contextLength: number;
  kvDtype: 'f16' | 'f32';
  prefillChunk: number;
  weightsBytes: number;
  kvCacheBytes: number;
  activationBytes: number;
  /** The q4 / q8 prefill dequantization scratch (0 when prefills do not expand weights). */
  dequantScratchBytes: number;
  totalBytes: number;
  /** Largest single buffer of the plan (a weight part, a KV layer buffer, an activation buffer). */
  largestBufferBytes: number;
  tensors: WeightLayout[];
  notes: string[];
}

export function activationBytes(spec: ModelSpec, chunk: number, contextLength: number): { total: number; largest: number } {
  const T = Math.min(chunk, contextLength);
  const bufs = [
    4 * T * spec.dim,
    T * (spec.nHeads + 2 * spec.nKvHeads) * spec.headDim,
    T * spec.nHeads * spec.headDim,
    T * 3 * spec.ffnDim,
    T * spec.vocabSize,
    (2 * spec.nHeads + 2 * spec.nKvHeads) * contextLength,
  ].map((n) => n * 4);
  const largest = Math.max(T * 2 * spec.ffnDim, T * spec.vocabSize, Math.max(spec.nHeads, spec.nKvHeads) * (contextLength + 3)) * 4;
  return { total: bufs.reduce((a, b) => a + b, 0), largest };
}

export function kvCacheBytes(spec: ModelSpec, contextLength: number, kvDtype: 'f16' | 'f32'): number {
  return contextLength * spec.nLayers * 2 * spec.nKvHeads * spec.headDim * (kvDtype === 'f16' ? 2 : 4);
}

function recipesOf(p: WeightPlan | TensorRecipe[]): TensorRecipe[] {
  return Array.isArray(p) ? p : p.recipes;
}

/** Computes the plan (never throws for size; see checkPlan). */
export function planMemory(spec: ModelSpec, weights: WeightPlan | TensorRecipe[], limits: PlanLimits, o: MemoryPlanOptions = {}): MemoryPlan {
  checkFormatOptions(o);
  const format = o.format ?? DEFAULT_WEIGHTS;
  const contextLength = o.contextLength ?? spec.contextLength;
  const kvDtype = o.kvDtype ?? DEFAULT_KV_DTYPE;
  const prefillChunk = o.prefillChunk ?? defaultPrefillChunk(spec, contextLength, limits.maxStorageBufferBindingSize);
  const maxPart = Math.min(o.maxPartBytes ?? Infinity, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const tensors = recipesOf(weights).map((r) => layoutFor(r.name, r.shape, o, maxPart));
  const weightsBytes = tensors.reduce((s, l) => s + layoutBytes(l), 0);
  const kv = kvCacheBytes(spec, contextLength, kvDtype);
  const act = activationBytes(spec, prefillChunk, contextLength);
  const kvLayerBuffer = kv / spec.nLayers / 2;
  const largestPart = Math.max(0, ...tensors.flatMap((l) => l.parts.map((p) => p.dataBytes)));
  const expands = Math.min(prefillChunk, contextLength) >= (o.prefillDequantMinRows ?? DEFAULT_DEQUANT_MIN_ROWS);
  const quantMatrices = tensors.filter((l) => l.name.startsWith('layers.') && l.shape.length === 2 && (l.format === 'q4' || l.format === 'q8'));
  const scratch = expands
    ? dequantScratchBytes(
        quantMatrices.map((l) => l.shape),
        Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize),
      )
    : 0;
  return {
    format,
    contextLength,
    kvDtype,
    prefillChunk,
    weightsBytes,
    kvCacheBytes: kv,
    activationBytes: act.total,
    dequantScratchBytes: scratch,
    totalBytes: weightsBytes + kv + act.total + scratch,
    largestBufferBytes: Math.max(largestPart, kvLayerBuffer, act.largest),
    tensors,
    notes: tensors.filter((l) => l.note).map((l) => `${l.name}: ${l.note}`),
  };
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * Throws GpuLimitError when the plan cannot fit: a KV layer buffer or an
 * activation buffer above maxStorageBufferBindingSize, or the total above the
 * budget. The message names the numbers and suggests a format/context that fits.
 */
export function checkPlan(spec: ModelSpec, weights: WeightPlan | TensorRecipe[], limits: PlanLimits, o: MemoryPlanOptions = {}): MemoryPlan {
  const plan = planMemory(spec, weights, limits, o);
  const bind = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const fits = (p: MemoryPlan) => p.largestBufferBytes <= bind && (o.budgetBytes === undefined || p.totalBytes <= o.budgetBytes);
  if (fits(plan)) return plan;
  const suggestion = suggest(spec, weights, limits, o, fits);
  const details = {
    weightsBytes: plan.weightsBytes,
    kvCacheBytes: plan.kvCacheBytes,
    activationBytes: plan.activationBytes,
    dequantScratchBytes: plan.dequantScratchBytes,
    totalBytes: plan.totalBytes,
    budgetBytes: o.budgetBytes,
    largestBufferBytes: plan.largestBufferBytes,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    format: plan.format,
    contextLength: plan.contextLength,
    suggestion,
  };
  const what =
    plan.largestBufferBytes > bind
      ? `a buffer of ${MiB(plan.largestBufferBytes)} (KV cache layer or activations at context ${plan.contextLength}) exceeds this GPU's storage binding limit of ${MiB(bind)}`
      : `needs ${MiB(plan.totalBytes)} (weights ${MiB(plan.weightsBytes)} in ${plan.format} + KV cache ${MiB(plan.kvCacheBytes)} for ${plan.contextLength} tokens + activations ${MiB(plan.activationBytes)}${plan.dequantScratchBytes ? ` + prefill dequantization scratch ${MiB(plan.dequantScratchBytes)}` : ''}) but the budget is ${MiB(o.budgetBytes!)}`;
  const hint = suggestion ? `; try ${suggestion.text}` : '; no format or context of at least 256 tokens fits';
  throw new GpuLimitError(`the model does not fit: ${what}${hint}`, details);
}

function suggest(spec: ModelSpec, weights: WeightPlan | TensorRecipe[], limits: PlanLimits, o: MemoryPlanOptions, fits: (p: MemoryPlan) => boolean) {
  const ctx = o.contextLength ?? spec.contextLength;
  const order: LoadFormat[] = ['f16', 'q8', 'q4'];
  for (const format of order) {
    if (format === (o.format ?? 'f16')) continue;
    if (order.indexOf(format) < order.indexOf(o.format ?? 'f16')) continue;
    if (fits(planMemory(spec, weights, limits, { ...o, format, groupSize: undefined })))
      return { format, contextLength: ctx, text: `--weights ${format} (format '${format}')` };
  }
  for (const format of order.slice(order.indexOf(o.format ?? 'f16'))) {
    // Largest context (a multiple of 256) that fits in this format.
    let lo = 0,
      hi = Math.floor(ctx / 256);
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(planMemory(spec, weights, limits, { ...o, format, groupSize: format === o.format ? o.groupSize : undefined, contextLength: mid * 256 })))
        lo = mid;
      else hi = mid - 1;
    }
    if (lo > 0) return { format, contextLength: lo * 256, text: `--weights ${format} --context ${lo * 256}` };
  }
  return undefined;
}

export function limitsOf(ctx: GpuContext): PlanLimits {
  return { maxBufferSize: ctx.limits.maxBufferSize, maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize };
}
