/**
 * Public types of the generation API: what application code passes to
 * loadModel / generate / chat.completions.create and what it gets back. The
 * in-page engine (src/api/engine.ts) and the Web Worker engine
 * (src/worker/client.ts) implement the same SieveEngine interface.
 */
import type { AttentionOptions, HeadStats, KvDtype, SparsityReport } from '../engine/types.ts';
import type { WeightFormat } from '../loader/formats.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { KernelsOption, KernelTier } from '../gpu/tier.ts';

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Progress of one load stage: units done of total, and ms since the stage began. */
export interface StageCount {
  done: number;
  total: number;
  ms: number;
}
/** Load progress: the stage this event reports, the weight bytes read so far, and every stage's counts. */
export interface LoadProgress {
  /** which stage this event reports: weights read/downloaded (bytes), uploaded/quantized (tensors), pipelines compiled */
  stage: 'read' | 'upload' | 'compile';
  file: string;
  bytesDone: number;
  bytesTotal: number; // unchanged: weight bytes read, file being read
  stages: { read: StageCount; upload: StageCount; compile: StageCount };
}

/** Per-stage load times (ms): the last weight byte read, the last tensor uploaded, all pipelines compiled, the whole load. */
export interface LoadTimes {
  readMs: number;
  uploadMs: number;
  compileMs: number;
  totalMs: number;
}

/** Every default below, with the evidence for it: src/defaults.ts. */
export interface LoadOptions {
  /** GPU weight format; default f16. */
  weights?: WeightFormat;
  /** KV cache positions; default min(model context, 4096). */
  contextLength?: number;
  /** KV cache element type; default f16. */
  kvDtype?: KvDtype;
  /**
   * Rows per prefill chunk; default up to 4096 (fewer when the context is shorter or a chunk's widest
   * activation would pass the adapter's binding limit). Activations are sized for it; larger chunks make bigger matmuls.
   */
  prefillChunk?: number;
  /** SampleAttention parameters for prefill (DEFAULT_ATTENTION otherwise). */
  attention?: Partial<AttentionOptions>;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Use this device instead of creating one (tests); unload() then leaves the device alive. */
  gpu?: GpuContext;
  /** Model id reported by chat.completions (default: the source's name). */
  modelId?: string;
  /**
   * Additive: keep downloaded weight files in the browser's Cache API (URL
   * sources; default true). The TTFT harness turns it off: its synthetic
   * checkpoints are made on the fly and a fresh profile gains nothing.
   */
  cache?: boolean;
  /**
   * Let special-token strings inside chat message content (`<|im_start|>`,
   * `</s>`...) become special tokens. Default false: message content is
   * encoded as text, and only the chat template's own markup yields specials.
   */
  allowSpecialTokens?: boolean;
  /** Load weights holding NaN or Inf values (default false: refused with a ModelFormatError naming the tensor). */
  allowNonFinite?: boolean;
  /**
   * Kernel tier (src/gpu/tier.ts): 'auto' (default: the fastest the device supports), or 'f32',
   * 'f16', 'tensor' forced for comparison; a tier the device lacks is a KernelTierError (code
   * UNSUPPORTED) naming the missing feature. ModelInfo.kernels reports the tier in use.
   */
  kernels?: KernelsOption;
}

export interface GenerateOptions {
  /** New tokens at most (default 256). */
  maxTokens?: number;
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Default 1 (off). */
  topP?: number;
  /** Default 0 (off). */
  topK?: number;
  /** Default 1 (off); applied over the prompt and generated ids. */
  repetitionPenalty?: number;
  /** Seed of the sampler's PRNG; the same seed gives the same text. */
  seed?: number;
  /** Strings that end generation; they are not emitted. */
  stop?: string | string[];
  /** Token ids that end generation, in addition to the model's eos ids. */
  stopIds?: number[];
  /** Keep generating past eos (benchmarks). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** Per-call override of the attention parameters for prefill. */
  attention?: Partial<AttentionOptions>;
  /** Additive (demo heatmap): ask the prefill for HeadStats.columnBins (PrefillOptions.reportColumns). */
  reportColumns?: boolean;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface SparsitySummary {
  mode: SparsityReport['mode'];
  seqLen: number;
  meanAreaFraction: number;
  /** Additive (demo heatmap): the prefill's per layer and head stats (SparsityReport.heads), when sparse. */
  heads?: HeadStats[];
}

export interface GenerationStats {
  /** Tokens of the prompt. */
  promptTokens: number;
  /** Prompt tokens found in the KV cache (multi-turn reuse) and not recomputed. */
  cachedTokens: number;
  /** Tokens actually run through prefill (promptTokens - cachedTokens). */
  prefillTokens: number;
  completionTokens: number;
  /** Call (after queueing) to the first token id on the CPU. */
  ttftMs: number;
  prefillTokPerS: number;
  /** Completion tokens after the first per second. */
  decodeTokPerS: number;
  totalMs: number;
  /** Additive (TTFT harness): the engine's split of ttftMs: tokenizing the prompt, */
  tokenizeMs?: number;
  /** prefill (PrefillResult.ms), */
  prefillMs?: number;
  /** and the first decode step (sampling the first token and reading it back). */
  firstDecodeMs?: number;
  sparsity?: SparsitySummary;
  /** The kernel tier that ran (ModelInfo.kernels). */
  kernels?: KernelTier;
}

export interface GenerateChunk {
  /** New text (may be empty while text that could start a stop string is held back). */
  text: string;
  /** Ids sampled since the previous chunk. */
  tokenIds: number[];
  /** Set on the last chunk only. */
  finishReason?: FinishReason;
  stats?: GenerationStats;
}

/** A prompt: raw text (completion), chat messages (the model's chat format), or token ids. */
export type GenerateInput = string | ChatMessage[] | { ids: number[] };

// ---- OpenAI-shaped chat completions ----

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  model?: string;
  stream?: boolean;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  repetition_penalty?: number | null;
  /** Accepted for compatibility; only n = 1 is supported. */
  n?: number | null;
  signal?: AbortSignal;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Non-standard: timings and prefill reuse. */
  extra?: GenerationStats;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }[];
  /** On the last chunk. */
  usage?: CompletionUsage;
}

export interface ChatCompletions {
  create(req: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(req: ChatCompletionRequest & { stream?: false | null }): Promise<ChatCompletion>;
  create(req: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

export interface ModelInfo {
  id: string;
  family: string;
  vocabSize: number;
  /** KV cache positions of this engine. */
  contextLength: number;
  hasChatFormat: boolean;
  /** The kernel tier in use (LoadOptions.kernels resolved on this device). */
  kernels: KernelTier;
  /** How long the load's stages took (they overlap: compiling runs during the upload). */
  loadTimes?: LoadTimes;
}

/** A loaded model, in the page or in a worker. */
export interface SieveEngine {
  readonly model: ModelInfo;
  generate(input: GenerateInput, options?: GenerateOptions): AsyncIterable<GenerateChunk>;
  readonly chat: { completions: ChatCompletions };
  /** Token ids in the KV cache (the conversation so far). */
  cachedTokens(): Promise<number>;
  /** Forgets the cached conversation (the next call prefills everything). */
  resetChat(): Promise<void>;
  /** Releases every GPU buffer (and the device, when the engine created it). */
  unload(): Promise<void>;
}
