/**
 * Structured synthetic models: checkpoints (ChatGLM2 or InternLM2 names,
 * packing and config.json) at any size, tiny to the 7B shapes, whose
 * attention heads show the structure real long-context heads have — an
 * attention sink on the first token, local bands, column stripes on some
 * token ids, and optionally a needle that the last query rows retrieve.
 * Weights are a pure function of (options, tensor, row, column): generated on
 * the fly, never stored (see source.ts for the FileSource / folder outputs and
 * prompt.ts for prompts with the planted tokens).
 *
 * HOW THE WEIGHTS PRODUCE EACH PATTERN
 * Residual basis (H = dim): coordinates 0..7 are "features", 8..H-1 the
 * "identity" of a token (a random unit-variance vector per token id).
 *   c0 BIAS   = beta = sqrt(H)/4 in every token's embedding: a constant input
 *               from which W_q/W_k make components that are the same for all
 *               tokens;
 *   c1 SINK   = large on the sink token (id 1, the first prompt token);
 *   c2 STRIPE = on stripe token ids 3..10; c3 NEEDLE = on needle ids 16..23;
 *   c4 QUERY  = on question ids 24..31 (the prompt's last rows).
 * Every embedding row has rms exactly 1 (the identity part fills the energy
 * the features leave). Attention outputs, FFN outputs and the LM head only
 * touch identity coordinates, so the features reach every layer unchanged;
 * each layer's norm weight is a constant g = sqrt(1 + l' rho^2) that undoes
 * the expected rms growth of the residual (rho = residual scale of a
 * sublayer), so every layer sees normalized features of the same size.
 * Per head (dimension D), rotary geometry decides what a dimension can carry:
 * ChatGLM2 rotates pairs (2i, 2i+1) of the first D/2 dims and passes
 * [D/2, D) through; InternLM2 rotates pairs (j, j+D/2) with
 * theta_j = 1e6^(-2j/D), so its three lowest-frequency pairs turn by at most
 * ~0.3 rad over 128K tokens and serve as pass-through "slots".
 *  - SINK: k[slot_sink] = K0 = 8 on the sink token only (from c1), and
 *    q[slot_sink] = lambda_sink sqrt(D) / K0 for every token (from c0): every
 *    row gets score +lambda_sink on column 0. The sink token's identity (so
 *    its value) is tiny: attending to it is a no-op, as in real models.
 *  - LOCAL BAND: on the band pairs, q and k have the same direction for
 *    every token (from c0): k_p = 1, q_p = lambda_band w_p sqrt(D), sum
 *    w_p = 1. After RoPE the score of row i on column j is
 *    lambda_band sum_p w_p cos((i-j) theta_p): lambda_band at distance 0,
 *    decaying with |i-j|. With w_p ~ sqrt(theta_p) exp(-(theta_p W)^2 / 2) the
 *    profile falls to half at ~1.5-2 W tokens: a band of width ~W. RoPE has
 *    only D/2 (ChatGLM2: D/4) frequencies, so far from the diagonal the
 *    cosines do not cancel exactly: pseudo-random sidelobes of rms ~0.17
 *    lambda_band remain (this weighting maximizes the number of pairs that
 *    share the weight, which minimizes them), as in real RoPE local heads.
 *  - COLUMN STRIPES: k[slot_stripe] = K0 on stripe token ids (from c2),
 *    q[slot_stripe] = lambda_stripe sqrt(D) / K0 for every row (from c0): every
 *    query scores +lambda_stripe on every stripe token, wherever it is.
 *  - NEEDLE: k[slot_needle] = K0 on needle ids (from c3), q[slot_needle] =
 *    lambda_needle sqrt(D) / (K0 * c4) only from the QUERY feature, so only
 *    question tokens (the last rows) look for it, in retrieval heads (a
 *    fraction of the heads, lambda_needle ~ 20: it dominates those rows).
 *    Question tokens carry little identity and retrieval heads have a larger
 *    output gain, so the next-token prediction after the question comes from
 *    the retrieved needle: a sparse prefill that misses it changes the output.
 *  - DIFFUSE BACKGROUND: the remaining dims (ChatGLM2: pass-through dims after
 *    the slots; InternLM2: every 4th rotary pair) read the token identity
 *    through random W_q/W_k rows: content-dependent scores with standard
 *    deviation sigma_noise; a few "diffuse" heads have weak structure and
 *    stronger noise (no sparsity to find there).
 *  - HEAVY BACKGROUND (option background: 'heavy', the default; 'flat' gives
 *    the weights of the model before it, bit for bit). Real heads' keys are
 *    not equal outside the planted columns: the attention a key accumulates
 *    follows a power law (H2O's heavy hitters), and the number of such keys
 *    grows with the prompt. Here every ordinary token id t has a salience
 *    zeta_t ~ N(0, 1) (seeded hash, clipped to +-4), stored in embedding
 *    coordinate c5 = zeta_t sqrt(H / 256) (so <= 1/16 of the row's energy);
 *    W_k maps c5 into one more pass-through slot (ChatGLM2: dim D/2 + 3;
 *    InternLM2: the pair half - 4, taken from the band pairs) as
 *    k = K0 zeta_t, and every query of head h carries sigma_h sqrt(D) / K0
 *    there (from c0), so key t gets the logit offset sigma_h zeta_t in every
 *    row: lognormal key weights, sigma_h in [1.5, 2.5] for mixed and
 *    retrieval heads (diffuse heads keep their flat noise). With weights that
 *    see no positions, a background summing over i keys would outgrow the
 *    fixed sink and band; what keeps pace is the stripes, whose count grows
 *    with the prompt (syntheticPrompt: a separator every ~256 tokens plus
 *    0.2%, density rho ~ 0.0059): a mixed head's stripe logit is set from a
 *    target background share B_h (log-uniform in [0.05, 0.3]) as
 *    ln(m_h (1 - B_h) / (B_h rho)), m_h = exp(sigma_h^2 / 2 + noise^2 / 2)
 *    the mean background weight per token (~7-11), so that far from the
 *    diagonal, background : stripes -> B_h : (1 - B_h) as the prompt grows
 *    (the sink's and the band's shares fall with length instead). Measured on
 *    layer 0 of an InternLM2-family model (dim 1024, 8 heads, 2 KV heads,
 *    D = 128, seed 21; 5 mixed, 2 retrieval, 1 diffuse head), row S - 9 of a
 *    syntheticPrompt (seed 8, 1 needle), mass on sink / window (8% of S) /
 *    stripes outside it / all other keys outside it, over the 5 mixed heads:
 *      heavy S = 8K:  sink 0.00-0.04, window 0.61-0.99, stripes 0.01-0.32, rest 0.00-0.05
 *      heavy S = 32K: sink 0.00-0.57, window 0.15-0.89, stripes 0.10-0.50, rest 0.02-0.13
 *      flat  S = 32K: sink 0.02-0.98, window 0.01-0.93, stripes 0.01-0.19, rest 0.00-0.10
 *    (retrieval heads: sink 0.98-1.0; the diffuse head: 0.93-0.97 outside
 *    the window, both modes). The model's rows are dominated by the window
 *    (bands up to 256 tokens wide, stripe tokens inside the band get both
 *    logits); the heavy mode moves the far mass onto a growing set of heavy
 *    keys rather than spreading it thinly. The model-level agreement test
 *    (2048 tokens, heavy) measured top-1 99.80% / 100% at alpha 0.95 / 0.99,
 *    16/16 greedy tokens equal, mean area 0.157 / 0.195.
 * Head kinds are drawn per (layer, head): mixed (sink + band + stripes),
 * retrieval (strong sink, needle), diffuse. Values copy identity (W_v random,
 * W_o = gain * W_v^T), FFNs are random and small, the LM head maps identity
 * of token t to logit of sigma(t) (a fixed permutation), so greedy decoding
 * walks a deterministic chain, shifted by what attention copies. Measured
 * through the engine (4-32 layers, 300 tokens): argmax = sigma(current token)
 * at ~97-100% of rows with a mean top-2 gap of ~4-7 logits, and at the end of
 * a needle prompt the prediction is sigma(needle token), not sigma(question).
 */
import type { Family } from '../../models/spec.ts';

export type { Family };

export interface StructuredOptions {
  family: Family;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  vocabSize: number;
  /** ChatGLM2 kv_channels; InternLM2 always dim / nHeads. */
  headDim?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  seed?: number;
  /** config.json context (seq_length / max_position_embeddings). Default 131072. */
  contextLength?: number;
  /** Fraction of heads that are retrieval (needle) heads. Default 0.25. */
  retrievalHeads?: number;
  /** Fraction of heads with weak structure and strong noise. Default 0.1. */
  diffuseHeads?: number;
  /** Multiplies every planted score (sink, band, stripe, needle). Default 1. */
  sharpness?: number;
  /**
   * rms of each sublayer's output relative to the residual (rho). Default
   * 0.8 / nLayers: what attention copies adds up coherently over the layers
   * (stripe tokens are attended everywhere), so the total must stay below the
   * current token's identity; past ~1 / nLayers the LM head collapses onto
   * one stripe token's successor (measured on 4-32 layer models).
   */
  residualScale?: number;
  /** Shard size in bytes for the safetensors output. Default 2 GiB (one file below it). */
  shardBytes?: number;
  /**
   * 'heavy' (default): every ordinary token id has a salience zeta_t and the
   * mixed heads' stripes are strong enough to keep the background share at
   * 5-30% at long lengths (see HEAVY BACKGROUND above). 'flat': the model
   * before that (identity noise only; its background share grows with the
   * length), bit-identical to earlier loads.
   */
  background?: 'heavy' | 'flat';
}

/** Shapes of the real checkpoints (MODELS.md) and a tiny one for tests. */
export const PRESETS = {
  'internlm2-7b': { family: 'internlm2', dim: 4096, nLayers: 32, nHeads: 32, nKvHeads: 8, ffnDim: 14336, vocabSize: 92544 },
  'internlm2-1.8b': { family: 'internlm2', dim: 2048, nLayers: 24, nHeads: 16, nKvHeads: 8, ffnDim: 8192, vocabSize: 92544 },
  'chatglm2-6b': { family: 'chatglm2', dim: 4096, nLayers: 28, nHeads: 32, nKvHeads: 2, ffnDim: 13696, vocabSize: 65024, headDim: 128 },
  'internlm2-tiny': { family: 'internlm2', dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, vocabSize: 512 },
  'chatglm2-tiny': { family: 'chatglm2', dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, vocabSize: 512, headDim: 64 },
} as const satisfies Record<string, StructuredOptions>;

/** Token ids with planted roles (the vocabulary must have at least 64 ids). */
export const TOKENS = {
  sink: 1,
  stripes: [3, 4, 5, 6, 7, 8, 9, 10],
  needles: [16, 17, 18, 19, 20, 21, 22, 23],
  questions: [24, 25, 26, 27, 28, 29, 30, 31],
  firstOrdinary: 32,
} as const;

const C = { bias: 0, sink: 1, stripe: 2, needle: 3, query: 4, salience: 5, identity: 8 } as const;
/** Key slot value on the tokens that carry a slot feature. */
const K0 = 8;
/** Energy fractions (of H) of the features per token role. */
const ENERGY = { bias: 1 / 16, sink: 0.93, stripe: 0.1, needle: 0.1, query: 0.9 } as const;
/** Embedding energy (fraction of H) per unit zeta^2 of the salience feature; |zeta| <= ZETA_MAX. */
const SALIENCE_ENERGY = 1 / 256;
const ZETA_MAX = 4;
/** Stripe tokens per prompt token of syntheticPrompt's defaults (a separator every ~256 tokens + 0.2%). */
const STRIPE_DENSITY = 1 / 256 + 0.002;

export type HeadKind = 'mixed' | 'retrieval' | 'diffuse';
/** Planted scores of one head (added to q.k / sqrt(D) on the relevant columns). */
export interface HeadPlan {
  kind: HeadKind;
  sink: number;
  band: number;
  /** Band width W in tokens. */
  bandWidth: number;
  stripe: number;
  needle: number;
  /** Standard deviation of the content (identity) score noise. */
  noise: number;
  /** Output gain of the head (W_o scale). */
  gain: number;
  /** sigma_h: logit std of the per-token salience (0: flat background). */
  salience: number;
  /** Target background share at long lengths (heavy mixed heads; 0 otherwise). */
  background: number;
}

/** Which dims of a head carry what (same for every head of a model). */
export interface HeadDims {
  /** First element of each band pair and its rotation frequency. */
  bandDims: number[];
  bandTheta: number[];
  slot: { sink: number; stripe: number; needle: number; salience?: number };
  noiseDims: number[];
}

export interface Resolved extends Required<Omit<StructuredOptions, 'headDim'>> {
  headDim: number;
}

export function resolveOptions(o: StructuredOptions): Resolved {
  const headDim = o.family === 'internlm2' ? o.dim / o.nHeads : (o.headDim ?? o.dim / o.nHeads);
  const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as StructuredOptions;
  const r: Resolved = {
    dtype: 'BF16',
    seed: 1,
    contextLength: 131072,
    retrievalHeads: 0.25,
    diffuseHeads: 0.1,
    sharpness: 1,
    background: 'heavy',
    residualScale: 0.8 / o.nLayers,
    shardBytes: 2 * 1024 ** 3,
    ...given,
    headDim,
  };
  const bad = (why: string) => {
    throw new RangeError(`structured synthetic model: ${why}`);
  };
  for (const k of ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'vocabSize'] as const) {
    if (!Number.isInteger(r[k]) || r[k] <= 0) bad(`${k} must be a positive integer`);
  }
  if (!Number.isInteger(headDim) || headDim < 16 || headDim % 4) bad(`headDim ${headDim} must be an integer >= 16, multiple of 4`);
  if (r.nHeads % r.nKvHeads) bad(`nKvHeads ${r.nKvHeads} must divide nHeads ${r.nHeads}`);
  if (r.dim < 32) bad('dim must be at least 32');
  if (r.vocabSize < 64) bad('vocabSize must be at least 64 (ids below 32 have planted roles)');
  if (r.background !== 'heavy' && r.background !== 'flat') bad(`background must be 'heavy' or 'flat', got ${JSON.stringify(r.background)}`);
  return r;
}

/** Rotary geometry of the family: which dims are band pairs, slots and noise. */
export function headDims(o: Resolved): HeadDims {
  const D = o.headDim;
  if (o.family === 'chatglm2') {
    const pairs = D / 4;
    const bandDims: number[] = [],
      bandTheta: number[] = [];
    for (let i = 0; i < pairs; i++) {
      bandDims.push(2 * i);
      bandTheta.push(10000 ** (-(2 * i) / (D / 2)));
    }
    const noiseDims: number[] = [];
    const heavy = o.background === 'heavy';
    for (let d = D / 2 + (heavy ? 4 : 3); d < D; d++) noiseDims.push(d);
    return { bandDims, bandTheta, slot: { sink: D / 2, stripe: D / 2 + 1, needle: D / 2 + 2, ...(heavy ? { salience: D / 2 + 3 } : {}) }, noiseDims };
  }
  const half = D / 2;
  const theta = (j: number) => 1e6 ** (-(2 * j) / D);
  const bandDims: number[] = [],
    bandTheta: number[] = [],
    noiseDims: number[] = [];
  // heavy: the pair below the needle's is the salience slot (theta ~2.4e-6 at D = 128: ~0.3 rad over 128K).
  const heavy = o.background === 'heavy';
  for (let j = 0; j < half - (heavy ? 4 : 3); j++) {
    if (j % 4 === 3) noiseDims.push(j, j + half);
    else {
      bandDims.push(j);
      bandTheta.push(theta(j));
    }
  }
  return { bandDims, bandTheta, slot: { sink: half - 1, stripe: half - 2, needle: half - 3, ...(heavy ? { salience: half - 4 } : {}) }, noiseDims };
}

/**
 * The planted scores of head `h` of layer `l` (seeded; same for every call).
 * Kinds are stratified per layer: a seeded permutation of the heads gives the
 * first round(nHeads * retrievalHeads) retrieval heads, the next
 * round(nHeads * diffuseHeads) diffuse heads, the rest mixed.
 */
export function headPlan(o: Resolved, l: number, h: number): HeadPlan {
  const order = Array.from({ length: o.nHeads }, (_, i) => i);
  let t = mix(mix(o.seed ^ 0x7e57) ^ (l + 1));
  for (let i = order.length - 1; i > 0; i--) {
    t = mix(t + 0x9e3779b9);
    const j = (t >>> 0) % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const rank = order.indexOf(h);
  const nRetrieval = Math.round(o.nHeads * o.retrievalHeads);
  const nDiffuse = Math.round(o.nHeads * o.diffuseHeads);
  let s = mix(mix(mix(o.seed ^ 0x51ab) ^ l) ^ (h * 7919));
  const u = () => ((s = mix(s + 0x9e3779b9)) >>> 0) / 4294967296;
  const range = (lo: number, hi: number) => lo + (hi - lo) * u();
  const logRange = (lo: number, hi: number) => Math.exp(range(Math.log(lo), Math.log(hi)));
  const x = o.sharpness;
  const flat = { salience: 0, background: 0 };
  let p: HeadPlan;
  if (rank < nRetrieval) {
    p = {
      kind: 'retrieval',
      sink: x * range(14, 18),
      band: x * range(1, 3),
      bandWidth: logRange(2, 16),
      stripe: x * range(0, 2),
      needle: x * range(20, 26),
      noise: range(0.3, 0.6),
      gain: 8,
      ...flat,
    };
  } else if (rank < nRetrieval + nDiffuse) {
    p = {
      kind: 'diffuse',
      sink: x * range(0, 2),
      band: x * range(0, 2),
      bandWidth: 8,
      stripe: x * range(0, 1),
      needle: 0,
      noise: range(1.5, 2.5),
      gain: 1,
      ...flat,
    };
  } else {
    p = {
      kind: 'mixed',
      sink: x * range(9, 14),
      band: x * range(8, 12),
      bandWidth: logRange(4, 256),
      stripe: x * range(3, 6),
      needle: 0,
      noise: range(0.3, 0.8),
      gain: 1,
      ...flat,
    };
  }
  if (o.background === 'flat' || p.kind === 'diffuse') return p;
  // HEAVY BACKGROUND (drawn after the flat plan's values, which stay as they were).
  p.salience = range(1.5, 2.5);
  if (p.kind === 'mixed') {
    p.background = logRange(0.05, 0.3);
    // Stripe tokens (STRIPE_DENSITY of the prompt) outweigh the background (1 - B) / B to 1 once
    // both dominate the row: mean background weight per token exp(sigma^2 / 2 + noise^2 / 2).
    const meanW = Math.exp((p.salience ** 2 + p.noise ** 2) / 2);
    p.stripe = Math.log((meanW * (1 - p.background)) / (p.background * STRIPE_DENSITY));
  }
  return p;
}

/** Band pair weights w_p (sum 1) for width W: w_p ~ sqrt(theta_p) exp(-(theta_p W)^2 / 2). */
export function bandWeights(theta: number[], width: number): Float64Array {
  const w = new Float64Array(theta.length);
  let sum = 0;
  theta.forEach((t, p) => {
    w[p] = Math.sqrt(t) * Math.exp(-((t * width) ** 2) / 2);
    sum += w[p];
  });
  for (let p = 0; p < w.length; p++) w[p] /= sum;
  return w;
}

// ---------------------------------------------------------------- hashing
/** murmur3 fmix32: a bijection on 32-bit ints with full avalanche. */
export function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
/** Key of a random matrix: (seed, layer, what, index). */
function key(o: Resolved, l: number, what: number, i = 0): number {
  return mix(mix(mix(mix(o.seed * 0x9e3779b1) ^ (l + 1)) ^ (what * 0x632be5ab)) ^ i);
}
/** Key of row r of a matrix. */
function rowKey(k: number, r: number): number {
  return mix(k ^ Math.imul(r + 1, 0x9e3779b1));
}
const UNIT_SCALE = (2 * Math.sqrt(3)) / 4294967296;
/**
 * out[from..to) = scale * (uniform values of unit variance in [-sqrt(3), sqrt(3))),
 * the xorshift32 stream of row key `rk` (element c is the (c - from)th draw:
 * rows are always generated whole, so no random access inside a row is needed).
 */
function stream(rk: number, out: Float32Array, from: number, to: number, scale: number): void {
  let x = mix(rk ^ 0x2545f491) | 1;
  const s = scale * UNIT_SCALE;
  for (let i = from; i < to; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x | 0) * s;
  }
}
const WHAT = { emb: 1, q: 2, k: 3, v: 4, w1: 5, w3: 6, w2: 7, noise: 8, salience: 9 } as const;

// ---------------------------------------------------------------- rows
/** The structured model's weights as row generators (canonical semantics, checkpoint packing in source.ts). */
export class StructuredWeights {
  readonly o: Resolved;
  readonly dims: HeadDims;
  /** Values of the token-role features after the (rms 1) embedding. */
  readonly beta: number;
  private readonly plans: HeadPlan[][];
  private readonly sigmaA: number;
  private readonly sigmaB: number;
  private readonly ffnOutStd: number;

  constructor(opts: StructuredOptions) {
    this.o = resolveOptions(opts);
    this.dims = headDims(this.o);
    const H = this.o.dim;
    this.beta = Math.sqrt(ENERGY.bias * H);
    this.plans = Array.from({ length: this.o.nLayers }, (_, l) => Array.from({ length: this.o.nHeads }, (_, h) => headPlan(this.o, l, h)));
    // LM head permutation sigma(t) = (A t + B) mod V with gcd(A, V) = 1.
    const V = this.o.vocabSize;
    let a = 7919;
    while (gcd(a, V) !== 1) a += 2;
    this.sigmaA = a;
    this.sigmaB = 12345 % V;
    // E[(silu(g) u)^2] for g, u ~ N(0, 1): E[silu(g)^2] (u independent, unit variance).
    let e = 0;
    for (let i = -4000; i <= 4000; i++) {
      const g = i / 500;
      const si = g / (1 + Math.exp(-g));
      e += si * si * Math.exp((-g * g) / 2);
    }
    e *= 1 / 500 / Math.sqrt(2 * Math.PI);
    this.ffnOutStd = this.o.residualScale / Math.sqrt(this.o.ffnDim * e);
  }

  plan(l: number, h: number): HeadPlan {
    return this.plans[l][h];
  }
  /** Next-token map of the LM head: the prediction for a token whose identity dominates the residual. */
  sigma(t: number): number {
    return (this.sigmaA * t + this.sigmaB) % this.o.vocabSize;
  }
  sigmaInverse(t: number): number {
    const V = this.o.vocabSize;
    return Number((BigInt(modInverse(this.sigmaA, V)) * BigInt((((t - this.sigmaB) % V) + V) % V)) % BigInt(V));
  }

  /** Fraction of the embedding energy in the identity part of token t. */
  identityEnergy(t: number): number {
    const role = roleOf(t);
    return role === 'ordinary' ? 1 - ENERGY.bias - SALIENCE_ENERGY * this.zeta(t) ** 2 : 1 - ENERGY.bias - ENERGY[role];
  }

  /**
   * Salience zeta_t of token id t (heavy background, ordinary ids; 0 otherwise): a seeded
   * N(0, 1) draw (Box-Muller of two hashes) clipped to +-ZETA_MAX. Heads weigh it by sigma_h.
   */
  zeta(t: number): number {
    if (this.o.background !== 'heavy' || roleOf(t) !== 'ordinary') return 0;
    const k = rowKey(key(this.o, -1, WHAT.salience), t);
    const u1 = ((mix(k) >>> 0) + 0.5) / 4294967296;
    const u2 = ((mix(k ^ 0x27d4eb2f) >>> 0) + 0.5) / 4294967296;
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    return Math.max(-ZETA_MAX, Math.min(ZETA_MAX, z));
  }

  /** Unit-rms identity vector of token t over coords [8, H) (zeros below). */
  identity(t: number, out: Float32Array): void {
    const H = this.o.dim;
    const rk = rowKey(key(this.o, -1, WHAT.emb), t);
    out.fill(0, 0, C.identity);
    stream(rk, out, C.identity, H, 1);
    let ss = 0;
    for (let i = C.identity; i < H; i++) ss += out[i] * out[i];
    const s = Math.sqrt(H / ss);
    for (let i = C.identity; i < H; i++) out[i] *= s;
  }

  /** embed [V, H]: features + identity, rms exactly 1. */
  embedRow(t: number, out: Float32Array): void {
    this.identity(t, out);
    const f = Math.sqrt(this.identityEnergy(t));
    for (let i = C.identity; i < out.length; i++) out[i] *= f;
    const H = this.o.dim;
    out[C.bias] = this.beta;
    const role = roleOf(t);
    if (role !== 'ordinary') out[C[role]] = Math.sqrt(ENERGY[role] * H);
    else if (this.o.background === 'heavy') out[C.salience] = this.zeta(t) * Math.sqrt(SALIENCE_ENERGY * H);
  }

  /** lmHead [V, H]: row t reads the identity of sigma^-1(t). Top logit ~ 14 for an ordinary token. */
  lmHeadRow(t: number, out: Float32Array): void {
    this.identity(this.sigmaInverse(t), out);
    const s = 14 / this.o.dim;
    for (let i = 0; i < out.length; i++) out[i] *= s;
  }

  /** Norm weights: a constant undoing the residual's expected rms growth. */
  normValue(l: number, which: 'attn' | 'ffn' | 'final'): number {
    const rho2 = this.o.residualScale ** 2;
    const steps = which === 'attn' ? 2 * l : which === 'ffn' ? 2 * l + 1 : 2 * this.o.nLayers;
    return Math.sqrt(1 + steps * rho2);
  }

  /** Query row d of head h (canonical W_q row h * D + d). */
  qRow(l: number, h: number, d: number, out: Float32Array): void {
    const { headDim: D, dim: H } = this.o;
    const p = this.plans[l][h];
    const sq = Math.sqrt(D);
    this.noiseRow(out, rowKey(key(this.o, l, WHAT.q, h), d));
    const bi = this.dims.bandDims.indexOf(d);
    if (bi >= 0) out[C.bias] = (p.band * this.bandW(l, h)[bi] * sq) / this.beta;
    const s = this.dims.slot;
    if (d === s.sink) out[C.bias] = (p.sink * sq) / K0 / this.beta;
    if (d === s.stripe) out[C.bias] = (p.stripe * sq) / K0 / this.beta;
    if (d === s.needle) out[C.query] = (p.needle * sq) / K0 / Math.sqrt(ENERGY.query * H);
    if (d === s.salience) out[C.bias] = (p.salience * sq) / K0 / this.beta;
    if (this.dims.noiseDims.includes(d)) {
      // q_d k_d summed over m noise dims / sqrt(D) has std noise when q_d ~ N(0, noise^2 D / m), k_d ~ N(0, 1).
      const tau = (p.noise * Math.sqrt(D / this.dims.noiseDims.length)) / Math.sqrt(H);
      stream(rowKey(key(this.o, l, WHAT.q, h), d), out, C.identity, H, tau);
    }
  }

  /** Key row d of KV group g. */
  kRow(l: number, g: number, d: number, out: Float32Array): void {
    const H = this.o.dim;
    this.noiseRow(out, rowKey(key(this.o, l, WHAT.k, g), d));
    if (this.dims.bandDims.includes(d)) out[C.bias] = 1 / this.beta;
    const s = this.dims.slot;
    if (d === s.sink) out[C.sink] = K0 / Math.sqrt(ENERGY.sink * H);
    if (d === s.stripe) out[C.stripe] = K0 / Math.sqrt(ENERGY.stripe * H);
    if (d === s.needle) out[C.needle] = K0 / Math.sqrt(ENERGY.needle * H);
    if (d === s.salience) out[C.salience] = K0 / Math.sqrt(SALIENCE_ENERGY * H);
    if (this.dims.noiseDims.includes(d)) {
      stream(rowKey(key(this.o, l, WHAT.k, g), d), out, C.identity, H, 1 / Math.sqrt(H));
    }
  }

  /** Value row d of KV group g: a random projection of the identity (v ~ N(0, identity energy)). */
  vRow(l: number, g: number, d: number, out: Float32Array): void {
    const H = this.o.dim;
    out.fill(0, 0, C.identity);
    stream(rowKey(key(this.o, l, WHAT.v, g), d), out, C.identity, H, 1 / Math.sqrt(H));
  }

  /** W_o row i (residual coordinate) over [nHeads * D]: gain_h * c * W_v[g(h)]^T (copies what heads attend to). */
  woRow(l: number, i: number, out: Float32Array): void {
    out.fill(0);
    if (i < C.identity) return;
    const { headDim: D, dim: H, nHeads, nKvHeads } = this.o;
    const c = this.o.residualScale * Math.sqrt(H / (nHeads * D));
    const perGroup = nHeads / nKvHeads;
    const wvT = this.valueColumns(l); // (H, nKvHeads * D)
    const base = i * nKvHeads * D;
    for (let h = 0; h < nHeads; h++) {
      const x = c * this.plans[l][h].gain;
      const from = base + Math.floor(h / perGroup) * D;
      for (let d = 0; d < D; d++) out[h * D + d] = x * wvT[from + d];
    }
  }

  /** W_v of layer l transposed, (H, nKvHeads * D): W_o rows read its columns; cached for one layer. */
  private valueCache?: { l: number; wvT: Float32Array };
  private valueColumns(l: number): Float32Array {
    if (this.valueCache?.l !== l) {
      const { headDim: D, dim: H, nKvHeads } = this.o;
      const n = nKvHeads * D;
      const wvT = new Float32Array(H * n);
      const row = new Float32Array(H);
      for (let r = 0; r < n; r++) {
        this.vRow(l, Math.floor(r / D), r % D, row);
        for (let i = 0; i < H; i++) wvT[i * n + r] = row[i];
      }
      this.valueCache = { l, wvT };
    }
    return this.valueCache.wvT;
  }

  /** Gate (w1) or up (w3) row f: unit-variance pre-activations for an rms-1 input. */
  ffnInRow(l: number, which: 'gate' | 'up', f: number, out: Float32Array): void {
    stream(rowKey(key(this.o, l, which === 'gate' ? WHAT.w1 : WHAT.w3), f), out, 0, out.length, 1 / Math.sqrt(this.o.dim));
  }

  /** Down (w2) row i: output rms ~ residualScale, identity coordinates only. */
  ffnDownRow(l: number, i: number, out: Float32Array): void {
    if (i < C.identity) {
      out.fill(0);
      return;
    }
    stream(rowKey(key(this.o, l, WHAT.w2), i), out, 0, out.length, this.ffnOutStd);
  }

  private bandCache = new Map<number, Float64Array>();
  private bandW(l: number, h: number): Float64Array {
    const k = l * this.o.nHeads + h;
    let w = this.bandCache.get(k);
    if (!w) this.bandCache.set(k, (w = bandWeights(this.dims.bandTheta, this.plans[l][h].bandWidth)));
    return w;
  }

  /** Small dense noise (so no matrix is sparse) over identity columns; features zero. */
  private noiseRow(out: Float32Array, rk: number): void {
    const eps = 0.02 / Math.sqrt(this.o.dim);
    out.fill(0, 0, C.identity);
    stream(rk ^ 0x5bd1e995, out, C.identity, out.length, eps);
  }
}

export type Role = 'ordinary' | 'sink' | 'stripe' | 'needle' | 'query';
export function roleOf(t: number): Role {
  if (t === TOKENS.sink) return 'sink';
  if (t >= 3 && t <= 10) return 'stripe';
  if (t >= 16 && t <= 23) return 'needle';
  if (t >= 24 && t <= 31) return 'query';
  return 'ordinary';
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
function modInverse(a: number, m: number): number {
  let [r0, r1] = [a % m, m],
    [s0, s1] = [1, 0];
  while (r1) {
    const q = Math.floor(r0 / r1);
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}
