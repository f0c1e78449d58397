/**
 * Every default of the engine and the generation API, in one place, each with
 * the evidence for it. createEngine, loadEngine, loadModel (src/api), the CLI
 * and the <sieve-chat> component read these; comments elsewhere point here
 * instead of repeating a value. Kernel tunables (tile shapes, presets) stay
 * with their kernels.
 */
import type { ModelSpec } from '../models/spec.ts';
import type { WeightFormat } from './loader/formats.ts';
import type { AttentionOptions, KvDtype } from './engine/types.ts';
import type { KernelsOption } from './gpu/tier.ts';

/**
 * GPU weight format: f16. Half the bytes of f32, lossless for f16
 * checkpoints (bf16 ones are rounded to f16 at load); q4 / q8 are opt-in
 * (smaller and faster to decode, lossy). loadEngine has defaulted to f16
 * since the first engine commit (945cc24).
 */
export const DEFAULT_WEIGHTS: WeightFormat = 'f16';

/**
 * Kernel tier: 'auto', the fastest tier the device supports (src/gpu/tier.ts
 * resolveKernelTier: 'tensor' where the device has f16 subgroup matrices, else
 * 'f32' until the 'f16' tier lands). Every tier is held to the f32 tier by
 * bench/conformance.ts (golden logits within 1% of max |logit|, stories260k greedy
 * text identical, top-1 agreement >= 99.5%), the bars of issue 17; a forced tier
 * is for comparisons.
 */
export const DEFAULT_KERNELS: KernelsOption = 'auto';

/**
 * KV cache element type: f16. Half the KV memory of f32 (a 32K context of the
 * 7B shape: 4 GiB instead of 8); every engine and TTFT figure in BENCHMARKS.md
 * ran with KV f16, and the model-level agreement bars hold with it.
 * (createEngine defaulted to f32 until issue 16; loadEngine to f16 since 945cc24.)
 */
export const DEFAULT_KV_DTYPE: KvDtype = 'f16';

/**
 * KV cache positions when none is asked for: the model's context, at most
 * 4096 (a KV cache for a 32K context is asked for explicitly, as the TTFT
 * harness does; the memory plan then checks it against the adapter).
 */
export const MAX_DEFAULT_CONTEXT = 4096;

export function defaultContextLength(spec: Pick<ModelSpec, 'contextLength'>): number {
  return Math.min(spec.contextLength, MAX_DEFAULT_CONTEXT);
}

/**
 * Rows per prefill chunk when none is asked for: up to 4096. BENCHMARKS.md
 * "TTFT in Chromium (headless shell) on the H100" (first session; commit
 * ff110c0): 4096-row chunks made a 32K prefill of the InternLM2-1.8B shape
 * 1.4x faster dense and 2.3x faster with SampleAttention than 512-row chunks
 * (bigger matmuls; sampling and selection run once per chunk). Fewer rows when
 * the widest activation row (the FFN's) times the rows would pass the
 * adapter's storage-binding limit, and never more than the context.
 */
export const MAX_DEFAULT_PREFILL_CHUNK = 4096;

export function defaultPrefillChunk(spec: ModelSpec, contextLength: number, maxBindingBytes: number): number {
  const widest = Math.max(spec.ffnDim, (spec.nHeads + 2 * spec.nKvHeads) * spec.headDim, spec.dim) * 4;
  return Math.max(1, Math.min(MAX_DEFAULT_PREFILL_CHUNK, contextLength, Math.floor(maxBindingBytes / widest)));
}

/**
 * Prefill attention (../shared/SAMPLE_ATTENTION.md; AttentionOptions in
 * types.ts documents each field). Evidence:
 *  - attention 'sample', alpha 0.95, windowRatio 0.08, sampleRatio 0.05: the
 *    paper's settings; model-level top-1 agreement >= 98% at these values
 *    (test/engine/sample-agreement.test.ts, BENCHMARKS.md "Column selection under GQA").
 *  - minSampleRows 64: the paper's floor; sampleBlock 4: on planted Q/K at
 *    S=2048, alpha 0.99, 4-row blocks cut the relative L2 error from 0.080 to 0.031.
 *  - minSparseLen 2048 (set in 84d3973, the crossover the spec asks for): the sparse
 *    op is 2.8x faster than dense already at 4K (BENCHMARKS.md "Attention op at the
 *    third session's defaults") and 7B TTFT at 4K is 0.90x of dense; below 2K a
 *    prefill is a few ms either way. Not re-measured between 2K and 4K.
 *  - denseFallbackArea 0.85 (80ad874): a group whose stripes + window would cover
 *    most of the causal area runs dense, which is cheaper at that density.
 *  - selection 'auto' with topupBelow 16384: 'topup' costs +2.3% TTFT at 4K and
 *    +11% at 32K over 'group' for sampled CRA 0.98 vs 0.95 (BENCHMARKS.md
 *    "Column selection under GQA").
 */
export const DEFAULT_ATTENTION: AttentionOptions = {
  attention: 'sample',
  alpha: 0.95,
  windowRatio: 0.08,
  sampleRatio: 0.05,
  minSampleRows: 64,
  sampleBlock: 4,
  minSparseLen: 2048,
  denseFallbackArea: 0.85,
  selection: 'auto',
  topupBelow: 16384,
};

/**
 * Decode step layout: 'fused' (norms, residual adds, RoPE and the KV write in
 * the projections' epilogues). BENCHMARKS.md "Decode plans and matrix-vector
 * configs" (H100 09:30): 7B q4 greedy 201 tok/s fused vs 184 plain, 1.8B 460 vs 419.
 */
export const DEFAULT_DECODE_VARIANT = 'fused' as const;

/** Generation (src/api): the OpenAI defaults (temperature 1, top-p 1), no top-k, no penalty. */
export const DEFAULT_GENERATE = {
  /** New tokens at most: enough for a chat answer, bounded so a runaway model ends. */
  maxTokens: 256,
  temperature: 1,
  topP: 1,
  /** 0: off. */
  topK: 0,
  /** 1: off. */
  repetitionPenalty: 1,
} as const;
