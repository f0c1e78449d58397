/**
 * GGUF (v3), the file format of llama.cpp, written from its specification
 * (ggml's docs/gguf.md): what the llama.cpp peer (wllama, issue 19) loads.
 *
 * File = header, then tensor data:
 *   magic "GGUF" (bytes 47 47 55 46), u32 version 3, u64 tensor_count, u64 kv_count;
 *   kv_count pairs { string key, u32 value_type, value };
 *   tensor_count infos { string name, u32 n_dims, u64 ne[n_dims] (ne[0] = the
 *     contiguous dimension: the columns of a PyTorch [out, in] matrix), u32 ggml_type,
 *     u64 offset (from the start of the data section, a multiple of the alignment) };
 *   padding to general.alignment (32), then each tensor's bytes, each padded to 32.
 * Strings are u64 length + UTF-8 bytes (no terminator). Little-endian throughout.
 *
 * Split files (llama.cpp's gguf-split): every file is a complete GGUF with the
 * tensors it holds; all of them carry split.no (u16, from 0), split.count (u16)
 * and split.tensors.count (i32, tensors of the whole model); only the first
 * carries the model's other metadata. Names end `-00001-of-0000N.gguf`.
 *
 * Weight encodings:
 *   F32 (type 0), F16 (type 1);
 *   Q4_0 (type 2): blocks of 32 weights in 18 bytes, an f16 scale d then 16 bytes
 *   of nibbles: byte j holds weight j (low nibble) and weight j + 16 (high nibble),
 *   each stored as q + 8 with x = d * (nibble - 8). Quantized as ggml's reference
 *   does: m = the value of largest magnitude, d = m / -8, nibble =
 *   min(15, trunc(x / d + 8.5)), the f16 of d stored.
 */
import { f16ToF32, f32ToF16 } from '../../src/loader/quant.ts';

export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** gguf_type of a metadata value. */
export const GGUF_VALUE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
type Scalar = Exclude<keyof typeof GGUF_VALUE, 'array'>;

export type MetaValue =
  { type: Scalar; value: number | bigint | boolean | string } | { type: 'array'; of: Scalar; value: (number | string | boolean)[] | Float32Array | Int32Array };

export const ALIGNMENT = 32;
export const Q4_0_BLOCK = 32;
export const Q4_0_BYTES = 18;

/** Bytes of `n` elements of `type` (Q4_0: n a multiple of 32). */
export function typeBytes(type: GgmlTypeName, n: number): number {
  if (type === 'F32') return n * 4;
  if (type === 'F16') return n * 2;
  if (n % Q4_0_BLOCK) throw new RangeError(`Q4_0 needs a multiple of ${Q4_0_BLOCK} elements per row, got ${n}`);
  return (n / Q4_0_BLOCK) * Q4_0_BYTES;
}

const pad = (n: number) => (n + ALIGNMENT - 1) & ~(ALIGNMENT - 1);

/** Quantizes rows of f32 (length a multiple of 32) to Q4_0 blocks in `out`. */
export function quantizeQ4_0(src: Float32Array, out: Uint8Array): Uint8Array {
  const nb = src.length / Q4_0_BLOCK;
  if (!Number.isInteger(nb)) throw new RangeError(`Q4_0: ${src.length} elements is not a multiple of ${Q4_0_BLOCK}`);
  if (out.byteLength < nb * Q4_0_BYTES) throw new RangeError('Q4_0: output too small');
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0; b < nb; b++) {
    const x = b * Q4_0_BLOCK;
    let amax = 0,
      m = 0;
    for (let j = 0; j < Q4_0_BLOCK; j++) {
      const v = src[x + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        m = v;
      }
    }
    const d = Math.fround(m / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = b * Q4_0_BYTES;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(src[x + j] * id) + 8.5));
      const hi = Math.min(15, Math.trunc(Math.fround(src[x + 16 + j] * id) + 8.5));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return out.subarray(0, nb * Q4_0_BYTES);
}

/** Q4_0 blocks back to f32 (the values llama.cpp computes with). */
export function dequantizeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < n / Q4_0_BLOCK; b++) {
    const o = b * Q4_0_BYTES;
    const d = f16ToF32(dv.getUint16(o, true));
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 2 + j];
      out[b * 32 + j] = ((q & 15) - 8) * d;
      out[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}

/** Encodes f32 values as `type` (F32/F16/Q4_0). */
export function encodeTensorData(type: GgmlTypeName, src: Float32Array): Uint8Array {
  if (type === 'F32') return new Uint8Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
  if (type === 'Q4_0') return quantizeQ4_0(src, new Uint8Array(typeBytes('Q4_0', src.length)));
  const h = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) h[i] = f32ToF16(src[i]);
  return new Uint8Array(h.buffer);
}

/** A tensor to write: its GGUF dims (ne[0] first) and a row producer (a row = ne[0] values). */
export interface GgufTensor {
  name: string;
  /** ne[0] (contiguous), ne[1], ...: a PyTorch [out, in] matrix is [in, out]. */
  dims: number[];
  type: GgmlTypeName;
  /** Rows [r0, r0 + n) as f32 (n * ne[0] values). */
  rows(r0: number, n: number): Float32Array | Promise<Float32Array>;
}

const tensorRows = (t: GgufTensor) => t.dims.slice(1).reduce((a, b) => a * b, 1);
export const tensorBytes = (t: GgufTensor) => typeBytes(t.type, t.dims[0]) * tensorRows(t);

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number) {
    if (this.length + n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number) {
    this.room(1);
    this.dv.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number) {
    this.room(2);
    this.dv.setUint16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number) {
    this.room(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number) {
    this.room(4);
    this.dv.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint) {
    this.room(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint) {
    this.room(8);
    this.dv.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number) {
    this.room(4);
    this.dv.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number) {
    this.room(8);
    this.dv.setFloat64(this.length, v, true);
    this.length += 8;
  }
  bytes(b: Uint8Array) {
    this.room(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  scalar(type: Scalar, v: number | bigint | boolean | string) {
    switch (type) {
      case 'u8':
        this.u8(Number(v));
        break;
      case 'i8':
        this.room(1);
        this.dv.setInt8(this.length, Number(v));
        this.length += 1;
        break;
      case 'u16':
        this.u16(Number(v));
        break;
      case 'i16':
        this.room(2);
        this.dv.setInt16(this.length, Number(v), true);
        this.length += 2;
        break;
      case 'u32':
        this.u32(Number(v));
        break;
      case 'i32':
        this.i32(Number(v));
        break;
      case 'f32':
        this.f32(Number(v));
        break;
      case 'bool':
        this.u8(v ? 1 : 0);
        break;
      case 'string':
        this.str(String(v));
        break;
      case 'u64':
        this.u64(v as number | bigint);
        break;
      case 'i64':
        this.i64(v as number | bigint);
        break;
      case 'f64':
        this.f64(Number(v));
        break;
      default: {
        const never: never = type;
        throw new Error(`gguf: unknown value type ${never}`);
      }
    }
  }
  padTo(align: number) {
    while (this.length % align) this.u8(0);
  }
  done() {
    return this.buf.slice(0, this.length);
  }
}

/** The header (everything before the tensor data, padded) of one GGUF file. */
export function ggufHeader(meta: [string, MetaValue][], tensors: GgufTensor[]): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [key, v] of meta) {
    w.str(key);
    w.u32(GGUF_VALUE[v.type]);
    if (v.type === 'array') {
      w.u32(GGUF_VALUE[v.of]);
      w.u64(v.value.length);
      for (const x of v.value) w.scalar(v.of, x);
    } else w.scalar(v.type, v.value);
  }
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE[t.type]);
    w.u64(off);
    offsets.push(off);
    off = pad(off + tensorBytes(t));
  }
  w.padTo(ALIGNMENT);
  return { header: w.done(), offsets, dataBytes: off };
}

/** Where the bytes go (a Node file, a buffer in tests). */
export interface ByteSink {
  write(b: Uint8Array): Promise<void> | void;
  close(): Promise<void> | void;
}

export interface SplitPlan {
  files: string[];
  groups: GgufTensor[][];
}

/** `-00001-of-00003.gguf` names (one file: `${prefix}.gguf`). */
export function splitName(prefix: string, i: number, n: number): string {
  return n === 1 ? `${prefix}.gguf` : `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.gguf`;
}

/** Groups tensors in order so that no file's tensor data passes maxBytes (a tensor never splits). */
export function planSplits(prefix: string, tensors: GgufTensor[], maxBytes: number): SplitPlan {
  const groups: GgufTensor[][] = [[]];
  let acc = 0;
  for (const t of tensors) {
    const b = pad(tensorBytes(t));
    if (b > maxBytes) throw new RangeError(`gguf: tensor '${t.name}' (${b} bytes) is larger than the per-file limit ${maxBytes}`);
    if (acc > 0 && acc + b > maxBytes) {
      groups.push([]);
      acc = 0;
    }
    groups[groups.length - 1].push(t);
    acc += b;
  }
  return { groups, files: groups.map((_, i) => splitName(prefix, i, groups.length)) };
}

/** Rows per encoding step: about 16 MB of f32 at a time. */
function rowsPerStep(t: GgufTensor): number {
  return Math.max(1, Math.floor((4 << 20) / t.dims[0]));
}

/**
 * Writes the model as GGUF: one file, or split files of at most `maxFileBytes`
 * of tensor data each (header bytes come on top: keep the limit a little under
 * the reader's). `open(name)` gives the sink of each file.
 */
export async function writeGguf(opts: {
  prefix: string;
  meta: [string, MetaValue][];
  tensors: GgufTensor[];
  maxFileBytes?: number;
  open: (name: string) => ByteSink | Promise<ByteSink>;
  onTensor?: (t: GgufTensor, file: string) => void;
  /**
   * Encodes rows [r0, r0 + n) of tensor `index` (of opts.tensors); default: t.rows + encodeTensorData here.
   * With worker threads behind it, `ahead` blocks are encoded at once (written in order).
   */
  encode?: (index: number, r0: number, n: number) => Promise<Uint8Array>;
  ahead?: number;
}): Promise<{ files: string[]; bytes: number[] }> {
  const encode = opts.encode ?? (async (i: number, r0: number, n: number) => encodeTensorData(opts.tensors[i].type, await opts.tensors[i].rows(r0, n)));
  const index = new Map(opts.tensors.map((t, i) => [t, i]));
  const plan = planSplits(opts.prefix, opts.tensors, opts.maxFileBytes ?? Number.MAX_SAFE_INTEGER);
  const n = plan.groups.length;
  const bytes: number[] = [];
  for (let i = 0; i < n; i++) {
    const meta: [string, MetaValue][] = i === 0 ? [...opts.meta] : [];
    if (n > 1) {
      meta.push(
        ['split.no', { type: 'u16', value: i }],
        ['split.count', { type: 'u16', value: n }],
        ['split.tensors.count', { type: 'i32', value: opts.tensors.length }],
      );
    }
    const { header, offsets, dataBytes } = ggufHeader(meta, plan.groups[i]);
    const sink = await opts.open(plan.files[i]);
    await sink.write(header);
    let at = 0;
    // Blocks of rows in file order; up to `ahead` of them encoding at once.
    const jobs: { k: number; r0: number; n: number; last: boolean }[] = [];
    for (const [k, t] of plan.groups[i].entries()) {
      const rows = tensorRows(t),
        step = rowsPerStep(t);
      for (let r = 0; r < rows; r += step) jobs.push({ k, r0: r, n: Math.min(step, rows - r), last: r + step >= rows });
    }
    const pending: Promise<Uint8Array>[] = [];
    const start = (j: number) => {
      const x = jobs[j];
      pending[j] = encode(index.get(plan.groups[i][x.k])!, x.r0, x.n);
    };
    const ahead = Math.max(1, opts.ahead ?? 1);
    for (let j = 0; j < Math.min(ahead, jobs.length); j++) start(j);
    for (let j = 0; j < jobs.length; j++) {
      const { k, last } = jobs[j];
      if (offsets[k] > at) {
        await sink.write(new Uint8Array(offsets[k] - at));
        at = offsets[k];
      }
      const data = await pending[j];
      delete pending[j];
      if (j + ahead < jobs.length) start(j + ahead);
      await sink.write(data);
      at += data.byteLength;
      if (last) opts.onTensor?.(plan.groups[i][k], plan.files[i]);
    }
    if (dataBytes > at) await sink.write(new Uint8Array(dataBytes - at));
    await sink.close();
    bytes.push(header.byteLength + dataBytes);
  }
  return { files: plan.files, bytes };
}

// ---------- reading (tests and checks) ----------

export interface GgufInfo {
  version: number;
  meta: Map<string, unknown>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  /** Byte offset of the data section. */
  dataOffset: number;
}

/** Parses a GGUF header (enough of the format to check what the writer wrote). */
export function readGgufHeader(bytes: Uint8Array): GgufInfo {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => {
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  const u64 = () => {
    const v = Number(dv.getBigUint64(p, true));
    p += 8;
    return v;
  };
  const str = () => {
    const n = u64();
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 0:
        return dv.getUint8(p++);
      case 1:
        return dv.getInt8(p++);
      case 2: {
        const v = dv.getUint16(p, true);
        p += 2;
        return v;
      }
      case 3: {
        const v = dv.getInt16(p, true);
        p += 2;
        return v;
      }
      case 4:
        return u32();
      case 5: {
        const v = dv.getInt32(p, true);
        p += 4;
        return v;
      }
      case 6: {
        const v = dv.getFloat32(p, true);
        p += 4;
        return v;
      }
      case 7:
        return dv.getUint8(p++) !== 0;
      case 8:
        return str();
      case 10:
        return u64();
      case 11: {
        const v = Number(dv.getBigInt64(p, true));
        p += 8;
        return v;
      }
      case 12: {
        const v = dv.getFloat64(p, true);
        p += 8;
        return v;
      }
      default:
        throw new Error(`gguf: unknown value type ${t} at byte ${p}`);
    }
  };
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== 'GGUF') throw new Error('gguf: bad magic');
  p = 4;
  const version = u32();
  const nt = u64(),
    nkv = u64();
  const meta = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) {
    const key = str();
    const t = u32();
    if (t === 9) {
      const et = u32(),
        n = u64();
      const arr: unknown[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(et));
      meta.set(key, arr);
    } else meta.set(key, scalar(t));
  }
  const tensors: GgufInfo['tensors'] = [];
  for (let i = 0; i < nt; i++) {
    const name = str();
    const nd = u32();
    const dims = Array.from({ length: nd }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const align = Number(meta.get('general.alignment') ?? ALIGNMENT);
  return { version, meta, tensors, dataOffset: Math.ceil(p / align) * align };
}
