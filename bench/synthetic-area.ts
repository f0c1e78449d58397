/**
 * bench/synthetic-area: CPU only (no GPU). For the generated Q/K of
 * bench/synthetic/qkv.ts, the fraction of the causal area SampleAttention
 * would compute (window + selected columns; sampled rows, per-KV-group
 * selection, as the GPU implementation does: bench/synthetic/analyze.ts
 * selectionRef), and per head the mean over the sampled rows of the window
 * mass, the sink mass and the far mass (outside the sink, the stripes, the
 * needle and the last 256 keys).
 *   npm run bench -- bench/synthetic-area.ts [--sizes 4096,16384,32768] [--kinds realistic,planted]
 *     [--alphas 0.95,0.8] [--heads 4] [--dim 128] [--seed 5] [--needle] [--json FILE]
 * One KV group of --heads query heads. ~1-2 min at the default sizes (32K dominates).
 */
import { syntheticQkv, type SyntheticSpec } from './synthetic/qkv.ts';
import { DEFAULT_ATTENTION } from '../src/engine/types.ts';
import { selectionRef } from './synthetic/analyze.ts';
import { table } from '../src/cli/util.ts';
import { writeFileSync } from 'node:fs';
import { benchArgs } from './common.ts';

const args = benchArgs({
  sizes: { type: 'string' },
  kinds: { type: 'string' },
  alphas: { type: 'string' },
  heads: { type: 'string' },
  dim: { type: 'string' },
  seed: { type: 'string' },
  needle: { type: 'boolean' },
});
const sizes = String(args.sizes ?? '4096,16384,32768')
  .split(',')
  .map(Number);
const kinds = String(args.kinds ?? 'realistic,planted').split(',') as SyntheticSpec['kind'][];
const alphas = String(args.alphas ?? '0.95,0.8')
  .split(',')
  .map(Number);
const nHeads = Number(args.heads ?? 4);
const headDim = Number(args.dim ?? 128);
const seed = Number(args.seed ?? 5);

const rows: (string | number)[][] = [];
const results: unknown[] = [];
for (const kind of kinds) {
  for (const seqLen of sizes) {
    const t0 = performance.now();
    const needle = args.needle ? Math.floor(seqLen * 0.3) : undefined;
    const gen = syntheticQkv({ seqLen, nHeads, nKvHeads: 1, headDim, kind, seed, needle });
    const special = (gen.stripeCols ?? [[]]).map((c) => (needle === undefined ? c : [...c, needle]));
    const r = selectionRef(gen, { seqLen, nHeads, nKvHeads: 1, headDim }, { ...DEFAULT_ATTENTION }, alphas, special);
    const ms = performance.now() - t0;
    const heads = r.heads.map((h) => `${h.windowMass.toFixed(2)}/${h.sinkMass.toFixed(2)}/${h.farMass.toFixed(2)}`).join(' ');
    for (const a of r.groups[0]) rows.push([seqLen, kind, a.alpha, a.selected, a.areaFraction.toFixed(3), heads]);
    results.push({ seqLen, kind, nHeads, headDim, seed, window: r.window, nSamp: r.nSamp, selection: r.groups[0], heads: r.heads, ms });
    console.log(`# S=${seqLen} ${kind}: ${(ms / 1000).toFixed(1)} s`);
  }
}
console.log('# bench/synthetic-area (CPU): area = fraction of the causal area computed; per head: window/sink/far mass (means over the sampled rows)');
console.log(table(rows, ['S', 'kind', 'alpha', '|I|', 'area', 'heads window/sink/far']));
if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({ bench: 'synthetic-area', date: new Date().toISOString(), results }, null, 2));
