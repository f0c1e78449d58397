/**
 * Generated Q/K/V for attention tests and benchmarks (never stored).
 *
 * 'planted': heads with the structure SampleAttention exploits:
 *   - sink: every query has a component along a shared direction u0 and
 *     key 0 a large one, so column 0 draws mass from all rows;
 *   - local band: q_i and k_j share a slowly varying "position code" (a random
 *     walk on the unit sphere), so scores are large when |i - j| is small;
 *   - stripes: a few columns carry a shared direction u1 that every row carries
 *     with a random strength 0.6-1 (separators, facts the prompt keeps referring to);
 *   - diffuse background: small i.i.d. noise everywhere;
 *   - needle (option): one key carries direction u2 that only the last
 *     `needleRows` queries carry, strongly.
 *  'random': i.i.d. normal Q/K/V (no structure: selection must grow toward dense).
 * Layouts: q (seqLen, nHeads * headDim); k, v (nKvHeads, seqLen, headDim).
 */
import { Rng } from '../util/rng.ts';

export interface SyntheticSpec {
  seqLen: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kind: 'planted' | 'random';
  seed?: number;
  /** Column of the needle key (planted only); none when undefined. */
  needle?: number;
  /** Query rows at the end that look for the needle. Default 16. */
  needleRows?: number;
  /** Stripe columns per KV head. Default 6. */
  stripes?: number;
}

export interface SyntheticQkv {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Unit direction of the needle's value (planted with needle): v[needle] = 4 needleValue + noise. */
  needleValue?: Float32Array;
}

function unit(rng: Rng, n: number): Float32Array {
  const x = rng.fillNormal(n);
  let s = 0;
  for (const a of x) s += a * a;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < n; i++) x[i] *= inv;
  return x;
}

/** `count` orthonormal vectors (Gram-Schmidt of normal draws). */
function orthonormal(rng: Rng, n: number, count: number): Float32Array[] {
  const out: Float32Array[] = [];
  while (out.length < count) {
    const x = project(rng.fillNormal(n), out);
    let s = 0;
    for (const a of x) s += a * a;
    if (s < 1e-6) continue;
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < n; i++) x[i] *= inv;
    out.push(x);
  }
  return out;
}

/** Removes from x (in place) its components along the orthonormal `basis`. */
function project(x: Float32Array, basis: Float32Array[]): Float32Array {
  for (const b of basis) {
    let d = 0;
    for (let i = 0; i < x.length; i++) d += x[i] * b[i];
    for (let i = 0; i < x.length; i++) x[i] -= d * b[i];
  }
  return x;
}

export function syntheticQkv(spec: SyntheticSpec): SyntheticQkv {
  const { seqLen: S, nHeads, nKvHeads, headDim: D } = spec;
  const rng = new Rng(spec.seed ?? 7);
  const group = nHeads / nKvHeads;
  const q = new Float32Array(S * nHeads * D);
  const k = new Float32Array(nKvHeads * S * D);
  const v = rng.fillNormal(nKvHeads * S * D);
  if (spec.kind === 'random') {
    q.set(rng.fillNormal(q.length));
    k.set(rng.fillNormal(k.length));
    return { q, k, v };
  }
  // Scores are s_ij = q_i . k_j / sqrt(D); with q_i = a and k_j = sqrt(D) b, s_ij = a . b,
  // so the strengths below are logits (times a per-head factor 0.8-1.2): band
  // 10 x code_i . code_j (code: a random walk on the unit sphere, ~10 - 0.1 |i - j| nearby),
  // sink 11, stripes 7-9, needle 18, and a diffuse background from the random part of
  // code_i . code_j for distant i, j (std ~ 10 / sqrt(D)).
  const sqrtD = Math.sqrt(D);
  const needleRows = spec.needleRows ?? 16;
  const nStripes = spec.stripes ?? 6;
  const band = 10, sink = 11, stripeLogit = 9, needleLogit = 18;
  const stepStd = Math.sqrt(0.02 / D); // |step|^2 ~ 0.02: band logit falls ~0.1 per token
  let needleValue: Float32Array | undefined;
  if (spec.needle !== undefined) needleValue = unit(rng, D);
  for (let kvh = 0; kvh < nKvHeads; kvh++) {
    // Sink, stripe and needle directions orthonormal; the position code lives in their
    // orthogonal complement, so the patterns do not leak into each other's scores.
    const basis = orthonormal(rng, D, Math.min(3, D - 1));
    const [u0, u1, u2] = [basis[0], basis[1], basis[2] ?? new Float32Array(D)];
    const code = new Float32Array(S * D);
    const cur = project(unit(rng, D), basis);
    for (let i = 0; i < S; i++) {
      for (let t = 0; t < D; t++) cur[t] += stepStd * rng.normal();
      project(cur, basis);
      let n2 = 0;
      for (let t = 0; t < D; t++) n2 += cur[t] * cur[t];
      const inv = 1 / Math.sqrt(n2);
      for (let t = 0; t < D; t++) { cur[t] *= inv; code[i * D + t] = cur[t]; }
    }
    // Stripe columns with logits in [stripeLogit - 2, stripeLogit].
    const stripeCols = new Map<number, number>();
    while (stripeCols.size < Math.min(nStripes, S - 1)) stripeCols.set(1 + rng.int(S - 1), stripeLogit - 2 * rng.next());
    for (let j = 0; j < S; j++) {
      const kb = (kvh * S + j) * D;
      for (let t = 0; t < D; t++) {
        let b = Math.sqrt(band) * code[j * D + t];
        if (j === 0) b += sink * u0[t];
        if (stripeCols.has(j)) b += stripeCols.get(j)! * u1[t];
        if (j === spec.needle) b += needleLogit * u2[t];
        k[kb + t] = sqrtD * b;
      }
      if (j === spec.needle) for (let t = 0; t < D; t++) v[kb + t] = 4 * needleValue![t] + 0.2 * v[kb + t];
    }
    for (let g = 0; g < group; g++) {
      const h = kvh * group + g;
      const hs = 0.8 + 0.4 * rng.next(); // per-head strength
      for (let i = 0; i < S; i++) {
        const qb = i * nHeads * D + h * D;
        const stripe = 0.6 + 0.4 * rng.next(); // every row, random strength
        const needle = spec.needle !== undefined && i >= S - needleRows && i >= spec.needle ? 1 : 0;
        for (let t = 0; t < D; t++) {
          q[qb + t] = hs * (Math.sqrt(band) * code[i * D + t] + u0[t] + stripe * u1[t] + needle * u2[t]);
        }
      }
    }
  }
  return { q, k, v, needleValue };
}
