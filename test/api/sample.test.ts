import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { runSampleCase, SAMPLE_CASES } from './sample-cases.ts';
import { GpuSampler, sampleRef } from '../../kernels/sample.ts';
import { releaseBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';

describe('GPU sampling kernel vs CPU reference (Dawn)', () => {
  for (const c of SAMPLE_CASES) {
    it(c.name, async () => {
      const ctx = await testGpu();
      const exact = await runSampleCase(ctx, c);
      expect(exact).toBeGreaterThan(16); // most of the 24 picks are away from any boundary
    });
  }

  it('top-k 3 only ever picks the 3 largest, and all of them', async () => {
    const ctx = await testGpu();
    const logits = Float32Array.from({ length: 97 }, (_, i) => Math.sin(i * 1.7) * 3);
    const top = Array.from(logits.keys())
      .sort((a, b) => logits[b] - logits[a])
      .slice(0, 3)
      .sort((a, b) => a - b);
    const buf = uploadBuffer(ctx, logits, 'l');
    const s = await GpuSampler.create(ctx, buf, 97, 4);
    const seen = new Set<number>();
    const params = { greedy: false, temperature: 5, topK: 3, topP: 1, repetitionPenalty: 1 };
    for (let i = 0; i < 30; i++) seen.add(await s.sample(params, i / 30));
    s.destroy();
    releaseBuffer(ctx, buf);
    expect([...seen].sort((a, b) => a - b)).toEqual(top);
    expect(sampleRef(logits, [], params, 0.5).kept).toEqual(top);
  });

  it('the penalty steers greedy away from a repeated token', async () => {
    const ctx = await testGpu();
    const logits = new Float32Array([0.5, 2.0, 1.5, -1]);
    const buf = uploadBuffer(ctx, logits, 'l');
    const s = await GpuSampler.create(ctx, buf, 4, 8);
    const g = { greedy: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1.5 };
    expect(await s.sample(g, 0)).toBe(1);
    s.setHistory([1]);
    expect(await s.sample(g, 0)).toBe(2); // 2.0 / 1.5 < 1.5
    s.pushHistory(2);
    expect(await s.sample(g, 0)).toBe(1); // 1.333 > 1.0
    expect(await s.sample({ ...g, repetitionPenalty: 1 }, 0)).toBe(1);
    s.destroy();
    releaseBuffer(ctx, buf);
  });
});
