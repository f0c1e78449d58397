/**
 * The structured synthetic model as a checkpoint folder that exists only as
 * a function: `structuredSource(opts)` is a FileSource serving config.json,
 * model.safetensors (or shards + model.safetensors.index.json) whose bytes
 * are synthesized on each read, so the normal loader path (readModel ->
 * loadWeights, streamed in bounded blocks) uploads a 7B-shape model to the GPU
 * without 15 GB ever existing on disk or in memory. `writeStructuredModel`
 * streams the same bytes to a real folder; `tensorRows` gives rows of any
 * checkpoint tensor as f32 directly.
 *
 * Checkpoint packing per family (names, shapes and config.json from
 * bench/synthetic/checkpoint.ts, the same layout as the real checkpoints):
 *   InternLM2 attention.wqkv: per KV group g, its nHeads/nKvHeads query heads,
 *   then K_g, then V_g (D rows each); ChatGLM2 query_key_value: all Q heads,
 *   then all K, then all V; dense_h_to_4h: gate rows then up rows.
 *
 * Usage (a TTFT benchmark at the InternLM2-7B shape, nothing on disk):
 *   const src = structuredSource({ ...PRESETS['internlm2-7b'], seed: 1 });
 *   const engine = await loadEngine(ctx, src, { weights: 'q4', contextLength: 32768 });
 *   const { ids, needles } = syntheticPrompt({ seqLen: 32000, vocabSize: 92544, needles: 2 });
 * Synthesis runs at ~230 MB/s of bf16 in one Node thread (the 15.5 GB 7B
 * shape in about a minute, measured on a loaded 2-core machine); F16 at
 * about the same rate (normal values are rounded by bit arithmetic).
 */
import { f32ToF16 } from '../../src/loader/quant.ts';
import { INDEX_FILE, SINGLE_FILE } from '../../src/loader/safetensors.ts';
import { safetensorsLayout, type TensorSpec } from '../../src/loader/safetensors-write.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { syntheticConfig, syntheticTensors } from './checkpoint.ts';
import { MissingFileError, ModelFormatError } from '../../src/errors.ts';
import { StructuredWeights, type StructuredOptions } from './structured.ts';

type RowFn = (row: number, out: Float32Array) => void;
interface Placed {
  spec: TensorSpec;
  offset: number;
  byteLength: number;
  rows: number;
  cols: number;
  fn: RowFn;
}
interface ShardFile {
  name: string;
  header: Uint8Array;
  totalBytes: number;
  tensors: Placed[];
}

export interface StructuredSource extends FileSource {
  weights: StructuredWeights;
  /** Safetensors files in order. */
  files: string[];
  totalBytes: number;
  list(): Promise<string[]>;
  /** Synchronous read into `out` (its byteLength bytes from offset), same bytes as read. */
  readInto(path: string, offset: number, out: Uint8Array): Uint8Array;
  /** Rows [rowStart, rowStart + rows) of a checkpoint tensor as f32 (vectors: one row). */
  tensorRows(name: string, rowStart: number, rows: number): Float32Array;
}

/** Row generator of each checkpoint tensor of the family. */
function rowFunctions(w: StructuredWeights): Map<string, RowFn> {
  const o = w.o;
  const { headDim: D, nHeads, nKvHeads, ffnDim: F } = o;
  const m = new Map<string, RowFn>();
  const fill =
    (v: number): RowFn =>
    (_r, out) =>
      out.fill(v);
  const perGroup = nHeads / nKvHeads;
  for (let l = 0; l < o.nLayers; l++) {
    if (o.family === 'internlm2') {
      const p = `model.layers.${l}.`;
      m.set(`${p}attention.wqkv.weight`, (r, out) => {
        const g = Math.floor(r / ((perGroup + 2) * D));
        const slot = Math.floor(r / D) % (perGroup + 2);
        const d = r % D;
        if (slot < perGroup) w.qRow(l, g * perGroup + slot, d, out);
        else if (slot === perGroup) w.kRow(l, g, d, out);
        else w.vRow(l, g, d, out);
      });
      m.set(`${p}attention.wo.weight`, (r, out) => w.woRow(l, r, out));
      m.set(`${p}attention_norm.weight`, fill(w.normValue(l, 'attn')));
      m.set(`${p}ffn_norm.weight`, fill(w.normValue(l, 'ffn')));
      m.set(`${p}feed_forward.w1.weight`, (r, out) => w.ffnInRow(l, 'gate', r, out));
      m.set(`${p}feed_forward.w3.weight`, (r, out) => w.ffnInRow(l, 'up', r, out));
      m.set(`${p}feed_forward.w2.weight`, (r, out) => w.ffnDownRow(l, r, out));
    } else {
      const p = `transformer.encoder.layers.${l}.`;
      m.set(`${p}self_attention.query_key_value.weight`, (r, out) => {
        if (r < nHeads * D) w.qRow(l, Math.floor(r / D), r % D, out);
        else if (r < (nHeads + nKvHeads) * D) w.kRow(l, Math.floor((r - nHeads * D) / D), r % D, out);
        else w.vRow(l, Math.floor((r - (nHeads + nKvHeads) * D) / D), r % D, out);
      });
      m.set(`${p}self_attention.query_key_value.bias`, fill(0));
      m.set(`${p}self_attention.dense.weight`, (r, out) => w.woRow(l, r, out));
      m.set(`${p}input_layernorm.weight`, fill(w.normValue(l, 'attn')));
      m.set(`${p}post_attention_layernorm.weight`, fill(w.normValue(l, 'ffn')));
      m.set(`${p}mlp.dense_h_to_4h.weight`, (r, out) => (r < F ? w.ffnInRow(l, 'gate', r, out) : w.ffnInRow(l, 'up', r - F, out)));
      m.set(`${p}mlp.dense_4h_to_h.weight`, (r, out) => w.ffnDownRow(l, r, out));
    }
  }
  const embed: RowFn = (r, out) => w.embedRow(r, out);
  const head: RowFn = (r, out) => w.lmHeadRow(r, out);
  if (o.family === 'internlm2') {
    m.set('model.tok_embeddings.weight', embed)
      .set('model.norm.weight', fill(w.normValue(0, 'final')))
      .set('output.weight', head);
  } else {
    m.set('transformer.embedding.word_embeddings.weight', embed)
      .set('transformer.encoder.final_layernorm.weight', fill(w.normValue(0, 'final')))
      .set('transformer.output_layer.weight', head)
      .set('transformer.rotary_pos_emb.inv_freq', (_r, out) => {
        for (let i = 0; i < out.length; i++) out[i] = 10000 ** (-(2 * i) / (D / 2));
      });
  }
  return m;
}

/** A FileSource whose files are the structured model (see the file comment). */
export function structuredSource(opts: StructuredOptions): StructuredSource {
  const weights = new StructuredWeights(opts);
  const o = weights.o;
  const synthOpts = { ...o, dtype: o.dtype, contextLength: o.contextLength };
  const config = JSON.stringify(
    { ...syntheticConfig(synthOpts), sieve_synthetic: { kind: 'structured', seed: o.seed, sharpness: o.sharpness, background: o.background } },
    null,
    2,
  );
  const fns = rowFunctions(weights);
  const specs = syntheticTensors(synthOpts);
  const elemBytes = o.dtype === 'F32' ? 4 : 2;
  const sizeOf = (t: TensorSpec) => t.shape.reduce((a, b) => a * b, 1) * elemBytes;

  // Shards of at most shardBytes (a tensor never splits).
  const groups: TensorSpec[][] = [[]];
  let acc = 0;
  for (const t of specs) {
    if (acc > 0 && acc + sizeOf(t) > o.shardBytes) {
      groups.push([]);
      acc = 0;
    }
    groups[groups.length - 1].push(t);
    acc += sizeOf(t);
  }
  const n = groups.length;
  const shards: ShardFile[] = groups.map((g, k) => {
    const name = n === 1 ? SINGLE_FILE : `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const layout = safetensorsLayout(g, { format: 'pt' });
    const tensors = layout.tensors.map(({ spec, offset, byteLength }) => {
      const fn = fns.get(spec.name);
      if (!fn) throw new Error(`structured synthetic model: no generator for '${spec.name}'`);
      const cols = spec.shape.length === 1 ? spec.shape[0] : spec.shape[1];
      return { spec, offset, byteLength, rows: spec.shape.length === 1 ? 1 : spec.shape[0], cols, fn };
    });
    return { name, header: layout.header, totalBytes: layout.totalBytes, tensors };
  });
  const texts = new Map<string, Uint8Array>([['config.json', new TextEncoder().encode(config)]]);
  if (n > 1) {
    const weightMap: Record<string, string> = {};
    for (const s of shards) for (const t of s.tensors) weightMap[t.spec.name] = s.name;
    const total = shards.reduce((a, s) => a + s.tensors.reduce((b, t) => b + t.byteLength, 0), 0);
    texts.set(INDEX_FILE, new TextEncoder().encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)));
  }
  const byName = new Map(shards.map((s) => [s.name, s]));
  const byTensor = new Map(shards.flatMap((s) => s.tensors.map((t) => [t.spec.name, t] as const)));
  const name = `structured:${o.family}:${o.dim}x${o.nLayers}:seed${o.seed}`;
  const sizeOfFile = (p: string) => texts.get(p)?.byteLength ?? byName.get(p)?.totalBytes;

  function read(p: string, offset: number, length: number): Uint8Array {
    return readInto(p, offset, new Uint8Array(length));
  }

  /** Bytes [offset, offset + out.byteLength) of file p into out (a worker fills shared memory with it). */
  function readInto(p: string, offset: number, out: Uint8Array): Uint8Array {
    const length = out.byteLength;
    const size = sizeOfFile(p);
    if (size === undefined) throw new MissingFileError(p, `not found in ${name}`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new ModelFormatError(p, `read of ${length} bytes at offset ${offset} is past the end of the file (${size} bytes)`, { offset, length, size });
    }
    const text = texts.get(p);
    if (text) {
      out.set(text.subarray(offset, offset + length));
      return out;
    }
    const shard = byName.get(p)!;
    const end = offset + length;
    if (offset < shard.header.byteLength) out.set(shard.header.subarray(offset, Math.min(end, shard.header.byteLength)), 0);
    for (const t of shard.tensors) {
      if (t.offset + t.byteLength <= offset || t.offset >= end) continue;
      const b0 = Math.max(offset, t.offset) - t.offset;
      const b1 = Math.min(end, t.offset + t.byteLength) - t.offset;
      const rowBytes = t.cols * elemBytes;
      const f32 = new Float32Array(t.cols);
      const bytes = new Uint8Array(rowBytes);
      for (let r = Math.floor(b0 / rowBytes); r * rowBytes < b1; r++) {
        t.fn(r, f32);
        encode(f32, o.dtype, bytes);
        const s = Math.max(b0, r * rowBytes),
          e = Math.min(b1, (r + 1) * rowBytes);
        out.set(bytes.subarray(s - r * rowBytes, e - r * rowBytes), t.offset + s - offset);
      }
    }
    return out;
  }

  return {
    name,
    weights,
    files: shards.map((s) => s.name),
    totalBytes: shards.reduce((a, s) => a + s.totalBytes, 0),
    async has(p) {
      return sizeOfFile(p) !== undefined;
    },
    async size(p) {
      const s = sizeOfFile(p);
      if (s === undefined) throw new MissingFileError(p, `not found in ${name}`);
      return s;
    },
    async read(p, offset, length) {
      return read(p, offset, length);
    },
    readInto,
    async text(p) {
      const t = texts.get(p);
      if (!t) throw new MissingFileError(p, `no text file '${p}' in ${name}`);
      return new TextDecoder().decode(t);
    },
    async list() {
      return [...texts.keys(), ...byName.keys()];
    },
    tensorRows(tensor, rowStart, rows) {
      const t = byTensor.get(tensor);
      if (!t) throw new MissingFileError(tensor, `no tensor '${tensor}' in ${name}`);
      if (rowStart < 0 || rows < 0 || rowStart + rows > t.rows)
        throw new RangeError(`rows [${rowStart}, ${rowStart + rows}) outside '${tensor}' (${t.rows} rows)`);
      const out = new Float32Array(rows * t.cols);
      for (let r = 0; r < rows; r++) t.fn(rowStart + r, out.subarray(r * t.cols, (r + 1) * t.cols));
      return out;
    },
  };
}

/** Rounds f32 values to the file dtype's little-endian bytes. */
function encode(v: Float32Array, dtype: 'F32' | 'F16' | 'BF16', out: Uint8Array): void {
  if (dtype === 'F32') {
    out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    return;
  }
  const h = new Uint16Array(out.buffer, out.byteOffset, v.length);
  const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
  if (dtype === 'F16') {
    // Normal f16 results by bit arithmetic (rebias the exponent, round to nearest even; a carry
    // into the exponent is right); subnormals, overflow, inf and NaN take f32ToF16. Same bits.
    for (let i = 0; i < v.length; i++) {
      const x = u[i];
      const a = x & 0x7fffffff;
      h[i] = a >= 0x38800000 && a < 0x477ff000 ? ((x >>> 16) & 0x8000) | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13) : f32ToF16(v[i]);
    }
    return;
  }
  for (let i = 0; i < v.length; i++) {
    const x = u[i];
    h[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
}

/** Writes the structured model's folder (config.json + safetensors shards [+ index]) to `dir`, streaming. Node only. */
export async function writeStructuredModel(
  dir: string,
  opts: StructuredOptions,
  chunkBytes = 16 << 20,
): Promise<{ dir: string; files: string[]; totalBytes: number }> {
  const fsp = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
  const src = structuredSource(opts);
  await fsp.mkdir(dir, { recursive: true });
  for (const f of await src.list()) {
    const size = await src.size(f);
    const fh = await fsp.open(`${dir}/${f}`, 'w');
    try {
      for (let off = 0; off < size; off += chunkBytes) await fh.write(await src.read(f, off, Math.min(chunkBytes, size - off)));
    } finally {
      await fh.close();
    }
  }
  return { dir, files: src.files, totalBytes: src.totalBytes };
}
