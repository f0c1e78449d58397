import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { MATMUL_SHAPES, runMatmulCase } from '../cases/matmul.ts';

describe('matmul f32 (Dawn)', () => {
  for (const shape of MATMUL_SHAPES) {
    it(`${shape.m}x${shape.n}x${shape.k} matches the CPU reference`, async () => {
      const ctx = await testGpu();
      const err = await runMatmulCase(ctx, shape);
      expect(err).toBeLessThan(1e-3);
    });
  }
});
