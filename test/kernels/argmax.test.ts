import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { createBuffer, readBuffer, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { ArgmaxKernels, argmaxRef, topKRef } from '../../kernels/argmax.ts';
import { runDispatches } from '../../kernels/prepared.ts';
import { Rng } from '../../src/util/rng.ts';

describe('argmax and top-k (Dawn)', () => {
  for (const n of [1, 7, 1025, 92544]) {
    it(`n=${n}`, async () => {
      const ctx = await testGpu();
      const rng = new Rng(n);
      const x = rng.fill(n, 10);
      // Ties resolve to the lowest index; NaN never wins.
      if (n > 10) {
        x[n - 3] = 50;
        x[n - 9] = 50;
        x[2] = NaN;
        x[5] = 49;
        x[n - 1] = 49;
      }
      const gx = uploadBuffer(ctx, x, 'x');
      const out = createBuffer(ctx, 4, STORAGE.rw, 'out');
      const kernels = await ArgmaxKernels.create(ctx);
      const d = kernels.prepareArgmax(gx, n, out);
      const k = Math.min(n, 40);
      const topk = await kernels.prepareTopK(gx, n, k);
      try {
        runDispatches(ctx, [d, topk]);
        expect(new Uint32Array(await readBuffer(ctx, out, 4))[0]).toBe(argmaxRef(x));
        const got = await topk.read();
        const want = topKRef(x, k);
        expect(Array.from(got.ids)).toEqual(want.ids);
        expect(Array.from(got.values)).toEqual(want.values.map(Math.fround));
      } finally {
        d.destroy();
        topk.destroy();
        releaseBuffer(ctx, gx);
        releaseBuffer(ctx, out);
      }
    });
  }
});
