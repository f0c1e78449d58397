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

/** Checkpoint tensor dtypes as stored in files. */
export type FileDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/**
 * Where one tensor's raw bytes are: produced by the safetensors reader and by
 * the PyTorch .bin reader alike (both store raw little-endian, contiguous
 * row-major data at a byte range of a file), consumed by the weight loader.
 */
export interface TensorEntry {
  name: string;
  dtype: FileDtype;
  shape: number[];
  /** File within the source. */
  file: string;
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  byteLength: number;
  /** PyTorch: the zip entry (storage) holding the bytes, with its CRC-32, checked as the bytes are read. */
  storage?: { entry: string; offset: number; byteLength: number; crc32: number };
}
