/**
 * Synthetic checkpoints (Node only): a config.json and safetensors shards of
 * a ChatGLM2 or InternLM2 model of any size with seeded random weights,
 * written in chunks so a multi-GB file never sits in memory. Used by the
 * loader tests (bad inputs, heap growth) and bench/load.ts.
 */
import { f32ToF16 } from '../../src/loader/quant.ts';
import { safetensorsLayout, type TensorSpec } from '../../src/loader/safetensors-write.ts';
import { INDEX_FILE, SINGLE_FILE } from '../../src/loader/safetensors.ts';
import type { FileDtype } from '../../src/loader/source.ts';

export interface SyntheticOptions {
  family: 'chatglm2' | 'internlm2';
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  vocabSize: number;
  /** chatglm2 only (kv_channels); internlm2 uses dim / nHeads. */
  headDim?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  shards?: number;
  seed?: number;
  contextLength?: number;
}

export interface SyntheticModel {
  dir: string;
  files: string[];
  totalBytes: number;
  tensors: TensorSpec[];
}

/** Dimensions of about `bytes` of weights in `dtype` (a stretched tiny InternLM2). */
export function syntheticOfSize(bytes: number, dtype: 'F32' | 'F16' | 'BF16' = 'BF16'): SyntheticOptions {
  const elem = dtype === 'F32' ? 4 : 2;
  const dim = bytes >= 512 << 20 ? 2048 : 1024;
  const ffnDim = Math.round((dim * 8) / 3 / 64) * 64;
  const perLayer = (dim * (dim + 2 * (dim / 4)) + dim * dim + 3 * dim * ffnDim) * elem;
  const vocabSize = 8192;
  const nLayers = Math.max(1, Math.round((bytes - 2 * vocabSize * dim * elem) / perLayer));
  return { family: 'internlm2', dim, nLayers, nHeads: dim / 64, nKvHeads: dim / 256, ffnDim, vocabSize, dtype };
}

export function syntheticConfig(o: SyntheticOptions): Record<string, unknown> {
  const ctx = o.contextLength ?? 2048;
  if (o.family === 'internlm2') {
    return {
      architectures: ['InternLM2ForCausalLM'],
      model_type: 'internlm2',
      bias: false,
      bos_token_id: 1,
      eos_token_id: 2,
      pad_token_id: 0,
      hidden_act: 'silu',
      hidden_size: o.dim,
      intermediate_size: o.ffnDim,
      max_position_embeddings: ctx,
      num_attention_heads: o.nHeads,
      num_hidden_layers: o.nLayers,
      num_key_value_heads: o.nKvHeads,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 1e6,
      tie_word_embeddings: false,
      vocab_size: o.vocabSize,
    };
  }
  return {
    architectures: ['ChatGLMModel'],
    model_type: 'chatglm',
    add_bias_linear: false,
    add_qkv_bias: true,
    ffn_hidden_size: o.ffnDim,
    hidden_size: o.dim,
    kv_channels: o.headDim ?? o.dim / o.nHeads,
    layernorm_epsilon: 1e-5,
    multi_query_attention: true,
    multi_query_group_num: o.nKvHeads,
    num_attention_heads: o.nHeads,
    num_layers: o.nLayers,
    padded_vocab_size: o.vocabSize,
    post_layer_norm: true,
    rmsnorm: true,
    seq_length: ctx,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

/** Checkpoint tensor names and shapes of the family, in file order. */
export function syntheticTensors(o: SyntheticOptions): TensorSpec[] {
  const dt: FileDtype = o.dtype ?? 'F32';
  const t = (name: string, ...shape: number[]): TensorSpec => ({ name, dtype: dt, shape });
  const out: TensorSpec[] = [];
  if (o.family === 'internlm2') {
    const hd = o.dim / o.nHeads;
    out.push(t('model.tok_embeddings.weight', o.vocabSize, o.dim));
    for (let i = 0; i < o.nLayers; i++) {
      const p = `model.layers.${i}.`;
      out.push(
        t(`${p}attention.wqkv.weight`, (o.nHeads + 2 * o.nKvHeads) * hd, o.dim),
        t(`${p}attention.wo.weight`, o.dim, o.nHeads * hd),
        t(`${p}attention_norm.weight`, o.dim),
        t(`${p}ffn_norm.weight`, o.dim),
        t(`${p}feed_forward.w1.weight`, o.ffnDim, o.dim),
        t(`${p}feed_forward.w3.weight`, o.ffnDim, o.dim),
        t(`${p}feed_forward.w2.weight`, o.dim, o.ffnDim),
      );
    }
    out.push(t('model.norm.weight', o.dim), t('output.weight', o.vocabSize, o.dim));
  } else {
    const hd = o.headDim ?? o.dim / o.nHeads;
    const qkv = (o.nHeads + 2 * o.nKvHeads) * hd;
    out.push(t('transformer.embedding.word_embeddings.weight', o.vocabSize, o.dim));
    for (let i = 0; i < o.nLayers; i++) {
      const p = `transformer.encoder.layers.${i}.`;
      out.push(
        t(`${p}input_layernorm.weight`, o.dim),
        t(`${p}self_attention.query_key_value.weight`, qkv, o.dim),
        t(`${p}self_attention.query_key_value.bias`, qkv),
        t(`${p}self_attention.dense.weight`, o.dim, o.nHeads * hd),
        t(`${p}post_attention_layernorm.weight`, o.dim),
        t(`${p}mlp.dense_h_to_4h.weight`, 2 * o.ffnDim, o.dim),
        t(`${p}mlp.dense_4h_to_h.weight`, o.dim, o.ffnDim),
      );
    }
    out.push(
      t('transformer.encoder.final_layernorm.weight', o.dim),
      t('transformer.output_layer.weight', o.vocabSize, o.dim),
      t('transformer.rotary_pos_emb.inv_freq', hd / 4),
    );
  }
  return out;
}

/** Fills `out` with `n` values of `dtype` from a xorshift stream: uniform in (-0.1, 0.1), norms near 1. */
function fillChunk(dtype: FileDtype, n: number, state: { s: number }, isNorm: boolean): Uint8Array {
  const bytes = new Uint8Array(n * (dtype === 'F32' ? 4 : 2));
  const f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
  const h = dtype === 'F32' ? undefined : new Uint16Array(bytes.buffer);
  const w = dtype === 'F32' ? new Float32Array(bytes.buffer) : undefined;
  let s = state.s;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const v = ((s >>> 8) / 16777216 - 0.5) * 0.2 + (isNorm ? 1 : 0);
    if (w) w[i] = v;
    else if (dtype === 'BF16') {
      f[0] = v;
      h![i] = u[0] >>> 16;
    } else h![i] = f32ToF16(v);
  }
  state.s = s;
  return bytes;
}

/** Writes config.json and the safetensors file(s) of a synthetic model into `dir` (created if needed). */
export async function writeSyntheticModel(dir: string, o: SyntheticOptions): Promise<SyntheticModel> {
  const fsp = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(`${dir}/config.json`, JSON.stringify(syntheticConfig(o), null, 2));
  const tensors = syntheticTensors(o);
  const nShards = Math.max(1, o.shards ?? 1);
  const elemBytes = (o.dtype ?? 'F32') === 'F32' ? 4 : 2;
  const sizeOf = (t: TensorSpec) => t.shape.reduce((a, b) => a * b, 1) * elemBytes;
  const total = tensors.reduce((s, t) => s + sizeOf(t), 0);
  const groups: TensorSpec[][] = Array.from({ length: nShards }, () => []);
  let acc = 0;
  for (const t of tensors) {
    groups[Math.min(nShards - 1, Math.floor((acc / total) * nShards))].push(t);
    acc += sizeOf(t);
  }
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  const state = { s: ((o.seed ?? 1) * 2654435761) >>> 0 || 1 };
  for (let k = 0; k < nShards; k++) {
    if (!groups[k].length) continue;
    const file = nShards === 1 ? SINGLE_FILE : `model-${String(k + 1).padStart(5, '0')}-of-${String(nShards).padStart(5, '0')}.safetensors`;
    const layout = safetensorsLayout(groups[k], { format: 'pt' });
    const fh = await fsp.open(`${dir}/${file}`, 'w');
    try {
      await fh.write(layout.header);
      for (const { spec } of layout.tensors) {
        const n = spec.shape.reduce((a, b) => a * b, 1);
        const chunk = 1 << 20;
        for (let i = 0; i < n; i += chunk) await fh.write(fillChunk(spec.dtype, Math.min(chunk, n - i), state, spec.shape.length === 1));
        weightMap[spec.name] = file;
      }
    } finally {
      await fh.close();
    }
    files.push(file);
    totalBytes += layout.totalBytes;
  }
  if (nShards > 1) await fsp.writeFile(`${dir}/${INDEX_FILE}`, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return { dir, files, totalBytes, tensors };
}
