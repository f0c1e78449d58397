/**
 * What <sieve-chat> needs from the runtime's public API (src/api/), in one
 * place: the component talks to the engine only through these shapes, so the
 * API's own types stay the source of truth and this file is the adapter.
 */
import type { SparsityReport } from '../engine/types.ts';
import type { ChatOptions } from './options.ts';

/** A model folder: URL, files from <input webkitdirectory>, or a directory handle. */
export type ModelInput = string | FileList | File[] | FileSystemDirectoryHandle;

/** One load stage: units done of total (bytes for read, tensors for upload, pipelines for compile), ms spent. */
export interface StageCount {
  done: number;
  total: number;
  ms: number;
}
export type LoadStage = 'read' | 'upload' | 'compile';
export type LoadStages = Record<LoadStage, StageCount>;

export interface FileProgress {
  file: string;
  loadedBytes: number;
  totalBytes: number;
  /** The stage this event reports and all three stages' counts, from engines that report them (else absent: bytes only). */
  stage?: LoadStage;
  stages?: LoadStages;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ReplyStats {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens found in the KV cache (multi-turn reuse) and not prefilled again. */
  cachedTokens: number;
  /** Prompt tokens run through prefill this turn (promptTokens - cachedTokens). */
  prefillTokens: number;
  /** Engine-measured: generate() call to first token sampled. */
  ttftMs: number;
  tokenizeMs?: number;
  prefillMs?: number;
  firstDecodeMs?: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** The kernel tier that ran (GenerationStats.kernels). */
  kernels?: string;
  /** Mean fraction of the causal area computed by the last prefill (1 = dense). */
  areaFraction?: number;
  sparsity?: SparsityReport;
}

export interface ReplyChunk {
  text: string;
  ids: number[];
  finishReason?: string;
  stats?: ReplyStats;
}

export interface GenerateRequest {
  options: ChatOptions;
  signal: AbortSignal;
}

/** A loaded model as the component drives it. */
export interface ChatEngine {
  /** Whether the model has a chat template (else the component continues raw text). */
  readonly hasChatTemplate: boolean;
  readonly contextLength: number;
  readonly description: string;
  /** The kernel tier in use (ModelInfo.kernels), when the engine reports one. */
  readonly kernels?: string;
  generate(input: string | ChatMessage[] | { ids: number[] }, req: GenerateRequest): AsyncIterable<ReplyChunk>;
  /** Forgets the cached conversation: the next prompt is prefilled from its first token. */
  resetChat(): Promise<void>;
  unload(): Promise<void>;
}

export type LoadFn = (source: ModelInput, options: ChatOptions, onProgress: (p: FileProgress) => void, signal: AbortSignal) => Promise<ChatEngine>;
