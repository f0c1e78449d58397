/**
 * Dense vs sparse prefill comparisons (SampleAttention model-level accuracy):
 * top-1 agreement of all-position logits, max |logit difference|, and the
 * first greedy tokens through prefill + KV-cache decode.
 */
import type { Engine, PrefillOptions, SparsityReport } from '../../src/engine/types.ts';

/** The model-level bars (issue 6): top-1 agreement over all positions at alpha 0.95 and 0.99. */
export const BARS = [
  { alpha: 0.95, top1: 0.98 },
  { alpha: 0.99, top1: 0.99 },
] as const;

export interface LogitAgreement {
  /** Positions compared (rows of the [n, vocab] logits). */
  rows: number;
  /** Fraction of rows whose argmax is the same in both. */
  top1: number;
  /** Max over all rows and columns of |a - b|. */
  maxAbsDiff: number;
  /** Rows whose argmax differs (first 16). */
  mismatches: number[];
}

/** Index of the largest value of row r of a [n, vocab] matrix (first on ties). */
export function rowArgmax(logits: Float32Array, vocab: number, r: number): number {
  let best = -Infinity,
    at = -1;
  for (let c = 0; c < vocab; c++) {
    const v = logits[r * vocab + c];
    if (v > best) {
      best = v;
      at = c;
    }
  }
  return at;
}

export function compareLogits(a: Float32Array, b: Float32Array, vocab: number): LogitAgreement {
  if (a.length !== b.length || a.length % vocab !== 0) throw new RangeError(`logits of ${a.length} and ${b.length} values do not both hold rows of ${vocab}`);
  const rows = a.length / vocab;
  let same = 0,
    maxAbsDiff = 0;
  const mismatches: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (rowArgmax(a, vocab, r) === rowArgmax(b, vocab, r)) same++;
    else if (mismatches.length < 16) mismatches.push(r);
  }
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
  }
  return { rows, top1: same / rows, maxAbsDiff, mismatches };
}

/**
 * From an empty cache: prefills `ids` (all logits), then picks `steps` greedy
 * tokens (engine.argmax, decodeStep between them). Leaves the cache filled.
 */
export async function prefillAndGreedy(
  engine: Engine,
  ids: number[],
  steps: number,
  opts: PrefillOptions,
): Promise<{ logits: Float32Array; greedy: number[]; sparsity: Awaited<ReturnType<Engine['prefill']>>['sparsity']; ms: number }> {
  engine.truncate(0);
  const r = await engine.prefill(ids, { ...opts, allLogits: true });
  const greedy: number[] = [];
  for (let k = 0; k < steps; k++) {
    const id = await engine.argmax();
    greedy.push(id);
    if (k + 1 < steps) await engine.decodeStep(id);
  }
  return { logits: r.logits!, greedy, sparsity: r.sparsity, ms: r.ms };
}

/** One line of a sparse prefill's report, for the test log. */
export function sparsityLine(s: SparsityReport | undefined): string {
  if (!s) return 'no sparsity report';
  const cra = s.heads.length ? s.heads.reduce((a, h) => a + h.cra, 0) / s.heads.length : NaN;
  return `mode ${s.mode}, ${s.heads.length} heads, mean area ${s.meanAreaFraction.toFixed(3)}, mean sampled CRA ${cra.toFixed(4)}`;
}
