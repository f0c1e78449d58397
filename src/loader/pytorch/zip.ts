/**
 * Random-access reading of a PyTorch zip archive through a FileSource, with
 * zip.js (@zip.js/zip.js) for the archive structure: it finds the end of
 * central directory record (and its zip64 counterpart) in the file's tail
 * and parses the central directory, reading only those byte ranges (Range
 * requests for URL sources, slices for files). Small entries (data.pkl,
 * byteorder) are extracted with zip.js; tensor storages are never read here:
 * torch stores them uncompressed, so each one is a byte range of the file,
 * whose start is found from the entry's local file header (30 bytes + name +
 * extra field, which torch pads so data is 64-byte aligned). The local
 * headers of many entries are read in coalesced ranges.
 */
import { Reader, Uint8ArrayWriter, ZipReader, configure, type Entry, type FileEntry } from '@zip.js/zip.js';
import { ModelFormatError, SieveError } from '../../errors.ts';
import type { FileSource } from '../source.ts';

configure({ useWebWorkers: false });

/** Largest entry extracted whole (data.pkl of a 70B-parameter model is a few hundred KiB). */
export const MAX_SMALL_ENTRY_BYTES = 64 * 1024 * 1024;
/**
 * A local header is fetched in the same read as the previous one when the
 * bytes between them (the previous entry's data) are at most this many: the
 * headers after small entries (norm weights, biases) cost no extra request,
 * and no large tensor data is read.
 */
const COALESCE_GAP_BYTES = 16 * 1024;
/** Bytes read past a local header's name for its extra field (torch pads to 64). */
const HEADER_SLACK_BYTES = 128;
const LOCAL_HEADER_SIG = 0x04034b50;
/**
 * Entries one archive may hold: torch.save writes one per storage plus a few
 * (a sharded 70B checkpoint has hundreds per file). zip.js keeps several KiB
 * per entry, so the count is checked in the end-of-central-directory record
 * before it parses anything.
 */
export const MAX_ZIP_ENTRIES = 100_000;
/** Central directory bytes at most (46 bytes + name per entry; torch names are short). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** zip.js Reader over one file of a FileSource (reads are clamped to the file). */
class SourceReader extends Reader<null> {
  constructor(
    private readonly source: FileSource,
    private readonly file: string,
    fileBytes: number,
  ) {
    super(null);
    this.size = fileBytes;
  }
  override async init(): Promise<void> {}
  override async readUint8Array(index: number, length: number): Promise<Uint8Array> {
    const start = Math.max(0, Math.min(index, this.size));
    return this.source.read(this.file, start, Math.max(0, Math.min(length, this.size - start)));
  }
}

export interface ZipArchive {
  file: string;
  fileBytes: number;
  /** Entries by name (files only). */
  entries: Map<string, FileEntry>;
}

/** Reads the central directory of `file`. A file that is not a zip archive is a ModelFormatError. */
export async function openZip(source: FileSource, file: string): Promise<ZipArchive> {
  const fileBytes = await source.size(file);
  if (fileBytes < 22) throw new ModelFormatError(file, `not a zip archive: ${fileBytes} bytes, shorter than an end of central directory record`);
  const head = await source.read(file, 0, 4);
  if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) {
    throw new ModelFormatError(
      file,
      'is a bare pickle (the legacy torch.save format before PyTorch 1.6), not a zip archive; re-save it with a recent PyTorch or convert it to safetensors',
    );
  }
  await checkEntryCount(source, file, fileBytes);
  let list: Entry[];
  try {
    const reader = new ZipReader(new SourceReader(source, file, fileBytes), { useWebWorkers: false });
    list = await reader.getEntries({ filenameValidation: 'strict' });
  } catch (e) {
    throw zipError(file, e);
  }
  const entries = new Map<string, FileEntry>();
  for (const e of list) {
    if (e.directory) continue;
    if (entries.has(e.filename)) throw new ModelFormatError(file, `zip entry '${e.filename}' appears twice`, { entry: e.filename });
    entries.set(e.filename, e as FileEntry);
  }
  return { file, fileBytes, entries };
}

/**
 * Reads the entry count and central directory size from the end of central
 * directory record (zip64 when the classic fields are saturated) and refuses
 * archives past MAX_ZIP_ENTRIES or MAX_CENTRAL_DIRECTORY_BYTES. When no record
 * is found, zip.js reports the archive as unreadable.
 */
async function checkEntryCount(source: FileSource, file: string, fileBytes: number): Promise<void> {
  const tailLen = Math.min(fileBytes, 22 + 0xffff);
  const tail = await source.read(file, fileBytes - tailLen, tailLen);
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let at = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      at = i;
      break;
    }
  }
  if (at < 0) return;
  let count = dv.getUint16(at + 10, true);
  let cdBytes = dv.getUint32(at + 12, true);
  let cdOffset = dv.getUint32(at + 16, true);
  if ((count === 0xffff || cdBytes === 0xffffffff || cdOffset === 0xffffffff) && at >= 20 && dv.getUint32(at - 20, true) === 0x07064b50) {
    const z64At = Number(dv.getBigUint64(at - 20 + 8, true));
    if (Number.isSafeInteger(z64At) && z64At + 56 <= fileBytes) {
      const z = await source.read(file, z64At, 56);
      const zdv = new DataView(z.buffer, z.byteOffset, 56);
      if (zdv.getUint32(0, true) === 0x06064b50) {
        count = Number(zdv.getBigUint64(32, true));
        cdBytes = Number(zdv.getBigUint64(40, true));
        cdOffset = Number(zdv.getBigUint64(48, true));
      }
    }
  }
  const tooMany = (n: number, exact: boolean) =>
    new ModelFormatError(file, `zip archive has ${exact ? '' : 'more than '}${n} entries, above the limit of ${MAX_ZIP_ENTRIES}`, {
      entries: n,
      limit: MAX_ZIP_ENTRIES,
    });
  if (count > MAX_ZIP_ENTRIES) throw tooMany(count, true);
  if (cdBytes > MAX_CENTRAL_DIRECTORY_BYTES) {
    throw new ModelFormatError(file, `zip central directory of ${cdBytes} bytes is above the limit of ${MAX_CENTRAL_DIRECTORY_BYTES} bytes`, {
      bytes: cdBytes,
      limit: MAX_CENTRAL_DIRECTORY_BYTES,
    });
  }
  // The 16-bit count wraps (and zip.js recovers wrapped counts by walking the
  // directory): count the directory's headers too, without allocating per entry.
  if (!Number.isSafeInteger(cdOffset) || cdOffset + cdBytes > fileBytes || cdBytes < 46) return;
  const cd = await source.read(file, cdOffset, cdBytes);
  const cdv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  let n = 0;
  for (let o = 0; o + 46 <= cd.byteLength && cdv.getUint32(o, true) === 0x02014b50;) {
    if (++n > MAX_ZIP_ENTRIES) throw tooMany(MAX_ZIP_ENTRIES, false);
    o += 46 + cdv.getUint16(o + 28, true) + cdv.getUint16(o + 30, true) + cdv.getUint16(o + 32, true);
  }
}

/** Extracts a small entry whole (data.pkl, byteorder), via zip.js (stored or deflated). */
export async function readSmallEntry(zip: ZipArchive, entry: FileEntry): Promise<Uint8Array> {
  if (entry.uncompressedSize > MAX_SMALL_ENTRY_BYTES || entry.compressedSize > zip.fileBytes) {
    throw new ModelFormatError(
      zip.file,
      `zip entry '${entry.filename}' claims ${entry.uncompressedSize} bytes, above the ${MAX_SMALL_ENTRY_BYTES}-byte limit`,
      { entry: entry.filename },
    );
  }
  let data: Uint8Array;
  try {
    data = await entry.getData(new Uint8ArrayWriter(), { checkCrc32: true, useWebWorkers: false });
  } catch (e) {
    throw zipError(zip.file, e, entry.filename);
  }
  if (data.byteLength !== entry.uncompressedSize) {
    throw new ModelFormatError(zip.file, `zip entry '${entry.filename}' gave ${data.byteLength} bytes, its directory says ${entry.uncompressedSize}`, {
      entry: entry.filename,
    });
  }
  return data;
}

/**
 * Absolute byte offsets of the data of stored (uncompressed) entries, from
 * their local file headers, checked against the central directory and the
 * file size. Returns a map entry name -> data offset.
 */
export async function storedDataOffsets(source: FileSource, zip: ZipArchive, names: string[]): Promise<Map<string, number>> {
  const list = names
    .map((name) => {
      const e = zip.entries.get(name);
      if (!e) throw new ModelFormatError(zip.file, `zip entry '${name}' is missing`, { entry: name });
      if (e.compressionMethod !== 0)
        throw new ModelFormatError(zip.file, `zip entry '${name}' is compressed (method ${e.compressionMethod}); PyTorch stores tensor data uncompressed`, {
          entry: name,
        });
      if (e.encrypted) throw new ModelFormatError(zip.file, `zip entry '${name}' is encrypted`, { entry: name });
      if (e.compressedSize !== e.uncompressedSize)
        throw new ModelFormatError(zip.file, `stored zip entry '${name}' has compressed size ${e.compressedSize} != size ${e.uncompressedSize}`, {
          entry: name,
        });
      return e;
    })
    .sort((a, b) => a.offset - b.offset);

  const out = new Map<string, number>();
  const headerEnd = (e: FileEntry) => e.offset + 30 + e.rawFilename.byteLength + HEADER_SLACK_BYTES;
  let i = 0;
  while (i < list.length) {
    const start = list[i].offset;
    let j = i + 1;
    while (j < list.length && list[j].offset - headerEnd(list[j - 1]) <= COALESCE_GAP_BYTES) j++;
    const end = Math.min(zip.fileBytes, headerEnd(list[j - 1]));
    if (start + 30 > zip.fileBytes)
      throw new ModelFormatError(zip.file, `local header of '${list[i].filename}' at ${start} is past the end of the file (${zip.fileBytes} bytes)`, {
        entry: list[i].filename,
      });
    const buf = await source.read(zip.file, start, end - start);
    for (let k = i; k < j; k++) out.set(list[k].filename, await localDataOffset(source, zip, list[k], buf, start));
    i = j;
  }
  return out;
}

async function localDataOffset(source: FileSource, zip: ZipArchive, e: FileEntry, buf: Uint8Array, bufStart: number): Promise<number> {
  const rel = e.offset - bufStart;
  const fault = (why: string) => new ModelFormatError(zip.file, `zip entry '${e.filename}': ${why}`, { entry: e.filename, offset: e.offset });
  const name = e.rawFilename;
  const want = 30 + name.byteLength;
  let h = buf.subarray(rel, rel + want);
  if (h.byteLength < want) {
    if (e.offset + want > zip.fileBytes) throw fault(`local header at ${e.offset} is past the end of the file (${zip.fileBytes} bytes)`);
    h = await source.read(zip.file, e.offset, want);
  }
  const dv = new DataView(h.buffer, h.byteOffset, 30);
  if (dv.getUint32(0, true) !== LOCAL_HEADER_SIG) throw fault(`no local file header at offset ${e.offset}`);
  const method = dv.getUint16(8, true);
  if (method !== 0) throw fault(`local header says compression method ${method}, not stored`);
  const nameLen = dv.getUint16(26, true);
  const extraLen = dv.getUint16(28, true);
  if (nameLen !== name.byteLength || h.subarray(30).some((c, k) => c !== name[k])) throw fault(`local header at ${e.offset} names another entry`);
  const dataOffset = e.offset + 30 + nameLen + extraLen;
  if (dataOffset + e.uncompressedSize > zip.fileBytes) {
    throw fault(`data of ${e.uncompressedSize} bytes at offset ${dataOffset} runs past the end of the file (${zip.fileBytes} bytes): truncated archive`);
  }
  return dataOffset;
}

/** Maps a zip.js failure (its messages are ERR_* strings) to a ModelFormatError naming the file; the source's own errors pass through. */
function zipError(file: string, e: unknown, entry?: string): Error {
  if (e instanceof SieveError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const where = entry ? `zip entry '${entry}': ` : '';
  const hint = /end of central directory/i.test(msg) ? ' (not a zip archive, or truncated)' : '';
  return new ModelFormatError(file, `${where}unreadable zip archive: ${msg}${hint}`, { entry, cause: msg });
}
