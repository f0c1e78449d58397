import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { DENSE_SHAPES, runDenseCase, shapeName } from '../cases/attention.ts';

describe('dense causal prefill attention (Dawn)', () => {
  for (const shape of DENSE_SHAPES) {
    it(`${shapeName(shape)} matches the CPU reference`, async () => {
      const ctx = await testGpu();
      const err = await runDenseCase(ctx, shape);
      expect(err).toBeLessThan(1e-3);
    });
  }
  it('without subgroups (one thread per query row) matches too', async () => {
    const ctx = await testGpu();
    expect(await runDenseCase(ctx, DENSE_SHAPES[5], 5, { subgroups: false })).toBeLessThan(1e-3);
  });
  it('forced tile sizes (tuning overrides) match too; impossible ones are typed errors', async () => {
    const ctx = await testGpu();
    // Two and four query rows per thread, GQA 4 and 1, a pos > 0 chunk and f16.
    expect(await runDenseCase(ctx, DENSE_SHAPES[3], 7, { tile: { qr: 64, tpr: 4, bc: 16, rpt: 2 } })).toBeLessThan(1e-3);
    expect(await runDenseCase(ctx, DENSE_SHAPES[5], 7, { tile: { qr: 32, tpr: 1, bc: 8, rpt: 4 } })).toBeLessThan(1e-3);
    await expect(runDenseCase(ctx, DENSE_SHAPES[1], 7, { tile: { tpr: 3 } })).rejects.toThrow(/tile.tpr/);
  });
});
