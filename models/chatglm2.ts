/**
 * ChatGLM2 / ChatGLM3 (THUDM/chatglm2-6b, chatglm3-6b): config.json parsing
 * with the config's own field names, and the weight table. See
 * ../shared/MODELS.md. QKV is a plain concatenation [Q (nHeads x headDim);
 * K (nKvHeads x headDim); V], already canonical; dense_h_to_4h is already
 * [gate; up]. RoPE: interleaved pairs on the first headDim/2 dims, base
 * 10000 * rope_ratio.
 */
import type { ModelSpec, TensorEntry } from './spec.ts';
import { configError, num, SANE, optBool, optNum, optTokenId, tokenIds, TensorTable, type Config, type TensorRecipe, type WeightPlan } from './config.ts';

const F = 'chatglm';

export function parseChatglm2Config(c: Config): ModelSpec {
  const dim = num(c, F, 'hidden_size', { int: true, positive: true });
  const nLayers = num(c, F, 'num_layers', { int: true, positive: true });
  const nHeads = num(c, F, 'num_attention_heads', { int: true, positive: true });
  const headDim = num(c, F, 'kv_channels', { int: true, positive: true });
  const mqa = optBool(c, F, 'multi_query_attention', false);
  const nKvHeads = mqa ? num(c, F, 'multi_query_group_num', { int: true, positive: true }) : nHeads;
  if (nHeads % nKvHeads !== 0) throw configError(F, 'multi_query_group_num', `(${nKvHeads}) must divide num_attention_heads (${nHeads})`);
  if (headDim % 4 !== 0) throw configError(F, 'kv_channels', `(${headDim}) must be a multiple of 4 (rotary pairs on half the head)`);
  if (!optBool(c, F, 'rmsnorm', true)) throw configError(F, 'rmsnorm', 'false (LayerNorm) is not supported; ChatGLM2 uses RMSNorm');
  if (optBool(c, F, 'add_bias_linear', false)) throw configError(F, 'add_bias_linear', 'true is not supported (ChatGLM2 has no linear biases besides QKV)');
  if (!optBool(c, F, 'post_layer_norm', true)) throw configError(F, 'post_layer_norm', 'false is not supported (the final norm is required)');
  if (optBool(c, F, 'apply_residual_connection_post_layernorm', false))
    throw configError(F, 'apply_residual_connection_post_layernorm', 'true is not supported (residuals are taken before the norm in ChatGLM2)');
  if (!optBool(c, F, 'original_rope', true)) throw configError(F, 'original_rope', 'false is not supported (ChatGLM2 uses the original interleaved rotary)');
  const ropeRatio = optNum(c, F, 'rope_ratio', 1, { positive: true, ...SANE.ropeRatio });
  const contextLength = num(c, F, 'seq_length', { int: true, positive: true, ...SANE.positions });
  return {
    family: 'chatglm2',
    modelType: F,
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: num(c, F, 'ffn_hidden_size', { int: true, positive: true }),
    vocabSize: num(c, F, 'padded_vocab_size', { int: true, positive: true, ...SANE.vocab }),
    normEps: num(c, F, 'layernorm_epsilon', { positive: true, ...SANE.eps }),
    qkvBias: optBool(c, F, 'add_qkv_bias', false),
    rope: { variant: 'interleaved-half', base: 10000 * ropeRatio, rotaryDim: headDim / 2, maxPositions: contextLength },
    contextLength,
    eosIds: tokenIds(c, F, 'eos_token_id'),
    padId: optTokenId(c, F, 'pad_token_id'),
    config: c,
  };
}

/** Checkpoint name -> canonical name table (one line per tensor) and explicit drops. */
export function chatglm2Weights(spec: ModelSpec, entries: TensorEntry[], where: string): WeightPlan {
  const t = new TensorTable('chatglm2', entries, where);
  const { dim, headDim, nHeads, nKvHeads, ffnDim, vocabSize } = spec;
  const qkvRows = (nHeads + 2 * nKvHeads) * headDim;
  const recipes: TensorRecipe[] = [t.recipe('embed', 'transformer.embedding.word_embeddings.weight', [vocabSize, dim])];
  for (let i = 0; i < spec.nLayers; i++) {
    const p = `transformer.encoder.layers.${i}.`;
    recipes.push(
      t.recipe(`layers.${i}.attnNorm`, `${p}input_layernorm.weight`, [dim]),
      t.recipe(`layers.${i}.wqkv`, `${p}self_attention.query_key_value.weight`, [qkvRows, dim]),
      ...(spec.qkvBias ? [t.recipe(`layers.${i}.bqkv`, `${p}self_attention.query_key_value.bias`, [qkvRows])] : []),
      t.recipe(`layers.${i}.wo`, `${p}self_attention.dense.weight`, [dim, nHeads * headDim]),
      t.recipe(`layers.${i}.ffnNorm`, `${p}post_attention_layernorm.weight`, [dim]),
      t.recipe(`layers.${i}.wGateUp`, `${p}mlp.dense_h_to_4h.weight`, [2 * ffnDim, dim]),
      t.recipe(`layers.${i}.wDown`, `${p}mlp.dense_4h_to_h.weight`, [dim, ffnDim]),
    );
  }
  recipes.push(
    t.recipe('finalNorm', 'transformer.encoder.final_layernorm.weight', [dim]),
    t.recipe('lmHead', 'transformer.output_layer.weight', [vocabSize, dim]),
  );
  const dropped = ['transformer.rotary_pos_emb.inv_freq'].filter((n) => t.drop(n));
  t.checkAllUsed();
  return { recipes, dropped };
}
