/**
 * CPU attention probe for a model's first layer (structured synthetic models,
 * or any checkpoint): from canonical weights (embed, layers.0.attnNorm,
 * layers.0.wqkv, optional bqkv) compute RoPE'd Q/K of a prompt and the exact
 * causal softmax of chosen rows, then the mass each row puts on the sink, its
 * local band, the stripe columns and the needles. f64 math; O(S * D) per row.
 * selectionRef: SampleAttention's column selection and area on the CPU (for
 * generated Q/K, bench/synthetic-area.ts).
 */
import type { ModelSpec } from '../../models/spec.ts';
import type { AttentionOptions } from '../../src/engine/types.ts';
import { chunkAreas, sampleRow, sparsePlan } from '../../src/attention/options.ts';

export interface LayerWeights {
  embed: Float32Array; // (vocabSize, dim)
  attnNorm: Float32Array; // (dim)
  wqkv: Float32Array; // ((nHeads + 2 nKvHeads) headDim, dim), rows: Q heads, K heads, V heads
  bqkv?: Float32Array; // ((nHeads + 2 nKvHeads) headDim)
}

export interface ProbeQK {
  q: Float64Array; // (seqLen, nHeads, headDim)
  k: Float64Array; // (seqLen, nKvHeads, headDim)
}

/** Q and K of every position (only K and the Q of `qRows` are computed when given). */
export function layerQK(spec: ModelSpec, w: LayerWeights, ids: ArrayLike<number>, qRows?: number[]): ProbeQK {
  const { dim, nHeads, nKvHeads, headDim: D, normEps } = spec;
  const S = ids.length;
  const q = new Float64Array(S * nHeads * D);
  const k = new Float64Array(S * nKvHeads * D);
  const x = new Float64Array(dim);
  const wantQ = qRows ? new Set(qRows) : undefined;
  for (let i = 0; i < S; i++) {
    const e = ids[i] * dim;
    let ss = 0;
    for (let c = 0; c < dim; c++) ss += w.embed[e + c] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + normEps);
    for (let c = 0; c < dim; c++) x[c] = w.embed[e + c] * inv * w.attnNorm[c];
    const rows = wantQ && !wantQ.has(i) ? [[nHeads * D, (nHeads + nKvHeads) * D]] : [[0, (nHeads + nKvHeads) * D]];
    for (const [r0, r1] of rows) {
      for (let r = r0; r < r1; r++) {
        let acc = w.bqkv ? w.bqkv[r] : 0;
        const o = r * dim;
        for (let c = 0; c < dim; c++) acc += w.wqkv[o + c] * x[c];
        if (r < nHeads * D) q[i * nHeads * D + r] = acc;
        else k[i * nKvHeads * D + r - nHeads * D] = acc;
      }
    }
    for (let h = 0; h < nHeads; h++) rope(spec, q, (i * nHeads + h) * D, i);
    for (let g = 0; g < nKvHeads; g++) rope(spec, k, (i * nKvHeads + g) * D, i);
  }
  return { q, k };
}

/** RoPE in place on one head vector at `off`, position `pos` (models/spec.ts variants). */
export function rope(spec: ModelSpec, v: Float64Array, off: number, pos: number): void {
  const { base, rotaryDim, variant } = spec.rope;
  if (variant === 'interleaved-half') {
    for (let i = 0; i < rotaryDim / 2; i++) {
      const t = pos * base ** (-(2 * i) / rotaryDim);
      const c = Math.cos(t),
        s = Math.sin(t);
      const a = v[off + 2 * i],
        b = v[off + 2 * i + 1];
      v[off + 2 * i] = a * c - b * s;
      v[off + 2 * i + 1] = b * c + a * s;
    }
  } else {
    const half = spec.headDim / 2;
    for (let j = 0; j < half; j++) {
      const t = pos * base ** (-(2 * j) / spec.headDim);
      const c = Math.cos(t),
        s = Math.sin(t);
      const a = v[off + j],
        b = v[off + j + half];
      v[off + j] = a * c - b * s;
      v[off + j + half] = b * c + a * s;
    }
  }
}

/** Causal softmax row i of head h: probabilities over columns 0..i. */
export function attentionRow(spec: ModelSpec, qk: ProbeQK, h: number, i: number): Float64Array {
  const { nHeads, nKvHeads, headDim: D } = spec;
  const g = Math.floor(h / (nHeads / nKvHeads));
  const p = new Float64Array(i + 1);
  const qo = (i * nHeads + h) * D;
  const scale = 1 / Math.sqrt(D);
  let max = -Infinity;
  for (let j = 0; j <= i; j++) {
    const ko = (j * nKvHeads + g) * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += qk.q[qo + d] * qk.k[ko + d];
    p[j] = s * scale;
    if (p[j] > max) max = p[j];
  }
  let sum = 0;
  for (let j = 0; j <= i; j++) {
    p[j] = Math.exp(p[j] - max);
    sum += p[j];
  }
  for (let j = 0; j <= i; j++) p[j] /= sum;
  return p;
}

export interface RowMass {
  sink: number;
  /** Mass on columns within `band` of the row (excluding column 0). */
  band: number;
  stripes: number;
  needles: number;
  /** Mean probability of a stripe column over the mean of the other columns outside the band. */
  stripeLift: number;
}

export function rowMass(p: Float64Array, i: number, band: number, stripes: number[], needles: number[]): RowMass {
  const special = new Set([0, ...stripes, ...needles]);
  let bandMass = 0,
    restMass = 0,
    restN = 0;
  for (let j = 1; j <= i; j++) {
    if (special.has(j)) continue;
    if (i - j <= band) bandMass += p[j];
    else {
      restMass += p[j];
      restN++;
    }
  }
  const st = stripes.filter((j) => j <= i && i - j > band);
  const stripeMass = st.reduce((a, j) => a + p[j], 0);
  const needleMass = needles.filter((j) => j <= i).reduce((a, j) => a + p[j], 0);
  const stripeLift = st.length && restN ? stripeMass / st.length / Math.max(restMass / restN, 1e-300) : NaN;
  return { sink: p[0], band: bandMass, stripes: stripes.filter((j) => j <= i).reduce((a, j) => a + p[j], 0), needles: needleMass, stripeLift };
}

export interface SelectionRef {
  /** Per KV group and alpha: |I| and the fraction of the causal area computed (window + stripes). */
  groups: { alpha: number; selected: number; areaFraction: number }[][];
  /** Window size w. */
  window: number;
  /** Sampled rows per head. */
  nSamp: number;
  /** Per query head: mean over the sampled rows of the window mass and of the "far" mass (see farMass). */
  heads: { windowMass: number; farMass: number; sinkMass: number }[];
}

/**
 * SampleAttention's selection on the CPU (../shared/SAMPLE_ATTENTION.md,
 * stages 1-2) for a whole causal sequence (pos 0), as the GPU implementation
 * does it: sampled rows from sparsePlan/sampleRow, the group's heads' column
 * scores summed, one column set per KV group reaching alpha * nSamp * group
 * with the window mass, area = (window area + sum over selected j of the rows
 * past j's window) / causal area. q (seqLen, nHeads * headDim), k (nKvHeads,
 * seqLen, headDim), as bench/synthetic/qkv.ts lays them out. farMass: the
 * mass outside column 0, the `special` columns (stripes, needle) and the
 * last `near` keys (the band). f64 math; O(nSamp * seqLen * headDim) per head.
 */
export function selectionRef(
  qkv: { q: Float32Array; k: Float32Array },
  d: { seqLen: number; nHeads: number; nKvHeads: number; headDim: number },
  o: AttentionOptions,
  alphas: number[],
  special: number[][] = [],
  near = 256,
): SelectionRef {
  const { seqLen: S, nHeads, nKvHeads, headDim: D } = d;
  const group = nHeads / nKvHeads;
  const plan = sparsePlan(0, S, o);
  const w = plan.window;
  const rows = Array.from({ length: plan.nSamp }, (_, k) => sampleRow(k, S, plan));
  const scale = 1 / Math.sqrt(D);
  const areas = chunkAreas(0, S, w);
  const groups: SelectionRef['groups'] = [];
  const heads: SelectionRef['heads'] = [];
  const p = new Float64Array(S);
  for (let g = 0; g < nKvHeads; g++) {
    const col = new Float64Array(S);
    const skip = new Set([0, ...(special[g] ?? [])]);
    let windowMass = 0;
    for (let hh = 0; hh < group; hh++) {
      const h = g * group + hh;
      let wm = 0,
        far = 0,
        sink = 0;
      for (const i of rows) {
        const qb = i * nHeads * D + h * D;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kb = (g * S + j) * D;
          let s = 0;
          for (let t = 0; t < D; t++) s += qkv.q[qb + t] * qkv.k[kb + t];
          p[j] = s * scale;
          if (p[j] > max) max = p[j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        const inv = 1 / sum;
        for (let j = 0; j <= i; j++) {
          const x = p[j] * inv;
          if (j + w <= i) col[j] += x;
          else wm += x;
          if (i - j >= near && !skip.has(j)) far += x;
        }
        sink += p[0] * inv;
      }
      windowMass += wm;
      heads.push({ windowMass: wm / rows.length, farMass: far / rows.length, sinkMass: sink / rows.length });
    }
    const order = Array.from({ length: plan.nCols }, (_, j) => j).sort((a, b) => col[b] - col[a]);
    groups.push(
      alphas.map((alpha) => {
        const goal = alpha * rows.length * group - windowMass;
        let acc = 0,
          n = 0,
          area = 0;
        while (goal > 0 && n < order.length && acc < goal) {
          const j = order[n++];
          acc += col[j];
          area += S - Math.min(S, j + w);
        }
        return { alpha, selected: n, areaFraction: Math.min(1, (area + areas.window) / areas.causal) };
      }),
    );
  }
  return { groups, window: w, nSamp: rows.length, heads };
}
