/**
 * Test helpers for the PyTorch reader: in-memory and on-disk FileSources that
 * count the bytes read, a minimal stored-zip writer (optionally zip64, local
 * extra padding like torch's) to rebuild fixture archives with faults, and a
 * small safetensors/f16/bf16 decoder for comparing values with the golden
 * checkpoint.
 */
import { readFileSync, statSync, existsSync, openSync, readSync, closeSync } from 'node:fs';
import { Uint8ArrayReader, Uint8ArrayWriter, ZipReader, type FileEntry } from '@zip.js/zip.js';
import { MissingFileError, ModelFormatError } from '../../src/errors.ts';
import type { FileDtype, FileSource, TensorEntry } from '../../src/loader/source.ts';

export interface CountingSource extends FileSource {
  reads: { file: string; offset: number; length: number }[];
}

function counting(name: string, size: (p: string) => number | undefined, get: (p: string, o: number, n: number) => Uint8Array): CountingSource {
  const reads: CountingSource['reads'] = [];
  const sizeOf = (p: string) => {
    const s = size(p);
    if (s === undefined) throw new MissingFileError(p, `not found in ${name}`);
    return s;
  };
  return {
    name,
    reads,
    async has(p) {
      return size(p) !== undefined;
    },
    async size(p) {
      return sizeOf(p);
    },
    async read(p, offset, length) {
      const s = sizeOf(p);
      if (offset < 0 || length < 0 || offset + length > s) throw new ModelFormatError(p, `read of ${length} bytes at ${offset} past the end (${s} bytes)`);
      reads.push({ file: p, offset, length });
      return get(p, offset, length);
    },
    async text(p) {
      const s = sizeOf(p);
      return new TextDecoder().decode(get(p, 0, s));
    },
  };
}

/** A folder on disk, read with positional reads. */
export function dirSource(dir: string): CountingSource {
  return counting(
    dir,
    (p) => (existsSync(`${dir}/${p}`) ? statSync(`${dir}/${p}`).size : undefined),
    (p, o, n) => {
      const fd = openSync(`${dir}/${p}`, 'r');
      try {
        const out = new Uint8Array(n);
        readSync(fd, out, 0, n, o);
        return out;
      } finally {
        closeSync(fd);
      }
    },
  );
}

/** Files held in memory. */
export function memSource(files: Record<string, Uint8Array | string>): CountingSource {
  const bytes = new Map(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
  return counting(
    'memory',
    (p) => bytes.get(p)?.byteLength,
    (p, o, n) => bytes.get(p)!.slice(o, o + n),
  );
}

export interface ZipItem {
  name: string;
  data: Uint8Array;
}

/** Every entry of a zip held in memory (name + bytes), in archive order. */
export async function unzipAll(zip: Uint8Array): Promise<ZipItem[]> {
  const r = new ZipReader(new Uint8ArrayReader(zip), { useWebWorkers: false });
  const out: ZipItem[] = [];
  for (const e of await r.getEntries()) out.push({ name: e.filename, data: await (e as FileEntry).getData(new Uint8ArrayWriter()) });
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A stored (uncompressed) zip. Local extra fields pad each entry's data to
 * 64-byte alignment as torch does; `zip64` writes zip64 extra fields, the
 * zip64 end records and 0xFFFFFFFF markers; `sizes` overrides the sizes the
 * directory declares for some entries (faulty archives).
 */
export function zipStored(items: ZipItem[], opts: { zip64?: boolean; sizes?: Record<string, number> } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  let pos = 0;
  const emit = (b: Uint8Array) => {
    parts.push(b);
    pos += b.byteLength;
  };
  const central: Uint8Array[] = [];
  for (const it of items) {
    const name = new TextEncoder().encode(it.name);
    const size = opts.sizes?.[it.name] ?? it.data.byteLength;
    const crc = crc32(it.data);
    const local64 = opts.zip64 ? 20 : 0;
    const base = pos + 30 + name.byteLength + local64;
    const pad = (64 - ((base + 4) % 64)) % 64;
    const extraLen = local64 + 4 + pad;
    const h = new DataView(new ArrayBuffer(30 + name.byteLength + extraLen));
    h.setUint32(0, 0x04034b50, true);
    h.setUint16(4, opts.zip64 ? 45 : 20, true);
    h.setUint16(12, 0x21, true);
    h.setUint32(14, crc, true);
    h.setUint32(18, opts.zip64 ? 0xffffffff : size, true);
    h.setUint32(22, opts.zip64 ? 0xffffffff : size, true);
    h.setUint16(26, name.byteLength, true);
    h.setUint16(28, extraLen, true);
    new Uint8Array(h.buffer).set(name, 30);
    let x = 30 + name.byteLength;
    if (opts.zip64) {
      h.setUint16(x, 1, true);
      h.setUint16(x + 2, 16, true);
      h.setBigUint64(x + 4, BigInt(size), true);
      h.setBigUint64(x + 12, BigInt(size), true);
      x += 20;
    }
    h.setUint16(x, 0x4246, true);
    h.setUint16(x + 2, pad, true);
    const offset = pos;
    emit(new Uint8Array(h.buffer));
    emit(it.data);
    const c64 = opts.zip64 ? 28 : 0;
    const c = new DataView(new ArrayBuffer(46 + name.byteLength + c64));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, opts.zip64 ? 45 : 20, true);
    c.setUint16(6, opts.zip64 ? 45 : 20, true);
    c.setUint16(14, 0x21, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, opts.zip64 ? 0xffffffff : size, true);
    c.setUint32(24, opts.zip64 ? 0xffffffff : size, true);
    c.setUint16(28, name.byteLength, true);
    c.setUint16(30, c64, true);
    c.setUint32(42, opts.zip64 ? 0xffffffff : offset, true);
    new Uint8Array(c.buffer).set(name, 46);
    if (opts.zip64) {
      const y = 46 + name.byteLength;
      c.setUint16(y, 1, true);
      c.setUint16(y + 2, 24, true);
      c.setBigUint64(y + 4, BigInt(size), true);
      c.setBigUint64(y + 12, BigInt(size), true);
      c.setBigUint64(y + 20, BigInt(offset), true);
    }
    central.push(new Uint8Array(c.buffer));
  }
  const cdStart = pos;
  for (const c of central) emit(c);
  const cdBytes = pos - cdStart;
  if (opts.zip64) {
    const eocd64Start = pos;
    const r = new DataView(new ArrayBuffer(56));
    r.setUint32(0, 0x06064b50, true);
    r.setBigUint64(4, 44n, true);
    r.setUint16(12, 45, true);
    r.setUint16(14, 45, true);
    r.setBigUint64(24, BigInt(items.length), true);
    r.setBigUint64(32, BigInt(items.length), true);
    r.setBigUint64(40, BigInt(cdBytes), true);
    r.setBigUint64(48, BigInt(cdStart), true);
    emit(new Uint8Array(r.buffer));
    const l = new DataView(new ArrayBuffer(20));
    l.setUint32(0, 0x07064b50, true);
    l.setBigUint64(8, BigInt(eocd64Start), true);
    l.setUint32(16, 1, true);
    emit(new Uint8Array(l.buffer));
  }
  const e = new DataView(new ArrayBuffer(22));
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, opts.zip64 ? 0xffff : items.length, true);
  e.setUint16(10, opts.zip64 ? 0xffff : items.length, true);
  e.setUint32(12, opts.zip64 ? 0xffffffff : cdBytes, true);
  e.setUint32(16, opts.zip64 ? 0xffffffff : cdStart, true);
  emit(new Uint8Array(e.buffer));
  const out = new Uint8Array(pos);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

export function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** Golden safetensors file: name -> { dtype, shape, values as f32 }. */
export function readSafetensorsF32(path: string): Map<string, { dtype: string; shape: number[]; values: Float32Array }> {
  const b = readBytes(path);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { dtype: string; shape: number[]; values: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const raw = b.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    out.set(name, { dtype: t.dtype, shape: t.shape, values: toF32(t.dtype as FileDtype, raw) });
  }
  return out;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function toF32(dtype: FileDtype, raw: Uint8Array): Float32Array {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.slice().buffer);
    case 'F16': {
      const o = new Float32Array(raw.byteLength / 2);
      for (let i = 0; i < o.length; i++) o[i] = f16ToF32(dv.getUint16(2 * i, true));
      return o;
    }
    case 'BF16': {
      const o = new Float32Array(raw.byteLength / 2);
      const u = new Uint32Array(o.buffer);
      for (let i = 0; i < o.length; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return o;
    }
    default:
      throw new Error(`toF32: ${dtype} not handled in tests`);
  }
}

/** Reads one TensorEntry's values through the source, as f32. */
export async function entryValues(source: FileSource, e: TensorEntry): Promise<Float32Array> {
  return toF32(e.dtype, await source.read(e.file, e.offset, e.byteLength));
}
