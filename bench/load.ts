/**
 * bench/load: checkpoint load throughput (MB/s of file bytes) for a bf16
 * InternLM2-layout checkpoint generated on the fly in a temp folder, loaded to
 * f16 (bf16 -> f16 conversion) and to q4 (CPU quantization while streaming).
 *   npm run bench -- bench/load.ts [--size-mb 1024] [--formats f16,q4:gpu,q4:cpu] [--json FILE]
 * A format may name where q8/q4 packing runs (`q4:gpu`, `q4:cpu`; plain `q4`: the loader's default).
 * Default size: 1024 MB on a GPU, 128 MB on a software adapter. Generation is
 * not timed; each format is loaded once after an untimed read of the files
 * (so the OS page cache holds them), then timed over --iters loads.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { getGpu } from '../src/gpu/device.ts';
import { nodeSource } from '../src/loader/sources.ts';
import { readModel } from '../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../src/loader/weights.ts';
import { syntheticOfSize, writeSyntheticModel } from './synthetic/checkpoint.ts';
import type { LoadFormat } from '../src/loader/layout.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({ 'size-mb': { type: 'string' }, formats: { type: 'string' }, iters: { type: 'string' } });
const ctx = await getGpu();
const sizeMb = Number(args['size-mb'] ?? (ctx.info.isSoftware ? 128 : 1024));
const formats = String(args.formats ?? 'f16,q4:gpu,q4:cpu').split(',');
const iters = Number(args.iters ?? 2);

const dir = mkdtempSync(`${tmpdir()}/sieve-bench-load-`);
try {
  const t0 = performance.now();
  const model = await writeSyntheticModel(dir, { ...syntheticOfSize(sizeMb * 2 ** 20, 'BF16'), shards: Math.max(1, Math.round(sizeMb / 512)), seed: 3 });
  console.log(
    `# generated ${(model.totalBytes / 2 ** 20).toFixed(0)} MiB bf16 in ${((performance.now() - t0) / 1000).toFixed(1)} s (${model.files.length} shards, ${dir})`,
  );
  for (const f of model.files) readFileSync(`${dir}/${f}`); // page cache warm-up (untimed)
  const rows: (string | number)[][] = [];
  const results = [];
  for (const spec of formats) {
    const [format, quantizeOn] = spec.split(':') as [LoadFormat, 'gpu' | 'cpu' | undefined];
    const times: number[] = [];
    let gpuBytes = 0;
    for (let i = 0; i < iters; i++) {
      const src = nodeSource(dir);
      const start = performance.now();
      const m = await readModel(src);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format, quantizeOn });
      times.push(performance.now() - start);
      gpuBytes = w.bytes;
      releaseWeights(ctx, w.values());
      await src.close();
    }
    const ms = Math.min(...times);
    const mbps = model.totalBytes / 1e6 / (ms / 1000);
    rows.push([spec, (model.totalBytes / 1e6).toFixed(0), (gpuBytes / 1e6).toFixed(0), (ms / 1000).toFixed(2), mbps.toFixed(0)]);
    results.push({ format, quantizeOn: quantizeOn ?? 'default', fileBytes: model.totalBytes, gpuBytes, ms, allMs: times, mbPerS: mbps });
  }
  finish(
    {
      bench: 'load',
      date: new Date().toISOString(),
      adapter: adapterRecord(ctx),
      timing: 'wall clock, best of iters, includes header parse + GPU queue drain',
      header: ['format', 'file MB', 'GPU MB', 's', 'MB/s'],
      rows,
      results,
    },
    args.json,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
  ctx.destroy();
}
