/**
 * SampleAttention options: validation and the per-chunk plan (window, sampled
 * rows, columns eligible for stripes). See ../shared/SAMPLE_ATTENTION.md.
 */
import { InvalidOptionError } from '../errors.ts';
import { DEFAULT_ATTENTION, type AttentionOptions } from '../engine/types.ts';
import { sampleRow } from '../../kernels/attention_prefill.ts';

export { sampleRow };

/** Merges `partial` over the defaults and validates every field; throws InvalidOptionError naming the field. */
export function resolveAttentionOptions(partial: Partial<AttentionOptions> = {}, base: AttentionOptions = DEFAULT_ATTENTION): AttentionOptions {
  const o: AttentionOptions = { ...base };
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    if (!(key in base)) throw new InvalidOptionError(`attention.${key}`, `unknown option (known: ${Object.keys(base).join(', ')})`);
    (o as unknown as Record<string, unknown>)[key] = value;
  }
  validateAttentionOptions(o);
  return o;
}

export function validateAttentionOptions(o: AttentionOptions): void {
  const bad = (name: string, why: string, value: unknown) => {
    throw new InvalidOptionError(`attention.${name}`, `${why}, got ${JSON.stringify(value)}`, { value });
  };
  if (o.attention !== 'dense' && o.attention !== 'sample') bad('attention', "must be 'dense' or 'sample'", o.attention);
  const ratio = (name: 'alpha' | 'windowRatio' | 'sampleRatio') => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1) bad(name, 'must be a number in (0, 1]', v);
  };
  ratio('alpha');
  ratio('windowRatio');
  ratio('sampleRatio');
  const int = (name: 'minSampleRows' | 'sampleBlock' | 'minSparseLen' | 'topupBelow', min: number) => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(name, `must be an integer >= ${min}`, v);
  };
  int('minSampleRows', 1);
  int('sampleBlock', 1);
  int('minSparseLen', 0);
  if (o.selection !== undefined && !['auto', 'group', 'topup', 'head'].includes(o.selection))
    bad('selection', "must be 'auto', 'group', 'topup' or 'head'", o.selection);
  if (o.topupBelow !== undefined) int('topupBelow', 0);
  const f = o.denseFallbackArea;
  if (f !== undefined && (typeof f !== 'number' || !Number.isFinite(f) || f <= 0 || f > 1)) bad('denseFallbackArea', 'must be a number in (0, 1]', f);
}

/**
 * The selection rule one sparse encode of a chunk ending at `seqLen` (pos + rows) uses:
 * 'auto' becomes 'topup' below opts.topupBelow (and only where a KV group has at most
 * maxTopupGroup query heads), else 'group'.
 */
export function selectionRule(opts: AttentionOptions, seqLen: number, group: number, maxTopupGroup: number): 'group' | 'topup' | 'head' {
  const s = opts.selection ?? DEFAULT_ATTENTION.selection ?? 'group';
  if (s !== 'auto') return s;
  return seqLen < (opts.topupBelow ?? DEFAULT_ATTENTION.topupBelow ?? 0) && group <= maxTopupGroup ? 'topup' : 'group';
}

/** What one sparse encode of a chunk does. */
export interface SparsePlan {
  /** Keys visible to the last row: pos + rows. */
  seqLen: number;
  /** Window w: query i keeps keys (i - w, i]. */
  window: number;
  /** Sampled query rows (all rows when the blocks would cover the chunk). */
  nSamp: number;
  nBlocks: number;
  sampBlock: number;
  /** Columns that lie outside the window of at least one row: [0, nCols). */
  nCols: number;
}

export function sparsePlan(pos: number, rows: number, o: AttentionOptions): SparsePlan {
  const seqLen = pos + rows;
  const window = Math.min(seqLen, Math.max(1, Math.ceil(o.windowRatio * seqLen)));
  const want = Math.max(Math.ceil(o.sampleRatio * rows), o.minSampleRows);
  const sampBlock = Math.min(o.sampleBlock, rows);
  let nBlocks = Math.ceil(want / sampBlock);
  let nSamp = nBlocks * sampBlock;
  if (nSamp >= rows) {
    nSamp = rows;
    nBlocks = Math.ceil(rows / sampBlock);
  }
  return { seqLen, window, nSamp, nBlocks, sampBlock, nCols: Math.max(0, seqLen - window) };
}

/**
 * The selection's dense-fallback bound (kernels/sample_select.wgsl): the stripe
 * area at or above which stripes + window cover `denseFallbackArea` of the
 * chunk's causal area; undefined (never) when the option is 1.
 */
export function fallbackStripeArea(pos: number, rows: number, window: number, o: AttentionOptions): number | undefined {
  const f = o.denseFallbackArea ?? DEFAULT_ATTENTION.denseFallbackArea ?? 1;
  if (f >= 1) return undefined;
  const a = chunkAreas(pos, rows, window);
  return f * a.causal - a.window;
}

/** Causal area of the chunk (sum over rows of visible keys) and its window part. */
export function chunkAreas(pos: number, rows: number, window: number): { causal: number; window: number } {
  // Rows i in [pos, end) see i + 1 keys; the window part is min(w, i + 1): i + 1 below row w - 1, w from there.
  const end = pos + rows;
  const sum = (a: number, b: number) => (b > a ? ((a + b + 1) * (b - a)) / 2 : 0); // sum of (i + 1) over [a, b)
  const split = Math.min(end, Math.max(pos, window));
  return { causal: sum(pos, end), window: sum(pos, split) + window * (end - split) };
}
