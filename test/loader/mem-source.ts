/** In-memory FileSource for loader tests; records the furthest byte any read asked for. */
import { MissingFileError } from '../../src/errors.ts';
import { checkRange } from '../../src/loader/sources.ts';
import type { FileSource } from '../../src/loader/source.ts';

export interface MemSource extends FileSource {
  files: Map<string, Uint8Array>;
  /** Largest offset + length requested per file. */
  maxEnd: Map<string, number>;
}

export function memSource(files: Record<string, Uint8Array | string>, name = 'mem'): MemSource {
  const map = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(files)) map.set(k, typeof v === 'string' ? new TextEncoder().encode(v) : v);
  const maxEnd = new Map<string, number>();
  const get = (p: string) => {
    const f = map.get(p);
    if (!f) throw new MissingFileError(p, `not in ${name}`);
    return f;
  };
  return {
    name,
    files: map,
    maxEnd,
    async has(p) {
      return map.has(p);
    },
    async size(p) {
      return get(p).byteLength;
    },
    async read(p, offset, length) {
      const f = get(p);
      maxEnd.set(p, Math.max(maxEnd.get(p) ?? 0, offset + length));
      checkRange(p, offset, length, f.byteLength);
      return f.slice(offset, offset + length);
    },
    async text(p) {
      return new TextDecoder().decode(get(p));
    },
    async list() {
      return [...map.keys()];
    },
  };
}

/** A safetensors file from a header object (or raw JSON text) and `dataBytes` zero bytes. */
export function rawSafetensors(header: unknown, dataBytes: number, lengthOverride?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  const dv = new DataView(out.buffer);
  const n = lengthOverride ?? json.byteLength;
  dv.setUint32(0, n % 2 ** 32, true);
  dv.setUint32(4, Math.floor(n / 2 ** 32), true);
  out.set(json, 8);
  return out;
}

/** Index of the first element where two typed arrays differ (bitwise for floats; -1 when equal). Faster than toEqual on big arrays. */
export function firstDiff(a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }, b: typeof a): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.length, b.length);
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
    y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return Math.floor(i / (a.byteLength / a.length));
  return -1;
}
