/**
 * bench/agreement: SampleAttention accuracy at model level on the real
 * stories260k weights, over several story lengths (issue 6's "a story of
 * 300-512 tokens"): top-1 agreement of all-position logits, sparse vs dense,
 * for each column-selection rule, with the mean area computed. An accuracy
 * table, not a speed one, so it may run anywhere (SwiftShader included).
 *   npm run bench -- bench/agreement.ts [--lengths 300,330,...,512] [--alphas 0.95,0.99]
 *     [--selections group,topup,head,topup:128] [--json FILE]
 * A selection may carry ':N', the minSampleRows of that run (default 64).
 *   (the committed run: --json bench/accuracy/agreement-stories260k.json)
 * Options other than alpha and selection stay at DEFAULT_ATTENTION, minSparseLen 64.
 */
import { getGpu } from '../src/gpu/device.ts';
import { loadEngine } from '../src/engine/index.ts';
import { DEFAULT_ATTENTION, type AttentionOptions } from '../src/engine/types.ts';
import { nodeSource } from '../src/loader/sources.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import { compareLogits, prefillAndGreedy } from '../test/helpers/agreement.ts';
import { STORY } from '../test/helpers/story.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({ lengths: { type: 'string' }, alphas: { type: 'string' }, selections: { type: 'string' }, dir: { type: 'string' } });
const lengths = String(args.lengths ?? '300,330,360,390,420,450,480,512')
  .split(',')
  .map(Number);
const alphas = String(args.alphas ?? '0.95,0.99')
  .split(',')
  .map(Number);
const selections = String(args.selections ?? 'group,topup,head,topup:128')
  .split(',')
  .map((v) => {
    const [rule, rows] = v.split(':');
    if (rule !== 'auto' && rule !== 'group' && rule !== 'topup' && rule !== 'head')
      throw new Error(`--selections: '${v}' is not auto, group, topup or head[:N]`);
    const minSampleRows = rows === undefined ? DEFAULT_ATTENTION.minSampleRows : Number(rows);
    if (!Number.isInteger(minSampleRows) || minSampleRows < 1) throw new Error(`--selections: '${v}': N must be a positive integer`);
    return { name: v, selection: rule as NonNullable<AttentionOptions['selection']>, minSampleRows };
  });
const dir = String(args.dir ?? new URL('../../shared/fixtures/stories260k', import.meta.url).pathname);

const ctx = await getGpu();
const tok = await loadTokenizer(nodeSource(dir));
const all = tok.encode(STORY, { bos: true });
if (lengths.some((n) => !Number.isInteger(n) || n < 64 || n > Math.min(512, all.length)))
  throw new Error(`--lengths: integers in [64, ${Math.min(512, all.length)}] expected`);
const engine = await loadEngine(ctx, dir, { weights: 'f32', kvDtype: 'f32', contextLength: 512, prefillChunk: 512 });
const V = engine.spec.vocabSize;
const rows: (string | number)[][] = [];
const results: unknown[] = [];
const sums = new Map<string, { top1: number; n: number; below: number; area: number }>();
try {
  for (const L of lengths) {
    const ids = all.slice(0, L);
    const dense = await prefillAndGreedy(engine, ids, 0, { attention: { attention: 'dense' } });
    for (const alpha of alphas)
      for (const { name, selection, minSampleRows } of selections) {
        const s = await prefillAndGreedy(engine, ids, 0, { attention: { attention: 'sample', alpha, selection, minSampleRows, minSparseLen: 64 } });
        const a = compareLogits(dense.logits, s.logits, V);
        const differ = a.rows - Math.round(a.top1 * a.rows);
        const area = s.sparsity!.meanAreaFraction;
        rows.push([L, alpha, name, (100 * a.top1).toFixed(2), differ, a.maxAbsDiff.toFixed(3), area.toFixed(3)]);
        results.push({
          seqLen: L,
          alpha,
          selection,
          minSampleRows,
          top1: a.top1,
          rowsDiffer: differ,
          mismatches: a.mismatches,
          maxAbsDiff: a.maxAbsDiff,
          meanAreaFraction: area,
        });
        const key = `${alpha} ${name}`;
        const m = sums.get(key) ?? { top1: 0, n: 0, below: 0, area: 0 };
        m.top1 += a.top1;
        m.n++;
        m.area += area;
        if (a.top1 < (alpha >= 0.99 ? 0.99 : 0.98)) m.below++;
        sums.set(key, m);
      }
  }
} finally {
  engine.destroy();
}
for (const [key, m] of sums) {
  const [alpha, selection] = key.split(' ');
  rows.push(['mean', alpha, selection, ((100 * m.top1) / m.n).toFixed(2), `${m.below}/${m.n} under bar`, '-', (m.area / m.n).toFixed(3)]);
}
finish(
  {
    bench: 'agreement',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: 'none (accuracy): stories260k f32, all-position logits, sparse vs dense',
    header: ['seqLen', 'alpha', 'selection[:minSampleRows]', 'top-1 %', 'rows differ', 'max |dlogit|', 'area'],
    rows,
    results: [{ defaults: DEFAULT_ATTENTION, minSparseLen: 64, storyTokens: all.length }, ...results],
  },
  args.json,
);
