/**
 * Small safetensors writer: `safetensorsLayout` computes the header and each
 * tensor's byte range (so big files can be written in chunks by a streaming
 * writer), `writeSafetensors` builds a whole small file in memory (tests,
 * `sieve logits --out`). Data is laid out in the order given, contiguously;
 * the JSON header is padded with spaces to a multiple of 8 bytes.
 */
import type { FileDtype } from './source.ts';
import { DTYPE_BYTES } from './safetensors.ts';

export interface TensorSpec {
  name: string;
  dtype: FileDtype;
  shape: number[];
}

export interface TensorData extends TensorSpec {
  /** Raw little-endian bytes (or a typed array viewed as bytes). */
  data: ArrayBufferView;
}

export interface SafetensorsLayout {
  /** 8-byte length + JSON header (padded). */
  header: Uint8Array;
  /** Absolute file offsets of each tensor's data, in the order given. */
  tensors: { spec: TensorSpec; offset: number; byteLength: number }[];
  totalBytes: number;
}

export function safetensorsLayout(specs: TensorSpec[], metadata: Record<string, string> = {}): SafetensorsLayout {
  const obj: Record<string, unknown> = {};
  if (Object.keys(metadata).length) obj.__metadata__ = metadata;
  let pos = 0;
  const ranges: [number, number][] = [];
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[s.dtype];
    if (s.name in obj) throw new Error(`safetensors writer: duplicate tensor '${s.name}'`);
    obj[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [pos, pos + n] };
    ranges.push([pos, n]);
    pos += n;
  }
  let json = JSON.stringify(obj);
  const enc = new TextEncoder();
  let jsonBytes = enc.encode(json);
  const pad = (8 - (jsonBytes.byteLength % 8)) % 8;
  if (pad) jsonBytes = enc.encode((json += ' '.repeat(pad)));
  const header = new Uint8Array(8 + jsonBytes.byteLength);
  new DataView(header.buffer).setUint32(0, jsonBytes.byteLength, true);
  header.set(jsonBytes, 8);
  const start = header.byteLength;
  return {
    header,
    tensors: specs.map((spec, i) => ({ spec, offset: start + ranges[i][0], byteLength: ranges[i][1] })),
    totalBytes: start + pos,
  };
}

/** A whole safetensors file in memory. */
export function writeSafetensors(tensors: TensorData[], metadata: Record<string, string> = {}): Uint8Array {
  const layout = safetensorsLayout(tensors, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.header, 0);
  tensors.forEach((t, i) => {
    const { offset, byteLength } = layout.tensors[i];
    if (t.data.byteLength !== byteLength)
      throw new Error(`safetensors writer: '${t.name}' has ${t.data.byteLength} bytes, shape [${t.shape}] of ${t.dtype} needs ${byteLength}`);
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), offset);
  });
  return out;
}
