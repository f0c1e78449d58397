/**
 * ModelSpec: what the engine needs to know about a checkpoint, parsed once
 * from config.json by a family module (models/chatglm2.ts, models/internlm2.ts).
 * Dimension names: dim, nHeads, nKvHeads, headDim, ffnDim, vocabSize.
 */
export type Family = 'chatglm2' | 'internlm2';

/**
 * RoPE variants:
 * - 'interleaved-half' (ChatGLM2): rotary on the first rotaryDim = headDim/2
 *   dims, interleaved pairs (x[2i], x[2i+1]), theta_i = base^(-2i/rotaryDim).
 * - 'neox' (InternLM2): rotate_half over rotaryDim = headDim,
 *   theta_j = base^(-2j/headDim), pairs (x[j], x[j + headDim/2]).
 */
export type RopeVariant = 'interleaved-half' | 'neox';

export interface RopeSpec {
  variant: RopeVariant;
  /** Effective base (ChatGLM2: 10000 * rope_ratio; InternLM2: rope_theta). */
  base: number;
  rotaryDim: number;
  /** rope_scaling from config.json (InternLM2 dynamic NTK: base changes past maxPositions). */
  scaling?: { type: 'dynamic' | 'linear'; factor: number };
  /** max_position_embeddings / seq_length: where dynamic NTK starts. */
  maxPositions: number;
}

export interface ModelSpec {
  family: Family;
  /** config.json's model_type. */
  modelType: string;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  normEps: number;
  /** QKV projection has a bias (ChatGLM2 add_qkv_bias). */
  qkvBias: boolean;
  rope: RopeSpec;
  /** Context the model was trained for (seq_length / max_position_embeddings). */
  contextLength: number;
  bosId?: number;
  eosIds: number[];
  padId?: number;
  /** The raw config.json, for anything family-specific. */
  config: Record<string, unknown>;
}

/**
 * Canonical tensor names on the engine side (families map checkpoint names to these):
 *   embed                    [vocabSize, dim]
 *   layers.N.attnNorm        [dim]
 *   layers.N.wqkv            [(nHeads + 2 nKvHeads) * headDim, dim]  rows: all Q heads, then K heads, then V heads
 *   layers.N.bqkv            [(nHeads + 2 nKvHeads) * headDim]       (when qkvBias)
 *   layers.N.wo              [dim, nHeads * headDim]
 *   layers.N.ffnNorm         [dim]
 *   layers.N.wGateUp         [2 * ffnDim, dim]   rows: gate (w1 / first half of dense_h_to_4h), then up
 *   layers.N.wDown           [dim, ffnDim]
 *   finalNorm                [dim]
 *   lmHead                   [vocabSize, dim]
 */
export type CanonicalTensor = 'embed' | 'finalNorm' | 'lmHead' | `layers.${number}.${'attnNorm' | 'wqkv' | 'bqkv' | 'wo' | 'ffnNorm' | 'wGateUp' | 'wDown'}`;

/** Checkpoint tensor dtypes as stored in files. */
export type FileDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/**
 * Where one tensor's raw bytes are: produced by the safetensors reader and by
 * the PyTorch .bin reader alike (both store raw little-endian, contiguous
 * row-major data at a byte range of a file), consumed by the weight loader.
 */
export interface TensorEntry {
  name: string;
  dtype: FileDtype;
  shape: number[];
  /** File within the source. */
  file: string;
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  byteLength: number;
  /** PyTorch: the zip entry (storage) holding the bytes, with its CRC-32, checked as the bytes are read. */
  storage?: { entry: string; offset: number; byteLength: number; crc32: number };
}
