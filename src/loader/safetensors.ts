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
import { unsafePathReason } from './paths.ts';
import { MissingFileError, ModelFormatError } from '../errors.ts';
import type { FileDtype, FileSource, TensorEntry } from './source.ts';

export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Tensors one file may list (the largest real shards list a few thousand). */
export const MAX_TENSORS = 100_000;
/** JSON nesting of a header: {name: {shape: [...]}} is 3 deep; metadata is flat. */
export const MAX_HEADER_DEPTH = 64;
/** Header bytes read (and scanned) per request, so a hostile header fails before it is all read. */
const HEADER_CHUNK = 1 << 20;
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** Bytes per element of each dtype safetensors may hold. */
export const DTYPE_BYTES: Record<FileDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
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
  // Read in chunks, scanning each: too deep, too many tensors or a duplicate
  // fails at once, before the rest is read, decoded or parsed.
  const json = headerBytes <= HEADER_CHUNK ? await source.read(file, 8, headerBytes) : new Uint8Array(headerBytes);
  const scan = new HeaderScanner(file, json);
  if (headerBytes <= HEADER_CHUNK) scan.scan(headerBytes);
  else {
    for (let at = 0; at < headerBytes; at += HEADER_CHUNK) {
      const n = Math.min(HEADER_CHUNK, headerBytes - at);
      json.set(await source.read(file, 8 + at, n), at);
      scan.scan(at + n);
    }
  }
  return parseHeader(file, json, fileBytes, true);
}

/** Validates the 8-byte length prefix against the file size and the 100 MiB cap. */
export function readHeaderLength(file: string, lenBytes: Uint8Array, fileBytes: number): number {
  const dv = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES) throw new ModelFormatError(file, `header length ${n} bytes is above the 100 MiB limit`, { headerBytes: n });
  if (8 + n > fileBytes)
    throw new ModelFormatError(file, `header length ${n} bytes runs past the end of the file (${fileBytes} bytes)`, { headerBytes: n, fileBytes });
  if (n < 2) throw new ModelFormatError(file, `header length ${n} is too small for a JSON object`);
  return n;
}

/** Parses the JSON header bytes (without the length prefix) of a file of `fileBytes` bytes. */
export function parseHeader(file: string, json: Uint8Array, fileBytes: number, scanned = false): SafetensorsHeader {
  if (!scanned) new HeaderScanner(file, json).scan(json.byteLength);
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
      throw new ModelFormatError(file, `tensor '${name}': unknown dtype ${brief(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`, { tensor: name });
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(file, `tensor '${name}': shape ${brief(t.shape)} is not a list of non-negative integers`, { tensor: name });
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(file, `tensor '${name}': data_offsets ${brief(off)} is not [begin, end]`, { tensor: name });
    }
    const [begin, end] = off as [number, number];
    if (end < begin || end > dataBytes) {
      throw new ModelFormatError(file, `tensor '${name}': data_offsets [${begin}, ${end}] out of range (data section is ${dataBytes} bytes)`, {
        tensor: name,
        begin,
        end,
        dataBytes,
      });
    }
    const shape = t.shape as number[];
    let elems = 1;
    for (const d of shape) elems *= d;
    const bytes = elems * DTYPE_BYTES[dtype as FileDtype];
    if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
      throw new ModelFormatError(file, `tensor '${name}': shape [${shape}] of ${dtype} is ${bytes} bytes but its offsets span ${end - begin}`, {
        tensor: name,
      });
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
  if (pos !== dataBytes)
    throw new ModelFormatError(file, `tensors end at data offset ${pos} but the data section is ${dataBytes} bytes (truncated or trailing bytes)`, {
      dataBytes,
      end: pos,
    });
  return { file, dataStart, fileBytes, entries, metadata };
}

/**
 * A value for an error message, without recursion and cut short: a flat
 * list of numbers as JSON, anything nested as its kind and size.
 */
export function brief(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (Array.isArray(v)) {
    const items = v
      .slice(0, 16)
      .map((x) =>
        x === null || typeof x !== 'object' ? (typeof x === 'string' ? brief(x) : String(x)) : Array.isArray(x) ? `[list of ${x.length}]` : '{object}',
      );
    return `[${items.join(',')}${v.length > 16 ? `,... (${v.length} items)` : ''}]`;
  }
  return typeof v === 'object' ? `{object of ${Object.keys(v as object).length} keys}` : typeof v;
}

/**
 * Scans header bytes (resumably, as they arrive) without recursion or
 * decoding more than the top-level keys: nesting deeper than
 * MAX_HEADER_DEPTH, more than MAX_TENSORS top-level entries and duplicate
 * tensors (JSON.parse would keep the last silently) are ModelFormatErrors.
 * Works on UTF-8 bytes: quotes, brackets and backslashes never occur inside
 * a multi-byte character.
 */
class HeaderScanner {
  private pos = 0;
  private depth = 0;
  private inString = false;
  private stringStart = 0;
  /** A string just closed at depth 1: a key if a ':' follows. */
  private pending: [number, number] | undefined;
  private keys = 0;
  private readonly seen = new Set<string>();
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    private readonly file: string,
    private readonly bytes: Uint8Array,
  ) {}

  scan(end: number): void {
    const b = this.bytes;
    let i = this.pos;
    for (; i < end; i++) {
      const c = b[i];
      if (this.inString) {
        if (c === 0x5c)
          i++; // backslash: skip the escaped byte
        else if (c === 0x22) {
          this.inString = false;
          if (this.depth === 1) this.pending = [this.stringStart, i + 1];
        }
        continue;
      }
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      if (this.pending) {
        if (c === 0x3a) this.key(this.pending);
        this.pending = undefined;
      }
      if (c === 0x22) {
        this.inString = true;
        this.stringStart = i;
      } else if (c === 0x7b || c === 0x5b) {
        if (++this.depth > MAX_HEADER_DEPTH) {
          throw new ModelFormatError(this.file, `header nests deeper than ${MAX_HEADER_DEPTH} levels (at byte ${8 + i}; limit ${MAX_HEADER_DEPTH})`, {
            offset: 8 + i,
            limit: MAX_HEADER_DEPTH,
          });
        }
      } else if (c === 0x7d || c === 0x5d) this.depth--;
    }
    // An escape at the end of a chunk stepped past it: resume after the escaped byte.
    this.pos = i;
  }

  private key([start, end]: [number, number]): void {
    if (++this.keys > MAX_TENSORS + 1) {
      // +1: __metadata__ is not a tensor.
      throw new ModelFormatError(
        this.file,
        `header lists more than ${MAX_TENSORS} tensors (stopped counting at ${this.keys} entries, byte ${8 + end}; limit ${MAX_TENSORS})`,
        { limit: MAX_TENSORS, offset: 8 + end },
      );
    }
    let name: string;
    try {
      name = JSON.parse(this.decoder.decode(this.bytes.subarray(start, end))) as string;
    } catch {
      return; // JSON.parse of the whole header reports it
    }
    if (this.seen.has(name)) throw new ModelFormatError(this.file, `duplicate tensor '${name}' in the header`, { tensor: name });
    this.seen.add(name);
  }
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

/** Reads a folder's safetensors headers: `model.safetensors`, or the shards of `model.safetensors.index.json`. */
export function readCheckpoint(source: FileSource): Promise<Checkpoint> {
  return readCheckpointFiles(source, SINGLE_FILE, INDEX_FILE, (f) => readSafetensorsHeader(source, f));
}

/**
 * Reads a folder's checkpoint of one kind (safetensors, or PyTorch .bin):
 * `single`, or the shards listed in `index`'s weight_map (every mapped file
 * must be present and every tensor found exactly once, in the file the index
 * names). `readFile` reads one file's tensor records.
 */
export async function readCheckpointFiles(
  source: FileSource,
  single: string,
  index: string,
  readFile: (file: string) => Promise<{ fileBytes: number; entries: TensorEntry[]; metadata?: Record<string, string> }>,
): Promise<Checkpoint> {
  if (!(await source.has(index))) {
    if (!(await source.has(single))) throw new MissingFileError(single, `no ${single} or ${index} in ${source.name}`, { folder: source.name });
    const h = await readFile(single);
    return { files: [single], entries: sortEntries(h.entries), metadata: h.metadata ?? {}, totalBytes: h.fileBytes };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await source.text(index));
  } catch (e) {
    if (e instanceof SyntaxError) throw new ModelFormatError(index, `not valid JSON (${e.message})`);
    throw e;
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new ModelFormatError(index, 'has no weight_map object');
  const wanted = new Map<string, string>();
  const files: string[] = [];
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    const unsafe = unsafePathReason(file);
    if (unsafe !== undefined || typeof file !== 'string') {
      const shown = typeof file === 'string' ? JSON.stringify(file.slice(0, 200)) : String(file);
      throw new ModelFormatError(index, `weight_map['${tensor}'] is not a file name in the folder: ${shown} (it has ${unsafe})`, { tensor });
    }
    wanted.set(tensor, file);
    if (!files.includes(file)) files.push(file);
  }
  for (const f of files) {
    if (!(await source.has(f))) throw new MissingFileError(f, `shard named by ${index} is missing from ${source.name}`, { index });
  }
  const entries: TensorEntry[] = [];
  let metadata: Record<string, string> = {};
  let totalBytes = 0;
  const found = new Set<string>();
  for (const f of files) {
    const h = await readFile(f);
    if (f === files[0]) metadata = h.metadata ?? {};
    totalBytes += h.fileBytes;
    for (const e of h.entries) {
      if (found.has(e.name)) throw new ModelFormatError(f, `tensor '${e.name}' appears in more than one shard`, { tensor: e.name });
      const expected = wanted.get(e.name);
      if (expected === undefined) throw new ModelFormatError(f, `tensor '${e.name}' is not listed in ${index}`, { tensor: e.name });
      if (expected !== f) throw new ModelFormatError(f, `tensor '${e.name}' is listed in ${index} under ${expected}`, { tensor: e.name });
      found.add(e.name);
    }
    entries.push(...sortEntries(h.entries));
  }
  for (const [tensor, file] of wanted) {
    if (!found.has(tensor)) throw new ModelFormatError(file, `tensor '${tensor}' listed in ${index} is not in the file`, { tensor });
  }
  return { files, entries, metadata, totalBytes };
}

function sortEntries(entries: TensorEntry[]): TensorEntry[] {
  return entries.slice().sort((a, b) => a.offset - b.offset);
}
