/**
 * Contracts between the engine (src/engine), the attention layer
 * (src/attention) and the generation API (src/api). Shapes use the names
 * of models/spec.ts; "rows" are token positions of the current chunk.
 */
import type { GpuContext } from '../gpu/device.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { SampleParams } from '../../kernels/sample.ts';
import type { KernelTier } from '../gpu/tier.ts';

export type { KvDtype, LayerKv } from '../../kernels/prepared.ts';
import type { KvDtype, LayerKv } from '../../kernels/prepared.ts';

export interface KvCacheInfo {
  dtype: KvDtype;
  capacity: number;
  nKvHeads: number;
  headDim: number;
  layers: LayerKv[];
}

/** SampleAttention parameters (../shared/SAMPLE_ATTENTION.md). */
export interface AttentionOptions {
  attention: 'dense' | 'sample';
  /** CRA target on the sampled rows. Default 0.95. */
  alpha: number;
  /** Window size as a fraction of the sequence length. Default 0.08. */
  windowRatio: number;
  /** Sampled query rows as a fraction of the sequence length. Default 0.05. */
  sampleRatio: number;
  /** Floor on the number of sampled rows. Default 64. */
  minSampleRows: number;
  /** Rows per sampled block. Default 4: more, smaller blocks spread the samples (planted S=2048, alpha 0.99: rel L2 0.080 -> 0.031). */
  sampleBlock: number;
  /** Prompt length (pos + rows of a chunk) below which prefill runs dense. Default 2048. */
  minSparseLen: number;
  /**
   * Per KV group: when stripes + window would cover at least this fraction of
   * the causal area, the group runs dense instead (HeadStats then report area 1,
   * every column selected, CRA 1). In (0, 1]; 1 never falls back. Default 0.85.
   * Optional (additive); absent means the default.
   */
  denseFallbackArea?: number;
  /**
   * Column selection rule under GQA:
   *  - 'group': one column set per KV group from the group's summed scores (the spec's GQA
   *    variant); the query heads share it and the sparse pass shares K/V tiles; fastest.
   *  - 'topup': the 'group' set, then each head still under alpha on its sampled rows gets its
   *    own smallest top-up, so every head reaches alpha; one shared set per group.
   *  - 'head': per query head (the spec's per-head rule).
   *  - 'auto' (default): 'topup' while the sequence (pos + rows of the chunk) is shorter than
   *    `topupBelow`, else 'group'. H100, 7B q4 TTFT: topup costs +2.3% at 4K, +2.5% at 8K,
   *    +7.3% at 16K, +11% at 32K over group (sampled CRA 0.98 vs 0.95); the attention op at
   *    128K 2.36x vs 4.03x over dense (BENCHMARKS.md "Column selection under GQA").
   * Optional (additive).
   */
  selection?: 'auto' | 'group' | 'topup' | 'head';
  /** Sequence length from which selection 'auto' uses 'group' instead of 'topup'. Default 16384. Optional (additive). */
  topupBelow?: number;
}

/** The defaults, with their evidence: src/defaults.ts. */
export { DEFAULT_ATTENTION } from '../defaults.ts';

/** Per layer and head statistics of one sparse prefill. */
export interface HeadStats {
  layer: number;
  head: number;
  /** |I|: columns selected outside the window. */
  selected: number;
  /** Window size w. */
  window: number;
  /** Fraction of the causal S x S area computed. */
  areaFraction: number;
  /** CRA reached on the sampled rows. */
  cra: number;
  /**
   * Optional (additive, for pictures such as the demo's heatmap): the
   * selected columns outside the window, histogrammed into COLUMN_BINS equal
   * bins over key positions [0, seqLen): bin b counts the selected columns c
   * with floor(c * COLUMN_BINS / seqLen) === b. Filled when
   * PrefillOptions.reportColumns is set (or whenever it costs nothing).
   */
  columnBins?: Uint16Array;
}

/** Number of bins of HeadStats.columnBins. */
export const COLUMN_BINS = 256;

export interface SparsityReport {
  mode: 'dense' | 'sample';
  seqLen: number;
  heads: HeadStats[];
  /** Mean areaFraction over layers and heads (1 for dense). */
  meanAreaFraction: number;
}

export interface PrefillOptions {
  attention?: Partial<AttentionOptions>;
  /** Return logits of every position (tests, `sieve logits`); default: last only. */
  allLogits?: boolean;
  /** Fill HeadStats.columnBins in the sparsity report (costs a small readback). */
  reportColumns?: boolean;
  signal?: AbortSignal;
}

export interface PrefillResult {
  /** [n, vocab] when allLogits, else undefined (last row stays on the GPU in `logits`). */
  logits?: Float32Array;
  sparsity?: SparsityReport;
  /** Milliseconds from call to the last row's logits being ready on the GPU. */
  ms: number;
}

/**
 * How the next token is chosen from the logits: greedy (the argmax) or sampled
 * (repetition penalty, temperature, top-k, top-p; kernels/sample.wgsl).
 */
export type TokenChoice = SampleParams;

/** Options of Engine.decode, the one decode loop (generate() and the benchmarks both run it). */
export interface DecodeOptions {
  /** Token choice (default greedy). */
  choice?: TokenChoice;
  /** Seed of the uniform draw behind sampled choices (one draw per token, greedy or not). Default 0. */
  seed?: number;
  /** Ids already in context, for the repetition penalty (usually the prompt). */
  history?: readonly number[];
  /** Tokens to yield at most (>= 1); the loop also ends when the cache is full. */
  maxTokens: number;
  /** Ids that end the loop: yielded, then the loop returns. */
  stopIds?: Iterable<number>;
  signal?: AbortSignal;
}

/** The engine as the API sees it. */
export interface Engine {
  readonly ctx: GpuContext;
  readonly spec: ModelSpec;
  /** Positions the KV cache can hold. */
  readonly contextLength: number;
  /** The kernel tier this engine runs (src/gpu/tier.ts; resolved at creation from the `kernels` option). */
  readonly kernelTier: KernelTier;
  /** Per-stage load times (ms) when the engine came from loadEngine. */
  loadTimes?: { readMs: number; uploadMs: number; compileMs: number; totalMs: number };
  /** Tokens currently in the KV cache. */
  readonly kvLength: number;
  /** Logits of the last processed position: [vocabSize] f32, on the GPU. */
  readonly logits: GPUBuffer;
  /** Appends `ids` at positions kvLength.. and computes the last position's logits. */
  prefill(ids: number[], opts?: PrefillOptions): Promise<PrefillResult>;
  /** Appends one token and computes its logits. */
  decodeStep(id: number): Promise<void>;
  /** Keeps only the first n cached positions (multi-turn reuse, abort). */
  truncate(n: number): void;
  /**
   * The decode loop: yields the token chosen from `logits`, then, when asked
   * for the next one, appends it to the cache (a decode step) and chooses again.
   * The cache always holds every yielded id but the last; a consumer may stop
   * at any point (break, return), and a failure leaves the cache at what is
   * known good. Greedy without a repetition penalty keeps the chosen ids on
   * the GPU and records steps ahead of the read-back.
   */
  decode(opts: DecodeOptions): AsyncGenerator<number, void, void>;
  /** Greedy pick from `logits` on the GPU; reads back one u32 (tests, one-off picks). */
  argmax(): Promise<number>;
  readLogits(): Promise<Float32Array>;
  /** Releases every GPU buffer the engine owns. */
  destroy(): void;
}

export type { Dispatch } from '../../kernels/prepared.ts';
