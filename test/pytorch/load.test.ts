/**
 * Integration: a folder with pytorch_model.bin (or its sharded index) goes
 * through the same readModel -> weight plan -> loadWeights path as
 * safetensors (real WebGPU), and the GPU weights equal those loaded from the
 * golden safetensors checkpoint (bf16: within bf16 precision).
 */
import { describe, expect, it } from 'vitest';
import { readModel } from '../../src/loader/model.ts';
import { readWeightF32 } from '../helpers/readback.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { UnsafePickleError } from '../../src/errors.ts';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';

/** f32 values rounded to bf16 (round to nearest even) and back. */
function roundBf16(v: Float32Array): Float32Array {
  const u = new Uint32Array(v.slice().buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}

describe('PyTorch checkpoints through the loader (real WebGPU)', () => {
  for (const [dir, bf16] of [
    ['single-fp16', false],
    ['sharded-bf16', true],
  ] as const) {
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
          const want = bf16 ? roundBf16(vb) : vb;
          let bad = -1;
          for (let i = 0; i < want.length && bad < 0; i++) if (va[i] !== want[i]) bad = i;
          expect(bad, `${name}: first mismatch`).toBe(-1);
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
