/**
 * Checks made on weight bytes while they stream to the GPU (issue 20), on
 * the CPU, one pass over bytes the loader reads anyway:
 *
 * - non-finite values (NaN, +-Inf) counted per checkpoint tensor, by their
 *   exponent bits (F32, F16, BF16): refused by default, or reported when the
 *   caller allows them;
 * - PyTorch storages' CRC-32 (from the zip directory): each piece read is
 *   hashed with its offset; when the pieces of a storage tile it, their CRCs
 *   are combined (CRC-32 is linear: crc(A B) = Z_|B|(crc(A)) xor crc(B), with
 *   Z_n the register advanced over n zero bytes, a 32x32 GF(2) matrix raised
 *   by squaring), so pieces may arrive in any order (a fused QKV is read
 *   interleaved). A storage only partly used is not verified.
 */
import { ModelFormatError } from '../errors.ts';
import type { FileDtype, TensorEntry } from './source.ts';

/** NaN / Inf values in raw little-endian bytes of `dtype` (integer dtypes: 0). */
export function countNonFinite(dtype: FileDtype, bytes: Uint8Array): number {
  let b = bytes;
  const width = dtype === 'F32' ? 4 : dtype === 'F16' || dtype === 'BF16' ? 2 : 0;
  if (width === 0 || b.byteLength < width) return 0;
  if (b.byteOffset % width !== 0) b = b.slice();
  let n = 0;
  if (width === 4) {
    const u = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
    for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) === 0x7f800000) n++;
  } else {
    const u = new Uint16Array(b.buffer, b.byteOffset, b.byteLength >>> 1);
    const mask = dtype === 'F16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < u.length; i++) if ((u[i] & mask) === mask) n++;
  }
  return n;
}

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the zip one) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A 32x32 GF(2) matrix as 32 column words: M * v = xor of columns where v has a 1 bit. */
function mulVec(m: Uint32Array, v: number): number {
  let r = 0;
  for (let i = 0; v !== 0; i++, v >>>= 1) if (v & 1) r ^= m[i];
  return r >>> 0;
}

function square(m: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let i = 0; i < 32; i++) out[i] = mulVec(m, m[i]);
  return out;
}

/** The register advanced over one zero bit: shift right, fold the polynomial when the low bit falls out. */
const ONE_BIT = (() => {
  const m = new Uint32Array(32);
  m[0] = 0xedb88320;
  for (let i = 1; i < 32; i++) m[i] = (1 << (i - 1)) >>> 0;
  return m;
})();

/** crc32(A || B) from crc32(A), crc32(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  // Z over 8 * lengthB zero bits, by squaring: start from one byte (8 bits).
  let op = square(square(square(ONE_BIT))); // 8 bits
  let v = crcA >>> 0;
  let n = lengthB;
  while (n > 0) {
    if (n & 1) v = mulVec(op, v);
    n = Math.floor(n / 2);
    if (n > 0) op = square(op);
  }
  return (v ^ crcB) >>> 0;
}

/** The storage a tensor's bytes lie in, with the CRC-32 its zip entry declares (models/spec.ts TensorEntry.storage). */
type StorageInfo = NonNullable<TensorEntry['storage']>;

/** Collects hashed pieces per storage and checks each fully read storage against its CRC-32. */
export class StorageCrcTracker {
  private readonly pieces = new Map<string, { info: StorageInfo; file: string; tensor: string; parts: Map<number, { len: number; crc: number }> }>();

  /** Bytes `bytes` of `entry`'s file at absolute `fileOffset` were read. */
  add(entry: TensorEntry, fileOffset: number, bytes: Uint8Array): void {
    const s = entry.storage;
    if (!s || bytes.byteLength === 0) return;
    const key = `${entry.file}\u0000${s.entry}`;
    let rec = this.pieces.get(key);
    if (!rec) this.pieces.set(key, (rec = { info: s, file: entry.file, tensor: entry.name, parts: new Map() }));
    const at = fileOffset - s.offset;
    if (!rec.parts.has(at)) rec.parts.set(at, { len: bytes.byteLength, crc: crc32(bytes) });
  }

  /** Throws a ModelFormatError for a storage whose bytes, all read, disagree with its CRC-32. Returns how many were verified. */
  verify(): number {
    let verified = 0;
    for (const rec of this.pieces.values()) {
      const parts = [...rec.parts].sort((a, b) => a[0] - b[0]);
      let pos = 0;
      let crc = 0;
      let tiles = true;
      for (const [at, p] of parts) {
        if (at !== pos) {
          tiles = false;
          break;
        }
        crc = pos === 0 ? p.crc : crc32Combine(crc, p.crc, p.len);
        pos += p.len;
      }
      if (!tiles || pos !== rec.info.byteLength) continue;
      if (crc !== rec.info.crc32 >>> 0) {
        throw new ModelFormatError(
          rec.file,
          `zip entry '${rec.info.entry}' (storage of tensor '${rec.tensor}') fails its CRC-32: the data hashes to ${crc.toString(16).padStart(8, '0')}, the archive says ${(rec.info.crc32 >>> 0).toString(16).padStart(8, '0')} (corrupt file)`,
          { entry: rec.info.entry, tensor: rec.tensor },
        );
      }
      verified++;
    }
    return verified;
  }
}
