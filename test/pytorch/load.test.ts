/**
 * Integration: a folder with pytorch_model.bin (or its sharded index) goes
 * through the same readModel -> weight plan -> loadWeights path as
 * safetensors (real WebGPU), and the GPU weights equal those loaded from the
 * golden safetensors checkpoint (bf16: within bf16 precision).
 */
import { describe, expect, it } from 'vitest';
import { readModel } from '../../src/loader/model.ts';
import { readWeightF32 } from '../../src/loader/readback.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { UnsafePickleError } from '../../src/errors.ts';
import { liveBytes } from '../../src/gpu/buffers.ts';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';

describe('PyTorch checkpoints through the loader (real WebGPU)', () => {
  for (const [dir, relTol] of [['single-fp16', 0], ['sharded-bf16', 2 ** -8]] as const) {
    it(`${dir}: same spec, plan and f32 GPU weights as the golden safetensors`, async () => {
      const ctx = await testGpu();
      const ref = await readModel(nodeSource(`${FIXTURES}golden/chatglm2-tiny`));
      const src = nodeSource(`${FIXTURES}pytorch/${dir}`);
      const m = await readModel(src);
      expect(m.checkpoint.files.every((f) => f.endsWith('.bin'))).toBe(true);
      expect(m.spec.dim).toBe(ref.spec.dim);
      expect(m.plan.recipes.map((r) => [r.name, r.shape])).toEqual(ref.plan.recipes.map((r) => [r.name, r.shape]));
      const a = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f32' });
      const b = await loadWeights(ctx, ref.source, ref.spec, ref.plan, { format: 'f32' });
      try {
        for (const [name, wa] of a) {
          const va = await readWeightF32(ctx, wa);
          const vb = await readWeightF32(ctx, b.get(name)!);
          let worst = 0;
          for (let i = 0; i < vb.length; i++) worst = Math.max(worst, Math.abs(va[i] - vb[i]) - relTol * Math.abs(vb[i]));
          expect(worst, name).toBeLessThanOrEqual(0);
        }
      } finally {
        releaseWeights(ctx, a.values());
        releaseWeights(ctx, b.values());
      }
    });
  }

  it('the malicious folder fails in readModel with UnsafePickleError before any GPU allocation', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const err = await readModel(nodeSource(`${FIXTURES}pytorch/malicious`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePickleError);
    expect((err as Error).message).toContain('posix.system');
    expect(liveBytes(ctx)).toBe(before);
  });
});
