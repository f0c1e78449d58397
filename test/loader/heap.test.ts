import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { limitsOf, planMemory } from '../../src/loader/memory-plan.ts';
import { syntheticOfSize, writeSyntheticModel } from '../../bench/synthetic/checkpoint.ts';

// A gc() without changing the shared vitest config (same as node --expose-gc).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** JS memory: the V8 heap plus ArrayBuffer backing stores (where file bytes would live). */
const jsBytes = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

describe('streaming load of a ~200 MB checkpoint', () => {
  it('peak JS memory growth stays below 64 MB; plan == allocated', async () => {
    const ctx = await testGpu();
    const dir = mkdtempSync(`${tmpdir()}/sieve-200mb-`);
    try {
      const model = await writeSyntheticModel(dir, { ...syntheticOfSize(200 << 20, 'BF16'), shards: 2, seed: 7 });
      expect(model.totalBytes).toBeGreaterThan(180 << 20);
      const src = nodeSource(dir);
      const m = await readModel(src);
      gc();
      const base = jsBytes();
      let peak = 0;
      let events = 0;
      const before = liveBytes(ctx);
      const w = await loadWeights(ctx, src, m.spec, m.plan, {
        format: 'f16',
        onProgress: () => {
          if (++events % 8 === 0) peak = Math.max(peak, jsBytes() - base);
        },
      });
      peak = Math.max(peak, jsBytes() - base);
      console.log(
        `200 MB load: ${(model.totalBytes / 2 ** 20).toFixed(0)} MiB file, peak JS growth ${(peak / 2 ** 20).toFixed(1)} MiB, ${events} progress events`,
      );
      expect(peak).toBeLessThan(64 << 20);
      expect(liveBytes(ctx) - before).toBe(planMemory(m.spec, m.plan, limitsOf(ctx), { format: 'f16' }).weightsBytes);
      releaseWeights(ctx, w.values());
      await src.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
