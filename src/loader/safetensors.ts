/**
 * Strict safetensors reader. The format: an 8-byte little-endian header
 * length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {str: str}}`, then the data; offsets are relative to the
 * end of the header. Only the header is read here (8 + N bytes); tensor data
 * is read later, in bounded chunks, by the weight loader.
 *
 * Every fault is a ModelFormatError naming the file and what is wrong:
 * header length past the file or above 100 MiB, invalid JSON, unknown dtype,
 * a shape whose byte size differs from its offsets, offsets out of range,
 * overlapping data or gaps between tensors (the ranges must tile the data
 * section, as the reference implementation requires), duplicate tensors. Sharded checkpoints go through
 * `model.safetensors.index.json` (readCheckpoint).
 */
import { MissingFileError, ModelFormatError } from '../errors.ts';
import type { FileDtype, FileSource, TensorEntry } from './source.ts';

export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** Bytes per element of each dtype safetensors may hold. */
export const DTYPE_BYTES: Record<FileDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface SafetensorsHeader {
  file: string;
  /** 8 + header length: where tensor data starts. */
  dataStart: number;
  fileBytes: number;
  entries: TensorEntry[];
  metadata: Record<string, string>;
}

/** Reads and validates the header of one safetensors file of `source`. */
export async function readSafetensorsHeader(source: FileSource, file: string): Promise<SafetensorsHeader> {
  const fileBytes = await source.size(file);
  if (fileBytes < 8) throw new ModelFormatError(file, `truncated: ${fileBytes} bytes, shorter than the 8-byte header length`);
  const lenBytes = await source.read(file, 0, 8);
  const headerBytes = readHeaderLength(file, lenBytes, fileBytes);
  const json = await source.read(file, 8, headerBytes);
  return parseHeader(file, json, fileBytes);
}

/** Validates the 8-byte length prefix against the file size and the 100 MiB cap. */
export function readHeaderLength(file: string, lenBytes: Uint8Array, fileBytes: number): number {
  const dv = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES) throw new ModelFormatError(file, `header length ${n} bytes is above the 100 MiB limit`, { headerBytes: n });
  if (8 + n > fileBytes) throw new ModelFormatError(file, `header length ${n} bytes runs past the end of the file (${fileBytes} bytes)`, { headerBytes: n, fileBytes });
  if (n < 2) throw new ModelFormatError(file, `header length ${n} is too small for a JSON object`);
  return n;
}

/** Parses the JSON header bytes (without the length prefix) of a file of `fileBytes` bytes. */
export function parseHeader(file: string, json: Uint8Array, fileBytes: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new ModelFormatError(file, 'header is not valid UTF-8');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new ModelFormatError(file, 'header is not a JSON object');
  const dataStart = 8 + json.byteLength;
  const dataBytes = fileBytes - dataStart;
  const names = duplicateKeys(text);
  if (names) throw new ModelFormatError(file, `duplicate tensor '${names}' in the header`, { tensor: names });

  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  const ranges: [number, number, string][] = [];
  for (const [name, v] of Object.entries(obj as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ModelFormatError(file, '__metadata__ is not an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') throw new ModelFormatError(file, `__metadata__.${k} is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ModelFormatError(file, `tensor '${name}': entry is not an object`, { tensor: name });
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = t.dtype;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new ModelFormatError(file, `tensor '${name}': unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`, { tensor: name });
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(file, `tensor '${name}': shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`, { tensor: name });
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(file, `tensor '${name}': data_offsets ${JSON.stringify(off)} is not [begin, end]`, { tensor: name });
    }
    const [begin, end] = off as [number, number];
    if (end < begin || end > dataBytes) {
      throw new ModelFormatError(file, `tensor '${name}': data_offsets [${begin}, ${end}] out of range (data section is ${dataBytes} bytes)`, { tensor: name, begin, end, dataBytes });
    }
    const shape = t.shape as number[];
    let elems = 1;
    for (const d of shape) elems *= d;
    const bytes = elems * DTYPE_BYTES[dtype as FileDtype];
    if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
      throw new ModelFormatError(file, `tensor '${name}': shape [${shape}] of ${dtype} is ${bytes} bytes but its offsets span ${end - begin}`, { tensor: name });
    }
    entries.push({ name, dtype: dtype as FileDtype, shape: shape.slice(), file, offset: dataStart + begin, byteLength: end - begin });
    ranges.push([begin, end, name]);
  }
  // As the reference implementation requires: sorted by offset, the ranges
  // tile the data section exactly (no overlap, no gap, nothing after).
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let pos = 0;
  let prev = '';
  for (const [b, e, name] of ranges) {
    if (b < pos) throw new ModelFormatError(file, `tensors '${prev}' and '${name}' overlap (bytes ${b}..${pos} of the data section)`, { tensor: name });
    if (b > pos) throw new ModelFormatError(file, `data is not contiguous: ${b - pos} unclaimed bytes before tensor '${name}' (offset ${b})`, { tensor: name });
    pos = e;
    prev = name;
  }
  if (pos !== dataBytes) throw new ModelFormatError(file, `tensors end at data offset ${pos} but the data section is ${dataBytes} bytes (truncated or trailing bytes)`, { dataBytes, end: pos });
  return { file, dataStart, fileBytes, entries, metadata };
}

/**
 * JSON.parse keeps the last of duplicate keys silently; a safetensors header
 * with a duplicate tensor is malformed. Scans the top-level keys of the
 * object text and returns the first duplicate (or undefined).
 */
function duplicateKeys(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k])) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return undefined;
}

export interface Checkpoint {
  /** Safetensors files in load order. */
  files: string[];
  /** Every tensor of every file, in file then offset order. */
  entries: TensorEntry[];
  /** __metadata__ of the first file. */
  metadata: Record<string, string>;
  /** Total bytes of the files. */
  totalBytes: number;
}

/**
 * Reads a checkpoint folder's tensor headers: `model.safetensors`, or the
 * shards listed in `model.safetensors.index.json` (every mapped file must be
 * present and every tensor found exactly once, in the file the index names).
 */
export async function readCheckpoint(source: FileSource): Promise<Checkpoint> {
  if (await source.has(INDEX_FILE)) return readSharded(source);
  if (!(await source.has(SINGLE_FILE))) {
    throw new MissingFileError(SINGLE_FILE, `no ${SINGLE_FILE} or ${INDEX_FILE} in ${source.name}`, { folder: source.name });
  }
  const h = await readSafetensorsHeader(source, SINGLE_FILE);
  return { files: [SINGLE_FILE], entries: sortEntries(h.entries), metadata: h.metadata, totalBytes: h.fileBytes };
}

async function readSharded(source: FileSource): Promise<Checkpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await source.text(INDEX_FILE));
  } catch (e) {
    if (e instanceof SyntaxError) throw new ModelFormatError(INDEX_FILE, `not valid JSON (${e.message})`);
    throw e;
  }
  const map = (index as { weight_map?: unknown })?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new ModelFormatError(INDEX_FILE, 'has no weight_map object');
  const wanted = new Map<string, string>();
  const files: string[] = [];
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !file || file.includes('..') || file.startsWith('/')) {
      throw new ModelFormatError(INDEX_FILE, `weight_map['${tensor}'] is not a file name in the folder: ${JSON.stringify(file)}`);
    }
    wanted.set(tensor, file);
    if (!files.includes(file)) files.push(file);
  }
  for (const f of files) {
    if (!(await source.has(f))) throw new MissingFileError(f, `shard named by ${INDEX_FILE} is missing from ${source.name}`, { index: INDEX_FILE });
  }
  const entries: TensorEntry[] = [];
  let metadata: Record<string, string> = {};
  let totalBytes = 0;
  const found = new Set<string>();
  for (const f of files) {
    const h = await readSafetensorsHeader(source, f);
    if (f === files[0]) metadata = h.metadata;
    totalBytes += h.fileBytes;
    for (const e of h.entries) {
      if (found.has(e.name)) throw new ModelFormatError(f, `tensor '${e.name}' appears in more than one shard`, { tensor: e.name });
      const expected = wanted.get(e.name);
      if (expected === undefined) throw new ModelFormatError(f, `tensor '${e.name}' is not listed in ${INDEX_FILE}`, { tensor: e.name });
      if (expected !== f) throw new ModelFormatError(f, `tensor '${e.name}' is listed in ${INDEX_FILE} under ${expected}`, { tensor: e.name });
      found.add(e.name);
    }
    entries.push(...sortEntries(h.entries));
  }
  for (const [tensor, file] of wanted) {
    if (!found.has(tensor)) throw new ModelFormatError(file, `tensor '${tensor}' listed in ${INDEX_FILE} is not in the file`, { tensor });
  }
  return { files, entries, metadata, totalBytes };
}

function sortEntries(entries: TensorEntry[]): TensorEntry[] {
  return entries.slice().sort((a, b) => a.offset - b.offset);
}
