/**
 * InternLM2 / InternLM2.5 (internlm/internlm2-chat-7b, -1_8b): config.json
 * parsing with the config's own field names, and the weight table. See
 * ../shared/MODELS.md. wqkv is packed per KV group ([nKvHeads, nHeads/nKvHeads
 * + 2, headDim, dim]: the group's query heads, then one K head, then one V
 * head); it is unpacked here into canonical [all Q; all K; all V] rows.
 * Gate/up: w1 then w3. RoPE: NeoX rotate_half, base rope_theta, optional
 * rope_scaling (dynamic NTK past max_position_embeddings).
 */
import type { ModelSpec, RopeSpec, TensorEntry } from './spec.ts';
import {
  configError,
  num,
  SANE,
  optBool,
  optNum,
  optTokenId,
  tokenIds,
  TensorTable,
  whole,
  type Config,
  type RowSegment,
  type TensorRecipe,
  type WeightPlan,
} from './config.ts';

const F = 'internlm2';

export function parseInternlm2Config(c: Config): ModelSpec {
  const dim = num(c, F, 'hidden_size', { int: true, positive: true });
  const nHeads = num(c, F, 'num_attention_heads', { int: true, positive: true });
  const nKvHeads = optNum(c, F, 'num_key_value_heads', nHeads, { int: true, positive: true });
  if (dim % nHeads !== 0) throw configError(F, 'num_attention_heads', `(${nHeads}) must divide hidden_size (${dim})`);
  if (nHeads % nKvHeads !== 0) throw configError(F, 'num_key_value_heads', `(${nKvHeads}) must divide num_attention_heads (${nHeads})`);
  const headDim = dim / nHeads;
  if (headDim % 2 !== 0) throw configError(F, 'num_attention_heads', `gives an odd head dim ${headDim}; rotary needs an even one`);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw configError(F, 'hidden_act', `'${String(act)}' is not supported (InternLM2 uses silu)`);
  if (optBool(c, F, 'bias', false)) throw configError(F, 'bias', 'true is not supported (InternLM2 checkpoints have no linear biases)');
  const contextLength = num(c, F, 'max_position_embeddings', { int: true, positive: true, ...SANE.positions });
  const rope: RopeSpec = {
    variant: 'neox',
    base: optNum(c, F, 'rope_theta', 10000, { positive: true, ...SANE.ropeTheta }),
    rotaryDim: headDim,
    maxPositions: contextLength,
  };
  const rs = c.rope_scaling;
  if (rs !== undefined && rs !== null) {
    const r = rs as { type?: unknown; rope_type?: unknown; factor?: unknown };
    const type = r.type ?? r.rope_type;
    if (typeof rs !== 'object' || (type !== 'dynamic' && type !== 'linear'))
      throw configError(F, 'rope_scaling', `must be null or {type: "dynamic" | "linear", factor}, got ${JSON.stringify(rs)}`);
    if (typeof r.factor !== 'number' || !(r.factor >= 1 && r.factor <= SANE.ropeFactor.max))
      throw configError(
        F,
        'rope_scaling',
        `factor must be a number in [1, ${SANE.ropeFactor.max}], got ${typeof r.factor === 'number' ? String(r.factor) : JSON.stringify(r.factor)}`,
      );
    rope.scaling = { type, factor: r.factor };
  }
  return {
    family: 'internlm2',
    modelType: F,
    dim,
    nLayers: num(c, F, 'num_hidden_layers', { int: true, positive: true }),
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: num(c, F, 'intermediate_size', { int: true, positive: true }),
    vocabSize: num(c, F, 'vocab_size', { int: true, positive: true, ...SANE.vocab }),
    normEps: num(c, F, 'rms_norm_eps', { positive: true, ...SANE.eps }),
    qkvBias: false,
    rope,
    contextLength,
    bosId: optTokenId(c, F, 'bos_token_id'),
    eosIds: tokenIds(c, F, 'eos_token_id'),
    padId: optTokenId(c, F, 'pad_token_id'),
    config: c,
  };
}

/** Checkpoint name -> canonical name table (one line per tensor) and explicit drops. */
export function internlm2Weights(spec: ModelSpec, entries: TensorEntry[], where: string): WeightPlan {
  const t = new TensorTable('internlm2', entries, where);
  const { dim, headDim, nHeads, nKvHeads, ffnDim, vocabSize } = spec;
  const recipes: TensorRecipe[] = [t.recipe('embed', 'model.tok_embeddings.weight', [vocabSize, dim])];
  const qkvRows = (nHeads + 2 * nKvHeads) * headDim;
  for (let i = 0; i < spec.nLayers; i++) {
    const p = `model.layers.${i}.`;
    const wqkv = t.get(`${p}attention.wqkv.weight`, [qkvRows, dim]);
    const w1 = t.get(`${p}feed_forward.w1.weight`, [ffnDim, dim]);
    const w3 = t.get(`${p}feed_forward.w3.weight`, [ffnDim, dim]);
    recipes.push(
      t.recipe(`layers.${i}.attnNorm`, `${p}attention_norm.weight`, [dim]),
      { name: `layers.${i}.wqkv`, shape: [qkvRows, dim], segments: unpackWqkv(wqkv, nHeads, nKvHeads, headDim) },
      t.recipe(`layers.${i}.wo`, `${p}attention.wo.weight`, [dim, nHeads * headDim]),
      t.recipe(`layers.${i}.ffnNorm`, `${p}ffn_norm.weight`, [dim]),
      { name: `layers.${i}.wGateUp`, shape: [2 * ffnDim, dim], segments: [whole(w1), whole(w3)] },
      t.recipe(`layers.${i}.wDown`, `${p}feed_forward.w2.weight`, [dim, ffnDim]),
    );
  }
  recipes.push(t.recipe('finalNorm', 'model.norm.weight', [dim]));
  // Untied checkpoints (all published ones, stories260k too) have output.weight;
  // a tied one reuses the embedding rows.
  const tied = optBool(spec.config, F, 'tie_word_embeddings', false);
  if (t.has('output.weight') || !tied) recipes.push(t.recipe('lmHead', 'output.weight', [vocabSize, dim]));
  else recipes.push({ name: 'lmHead', shape: [vocabSize, dim], segments: recipes[0].segments });
  const dropped = Array.from({ length: spec.nLayers }, (_, i) => `model.layers.${i}.attention.rotary_emb.inv_freq`).filter((n) => t.drop(n));
  t.checkAllUsed();
  return { recipes, dropped };
}

/**
 * wqkv rows per KV group g: [g * (r + 2) * headDim, ...) holds r = nHeads/nKvHeads
 * query heads, then one K head, then one V head. Canonical order: all Q heads
 * (group by group, so head h = g * r + j), then all K, then all V.
 */
export function unpackWqkv(wqkv: TensorEntry, nHeads: number, nKvHeads: number, headDim: number): RowSegment[] {
  const r = nHeads / nKvHeads;
  const groupRows = (r + 2) * headDim;
  const q: RowSegment[] = [],
    k: RowSegment[] = [],
    v: RowSegment[] = [];
  for (let g = 0; g < nKvHeads; g++) {
    q.push({ entry: wqkv, rowStart: g * groupRows, rows: r * headDim });
    k.push({ entry: wqkv, rowStart: g * groupRows + r * headDim, rows: headDim });
    v.push({ entry: wqkv, rowStart: g * groupRows + (r + 1) * headDim, rows: headDim });
  }
  return [...q, ...k, ...v];
}
