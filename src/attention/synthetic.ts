/**
 * Generated Q/K/V for attention tests and benchmarks (never stored).
 *
 * 'planted': heads with the structure SampleAttention exploits:
 *   - sink: every query has a large component along a shared direction u0 and
 *     key 0 carries a large u0 component, so column 0 draws mass from all rows;
 *   - local band: q_i and k_j share a slowly varying "position code" (a random
 *     walk in a few dims), so dot products are large when |i - j| is small;
 *   - stripes: a few columns carry a shared direction u1 that a random half of
 *     the rows also carry (facts the prompt keeps referring to);
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
  /** Unit direction of the needle's value (planted with needle): v[needle] = needleValue * 4 + noise. */
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
  const sqrtD = Math.sqrt(D);
  const needleRows = spec.needleRows ?? 16;
  const nStripes = spec.stripes ?? 6;
  let needleValue: Float32Array | undefined;
  if (spec.needle !== undefined) needleValue = unit(rng, D);
  for (let kvh = 0; kvh < nKvHeads; kvh++) {
    const u0 = unit(rng, D), u1 = unit(rng, D), u2 = unit(rng, D);
    // Position code: a smooth random walk in D dims, normalized per position.
    const code = new Float32Array(S * D);
    let cur = unit(rng, D);
    const step = 0.35;
    for (let i = 0; i < S; i++) {
      const n = rng.fillNormal(D);
      let s = 0;
      for (let t = 0; t < D; t++) { cur[t] += step * n[t] / Math.sqrt(D) * 3; s += cur[t] * cur[t]; }
      const inv = 1 / Math.sqrt(s);
      for (let t = 0; t < D; t++) { cur[t] *= inv; code[i * D + t] = cur[t]; }
    }
    const stripeCols = new Set<number>();
    while (stripeCols.size < Math.min(nStripes, S - 1)) stripeCols.add(1 + rng.int(S - 1));
    for (let j = 0; j < S; j++) {
      const kb = (kvh * S + j) * D;
      for (let t = 0; t < D; t++) k[kb + t] = 0.3 * rng.normal() + 2.0 * sqrtD * code[j * D + t] * 0.5;
      if (j === 0) for (let t = 0; t < D; t++) k[kb + t] += 3.0 * sqrtD * u0[t];
      if (stripeCols.has(j)) for (let t = 0; t < D; t++) k[kb + t] += 2.5 * sqrtD * u1[t];
      if (j === spec.needle) {
        for (let t = 0; t < D; t++) k[kb + t] += 4.0 * sqrtD * u2[t];
        for (let t = 0; t < D; t++) v[kb + t] = 4 * needleValue![t] + 0.2 * v[kb + t];
      }
    }
    for (let g = 0; g < group; g++) {
      const h = kvh * group + g;
      const hs = 0.8 + 0.4 * rng.next(); // per-head strength
      for (let i = 0; i < S; i++) {
        const qb = i * nHeads * D + h * D;
        const stripe = rng.next() < 0.5 ? 1 : 0;
        const needle = spec.needle !== undefined && i >= S - needleRows && i >= spec.needle ? 1 : 0;
        for (let t = 0; t < D; t++) {
          q[qb + t] = hs * (0.3 * rng.normal() + 1.0 * code[i * D + t] * 1.0 + 0.5 * u0[t] + stripe * 0.6 * u1[t] + needle * 1.2 * u2[t]);
        }
      }
    }
  }
  return { q, k, v, needleValue };
}
