/**
 * Nothing compiles on a request (issue 16): after loadModel returns, new prompt lengths, appended
 * turns, greedy and sampled decoding, dense and sparse prefill create no shader module and no
 * pipeline (test/cases/zero-compile.ts; the device's create* methods are wrapped, so every creation
 * counts, whichever cache or kernel makes it). Also the load's stage progress and times.
 */
import { describe, expect, it } from 'vitest';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';
import { lateCompiles } from '../../src/gpu/pipelines.ts';
import { runZeroCompile, ZERO_COMPILE_LENGTHS } from '../cases/zero-compile.ts';

describe('zero compiles after load (stories260k, Dawn)', () => {
  it('new lengths, appended turns, greedy and sampled, dense and sparse prefill: no module or pipeline created', async () => {
    const ctx = await testGpu();
    const lateBefore = lateCompiles(ctx);
    const r = await runZeroCompile(ctx, `${FIXTURES}stories260k`);
    expect(r.generated.length).toBe(ZERO_COMPILE_LENGTHS.length + 2);
    expect(r.generated.every((n) => n >= 1)).toBe(true); // every request prefilled and decoded
    expect(r.created, r.created.join('\n')).toEqual([]);
    expect(lateCompiles(ctx)).toBe(lateBefore);

    // Load progress: every stage reported and counted to its total; per-stage times recorded.
    const { read, upload, compile } = r.progress;
    expect(read && upload && compile).toBeTruthy();
    expect(read!.stages.read.done).toBe(read!.stages.read.total);
    expect(read!.stages.read.total).toBe(read!.bytesTotal);
    expect(upload!.stages.upload.done).toBe(upload!.stages.upload.total);
    expect(upload!.stages.upload.total).toBeGreaterThan(0);
    expect(compile!.stages.compile.total).toBeGreaterThan(0);
    expect(compile!.stages.compile.done).toBe(compile!.stages.compile.total);
    // Every pipeline the engine holds came through the counted precompile (none built in a create()).
    expect(r.loadPipelines).toBe(compile!.stages.compile.total);
    const t = r.loadTimes!;
    expect(t.readMs).toBeGreaterThan(0);
    expect(t.totalMs).toBeGreaterThanOrEqual(Math.max(t.readMs, t.uploadMs, t.compileMs));
  }, 900_000);
});
