/**
 * Messages between the page (src/worker/client.ts) and the engine's worker
 * (src/worker/host.ts). Every request carries an id; replies name it. Errors
 * cross as SieveError.toJSON() and are rebuilt with reviveError, keeping
 * their class. Callbacks and AbortSignals do not cross: progress comes back
 * as messages and abort goes over as one.
 */
import type { SourceInput } from '../loader/sources.ts';
import type { FileSource } from '../loader/source.ts';
import type { GenerateChunk, GenerateInput, GenerateOptions, LoadOptions, LoadProgress, ModelInfo } from '../api/types.ts';

export type WireSource = Exclude<SourceInput, URL | FileSource>;
export type WireLoadOptions = Omit<LoadOptions, 'onProgress' | 'signal' | 'gpu'>;
export type WireGenerateOptions = Omit<GenerateOptions, 'signal'>;

export type ToWorker =
  | { type: 'load'; id: number; source: WireSource; options: WireLoadOptions }
  | { type: 'generate'; id: number; input: GenerateInput; options: WireGenerateOptions }
  /** Aborts the load or generation `id`. */
  | { type: 'abort'; id: number }
  | { type: 'cached'; id: number }
  | { type: 'reset'; id: number }
  | { type: 'unload'; id: number }
  /** Test hook: destroys the GPU device under the engine (device-loss tests). */
  | { type: 'destroyDevice'; id: number };

export interface WireError {
  name: string;
  code?: string;
  message: string;
  details?: Record<string, unknown>;
}

export type FromWorker =
  | { type: 'progress'; id: number; progress: LoadProgress }
  | { type: 'loaded'; id: number; model: ModelInfo }
  | { type: 'chunk'; id: number; chunk: GenerateChunk }
  | { type: 'done'; id: number; value?: number }
  | { type: 'error'; id: number; error: WireError };

/** The part of Worker / MessagePort / DedicatedWorkerGlobalScope both sides use. */
export interface Port {
  postMessage(msg: unknown): void;
  addEventListener(type: 'message', fn: (e: MessageEvent) => void): void;
  removeEventListener?(type: 'message', fn: (e: MessageEvent) => void): void;
}

export function errorToWire(e: unknown): WireError {
  if (e && typeof e === 'object' && typeof (e as { toJSON?: unknown }).toJSON === 'function' && 'code' in e) {
    return (e as unknown as { toJSON(): WireError }).toJSON();
  }
  const err = e as Error;
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e) };
}
