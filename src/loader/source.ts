/**
 * FileSource: one interface over a checkpoint folder wherever it lives (a URL
 * of a folder read with HTTP Range requests, browser files or a directory
 * handle, a Node path). Paths are relative to the folder ("config.json",
 * "model-00001-of-00002.safetensors"). Implementations live beside this file.
 */
export interface FileSource {
  /** For messages: the folder path or URL. */
  readonly name: string;
  /** Whether `path` exists in the folder. */
  has(path: string): Promise<boolean>;
  /** Size in bytes; throws MissingFileError when absent. */
  size(path: string): Promise<number>;
  /** Bytes [offset, offset + length) of `path`; throws ModelFormatError when out of range. */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  /** Whole file as UTF-8 text (small files: config.json, index, tokenizer files). */
  text(path: string): Promise<string>;
  /** File names, when the source can list them (local folders); URL sources may return undefined. */
  list?(): Promise<string[] | undefined>;
}

/** Checkpoint tensor records: defined beside ModelSpec (the families map them), re-exported for the loader's readers. */
export type { FileDtype, TensorEntry } from '../../models/spec.ts';
