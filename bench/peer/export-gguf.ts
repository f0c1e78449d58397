/**
 * Exports an InternLM2-layout checkpoint that sieve loads (stories260k in
 * ../shared/fixtures, the structured synthetic models of bench/synthetic) to GGUF
 * for llama.cpp, as architecture `llama` or `internlm2` (same tensors in GGUF).
 *
 * Checkpoint -> GGUF (PyTorch [out, in] = GGUF dims [in, out]):
 *   model.tok_embeddings.weight      -> token_embd.weight
 *   layers.N.attention_norm.weight   -> blk.N.attn_norm.weight (F32)
 *   layers.N.attention.wqkv.weight   -> blk.N.attn_q / attn_k / attn_v.weight
 *   layers.N.attention.wo.weight     -> blk.N.attn_output.weight
 *   layers.N.ffn_norm.weight         -> blk.N.ffn_norm.weight (F32)
 *   layers.N.feed_forward.w1/w3/w2   -> blk.N.ffn_gate / ffn_up / ffn_down.weight
 *   model.norm.weight, output.weight -> output_norm.weight (F32), output.weight
 * wqkv is packed per KV group (MODELS.md): group g holds its heads/KV query
 * heads, then K_g, then V_g, D rows each.
 *
 * RoPE rows: the checkpoint rotates (j, j + D/2) pairs (rotate_half, how HF
 * stores LLaMA and InternLM2), llama.cpp's `llama` and `internlm2` rotate
 * adjacent pairs (2i, 2i + 1) (rope type NORM, Meta's layout). Its converter
 * un-permutes q and k; so do we: GGUF row 2i + a of a head = checkpoint row
 * a * D/2 + i (a in {0, 1}). V and the rest keep their order.
 *
 * Types: 'Q4_0' puts every 2-D weight in Q4_0 (llama-quantize --pure, the
 * closest match to sieve's q4: groups of 32, one f16 scale, offset 8), except
 * rows whose length is not a multiple of 32 (stories260k's ffn_down, 172 wide),
 * which stay F16; norms are F32. 'F16' / 'F32' for checks.
 */
import { parseSentencePiece, PieceType } from '../../src/tokenizer/sentencepiece.ts';
import { bf16ToF32, f16ToF32, f32ToF16 } from '../../src/loader/quant.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { readCheckpoint } from '../../src/loader/safetensors.ts';
import { structuredSource } from '../synthetic/source.ts';
import { PRESETS, type StructuredOptions } from '../synthetic/structured.ts';
import { writeGguf, type GgmlTypeName, type GgufTensor, type MetaValue } from './gguf.ts';

/** InternLM2 config.json fields the export needs. */
export interface InternLM2Config {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  intermediate_size: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

/** A checkpoint in the InternLM2 layout: config and rows of any tensor as f32. */
export interface Checkpoint {
  name: string;
  config: InternLM2Config;
  rows(tensor: string, r0: number, n: number): Promise<Float32Array> | Float32Array;
}

export interface Vocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  bos: number;
  eos: number;
  unk: number;
  pad?: number;
  addBos: boolean;
  /** tokenizer.ggml.add_space_prefix (llama.cpp's default for SPM: true). */
  addSpacePrefix?: boolean;
}

/** A safetensors checkpoint folder (F32/F16/BF16 tensors) read through a FileSource (tests: nodeSource). */
export async function folderCheckpoint(src: FileSource): Promise<Checkpoint> {
  const config = JSON.parse(await src.text('config.json')) as InternLM2Config & { model_type?: string };
  if (config.model_type !== 'internlm2') throw new Error(`${src.name}: model_type '${config.model_type}' is not internlm2`);
  const ck = await readCheckpoint(src);
  const byName = new Map(ck.entries.map((e) => [e.name, e]));
  return {
    name: src.name,
    config,
    async rows(tensor, r0, n) {
      const e = byName.get(tensor);
      if (!e) throw new Error(`${src.name}: no tensor '${tensor}'`);
      const cols = e.shape.length === 1 ? e.shape[0] : e.shape[1];
      const el = e.dtype === 'F32' ? 4 : e.dtype === 'F16' || e.dtype === 'BF16' ? 2 : 0;
      if (!el) throw new Error(`${src.name}: '${tensor}' is ${e.dtype}, not F32/F16/BF16`);
      const b = await src.read(e.file, e.offset + r0 * cols * el, n * cols * el);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const out = new Float32Array(n * cols);
      for (let i = 0; i < out.length; i++) {
        out[i] = el === 4 ? dv.getFloat32(i * 4, true) : e.dtype === 'F16' ? f16ToF32(dv.getUint16(i * 2, true)) : bf16ToF32(dv.getUint16(i * 2, true));
      }
      return out;
    },
  };
}

/** The structured synthetic model of a preset (InternLM2 family only: the peer has the same layout). */
export async function syntheticCheckpoint(preset: string, overrides: Partial<StructuredOptions> = {}): Promise<{ ck: Checkpoint; opts: StructuredOptions }> {
  const base = (PRESETS as Record<string, StructuredOptions>)[preset];
  if (!base) throw new Error(`unknown synthetic preset '${preset}' (one of ${Object.keys(PRESETS).join(', ')})`);
  const opts: StructuredOptions = { dtype: 'F16', seed: 1, ...base, ...overrides };
  if (opts.family !== 'internlm2') throw new Error(`synthetic preset '${preset}' is ${opts.family}: the GGUF export handles the internlm2 family`);
  const src = structuredSource(opts);
  const config = JSON.parse(await src.text('config.json')) as InternLM2Config;
  // The checkpoint sieve loads holds dtype-rounded values: round the f32 rows the same way (one model for both).
  const round = opts.dtype === 'F16' ? roundF16 : opts.dtype === 'BF16' ? roundBF16 : (x: Float32Array) => x;
  return { ck: { name: `synthetic-${preset}`, config, rows: (t, r0, n) => round(src.tensorRows(t, r0, n)) }, opts };
}

/** f32 -> f16 -> f32 in place (normal range by bit arithmetic, round to nearest even; the rest through f32ToF16). */
function roundF16(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) {
    const b = u[i],
      a = b & 0x7fffffff;
    if (a >= 0x38800000 && a < 0x477ff000) u[i] = (((a + 0xfff + ((a >>> 13) & 1)) >>> 13) << 13) | (b & 0x80000000);
    else x[i] = f16ToF32(f32ToF16(x[i]));
  }
  return x;
}

function roundBF16(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) {
    const b = u[i];
    u[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return x;
}

/** The SentencePiece vocabulary of a tokenizer.model, with scores, types and special ids. */
export function sentencePieceVocab(model: Uint8Array, addBos = true): Vocab {
  const m = parseSentencePiece(model);
  return {
    tokens: m.pieces.map((p) => p.piece),
    scores: Float32Array.from(m.pieces, (p) => p.score),
    types: Int32Array.from(m.pieces, (p) => p.type),
    bos: m.trainer.bosId,
    eos: m.trainer.eosId,
    unk: m.trainer.unkId,
    pad: m.trainer.padId >= 0 ? m.trainer.padId : undefined,
    addBos,
  };
}

/**
 * The synthetic models' vocabulary, made so that a prompt of ids can go to
 * llama.cpp as text (wllama's completion takes text only): id i >= 3 is the
 * single character U+10000 + i (no two of them merge: the vocabulary has no
 * longer pieces), 0/1/2 are <unk>/<s>/</s> (special: parsed from the text).
 * No space prefix is added (there is no "▁" piece). syntheticText(ids)
 * is the matching prompt text.
 */
export function syntheticVocab(n: number): Vocab {
  const tokens = Array.from({ length: n }, (_, i) => syntheticPiece(i));
  const types = Int32Array.from(tokens, (_, i) => (i === 0 ? PieceType.UNKNOWN : i < 3 ? PieceType.CONTROL : PieceType.NORMAL));
  return { tokens, scores: new Float32Array(n).map((_, i) => -i), types, bos: 1, eos: 2, unk: 0, addBos: false, addSpacePrefix: false };
}

export const syntheticPiece = (i: number): string => (i === 0 ? '<unk>' : i === 1 ? '<s>' : i === 2 ? '</s>' : String.fromCodePoint(0x10000 + i));
export const syntheticText = (ids: ArrayLike<number>): string => Array.from(ids, syntheticPiece).join('');

export type Arch = 'llama' | 'internlm2';

/** GGUF metadata and tensors of a checkpoint (see the file comment). */
export function ggufModel(
  ck: Checkpoint,
  vocab: Vocab,
  arch: Arch,
  weights: GgmlTypeName,
  contextLength?: number,
): { meta: [string, MetaValue][]; tensors: GgufTensor[] } {
  const c = ck.config;
  const H = c.hidden_size,
    L = c.num_hidden_layers,
    nH = c.num_attention_heads,
    KV = c.num_key_value_heads;
  const D = H / nH,
    F = c.intermediate_size,
    V = c.vocab_size,
    P = nH / KV;
  if (vocab.tokens.length !== V) throw new Error(`${ck.name}: vocabulary has ${vocab.tokens.length} pieces, config.vocab_size is ${V}`);
  const fileType = weights === 'F32' ? 0 : weights === 'F16' ? 1 : 2;
  const meta: [string, MetaValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: ck.name }],
    ['general.file_type', { type: 'u32', value: fileType }],
    ['general.quantization_version', { type: 'u32', value: 2 }],
    [`${arch}.context_length`, { type: 'u32', value: contextLength ?? c.max_position_embeddings }],
    [`${arch}.embedding_length`, { type: 'u32', value: H }],
    [`${arch}.block_count`, { type: 'u32', value: L }],
    [`${arch}.feed_forward_length`, { type: 'u32', value: F }],
    [`${arch}.attention.head_count`, { type: 'u32', value: nH }],
    [`${arch}.attention.head_count_kv`, { type: 'u32', value: KV }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: c.rms_norm_eps }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: c.rope_theta }],
    [`${arch}.rope.dimension_count`, { type: 'u32', value: D }],
    [`${arch}.vocab_size`, { type: 'u32', value: V }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: vocab.bos }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: vocab.eos }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: vocab.unk }],
    ...(vocab.pad !== undefined ? [['tokenizer.ggml.padding_token_id', { type: 'u32', value: vocab.pad }] as [string, MetaValue]] : []),
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: vocab.addBos }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
    ...(vocab.addSpacePrefix === false ? [['tokenizer.ggml.add_space_prefix', { type: 'bool', value: false }] as [string, MetaValue]] : []),
  ];
  const mat = (cols: number): GgmlTypeName => (weights === 'Q4_0' && cols % 32 !== 0 ? 'F16' : weights);
  const direct = (name: string, src: string, cols: number, rows: number, type = mat(cols)): GgufTensor => ({
    name,
    dims: rows === 1 ? [cols] : [cols, rows],
    type,
    rows: (r0, n) => ck.rows(src, r0, n),
  });
  // Checkpoint row of wqkv for GGUF row r of q (kind 'q': head = r / D) or k (head = KV group).
  const unpermute = (j: number) => (j & 1) * (D / 2) + (j >> 1);
  const qkvRow = (kind: 'q' | 'k' | 'v', r: number): number => {
    const head = Math.floor(r / D),
      j = r % D;
    const d = kind === 'v' ? j : unpermute(j);
    const g = kind === 'q' ? Math.floor(head / P) : head;
    const slot = kind === 'q' ? head % P : kind === 'k' ? P : P + 1;
    return (g * (P + 2) + slot) * D + d;
  };
  const tensors: GgufTensor[] = [direct('token_embd.weight', 'model.tok_embeddings.weight', H, V)];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const qkv = (kind: 'q' | 'k' | 'v', heads: number): GgufTensor => ({
      name: `blk.${l}.attn_${kind}.weight`,
      dims: [H, heads * D],
      type: mat(H),
      async rows(r0, n) {
        // Rows of one head are contiguous in the checkpoint (permuted within it): read per head.
        const out = new Float32Array(n * H);
        for (let i = 0; i < n;) {
          const r = r0 + i,
            head = Math.floor(r / D),
            end = Math.min(r0 + n, (head + 1) * D);
          const base = qkvRow(kind, head * D); // the head's first checkpoint row
          const block = await ck.rows(`${p}attention.wqkv.weight`, base, D);
          for (let rr = r; rr < end; rr++) {
            const src = qkvRow(kind, rr) - base;
            out.set(block.subarray(src * H, (src + 1) * H), (rr - r0) * H);
          }
          i += end - r;
        }
        return out;
      },
    });
    tensors.push(
      direct(`blk.${l}.attn_norm.weight`, `${p}attention_norm.weight`, H, 1, 'F32'),
      qkv('q', nH),
      qkv('k', KV),
      qkv('v', KV),
      direct(`blk.${l}.attn_output.weight`, `${p}attention.wo.weight`, nH * D, H),
      direct(`blk.${l}.ffn_norm.weight`, `${p}ffn_norm.weight`, H, 1, 'F32'),
      direct(`blk.${l}.ffn_gate.weight`, `${p}feed_forward.w1.weight`, H, F),
      direct(`blk.${l}.ffn_up.weight`, `${p}feed_forward.w3.weight`, H, F),
      direct(`blk.${l}.ffn_down.weight`, `${p}feed_forward.w2.weight`, F, H),
    );
  }
  tensors.push(direct('output_norm.weight', 'model.norm.weight', H, 1, 'F32'), direct('output.weight', 'output.weight', H, V));
  return { meta, tensors };
}

/** Writes the GGUF file(s) of a checkpoint into `dir` (Node). Returns the file names (first one: what wllama is given first). */
export async function exportToDir(o: {
  ck: Checkpoint;
  vocab: Vocab;
  arch: Arch;
  weights: GgmlTypeName;
  dir: string;
  prefix: string;
  maxFileBytes?: number;
  contextLength?: number;
  log?: (s: string) => void;
  /** Parallel encoding (bench/peer/llama.ts's worker threads); see writeGguf. */
  encode?: (index: number, r0: number, n: number) => Promise<Uint8Array>;
  ahead?: number;
}): Promise<{ files: string[]; bytes: number[] }> {
  const fsp = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
  await fsp.mkdir(o.dir, { recursive: true });
  const { meta, tensors } = ggufModel(o.ck, o.vocab, o.arch, o.weights, o.contextLength);
  const t0 = performance.now();
  return writeGguf({
    prefix: o.prefix,
    meta,
    tensors,
    maxFileBytes: o.maxFileBytes,
    encode: o.encode,
    ahead: o.ahead,
    async open(name) {
      const fh = await fsp.open(`${o.dir}/${name}`, 'w');
      // Buffered: many small writes (a row block each) into 8 MB blocks.
      let buf = new Uint8Array(8 << 20),
        n = 0;
      const flush = async () => {
        if (n) await fh.write(buf.subarray(0, n));
        n = 0;
      };
      return {
        async write(b) {
          if (n + b.byteLength > buf.byteLength) await flush();
          if (b.byteLength > buf.byteLength) {
            await fh.write(b);
            return;
          }
          buf.set(b, n);
          n += b.byteLength;
        },
        async close() {
          await flush();
          await fh.close();
          buf = new Uint8Array(0);
        },
      };
    },
    onTensor: (t, f) => o.log?.(`${f}: ${t.name} [${t.dims.join(', ')}] ${t.type} (${((performance.now() - t0) / 1000).toFixed(1)} s)`),
  });
}
