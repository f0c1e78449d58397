import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { RmsNorm, rmsnormRef } from '../../kernels/norm.ts';
import { runDispatches } from '../../kernels/prepared.ts';
import { Rng } from '../../src/util/rng.ts';

describe('rmsnorm (Dawn)', () => {
  for (const [rows, dim] of [
    [1, 1],
    [3, 64],
    [5, 300],
    [2, 2052],
    [2, 4099],
  ]) {
    // dim % 4 == 0 takes the vec4 kernels
    for (const fused of [false, true]) {
      it(`${fused ? 'add_rmsnorm' : 'rmsnorm'} rows=${rows} dim=${dim}`, async () => {
        const ctx = await testGpu();
        const rng = new Rng(rows * 31 + dim);
        const x = rng.fill(rows * dim, 3),
          w = rng.fill(dim),
          res = rng.fill(rows * dim);
        const gx = uploadBuffer(ctx, x, 'x'),
          gw = uploadBuffer(ctx, w, 'w'),
          gr = uploadBuffer(ctx, res, 'res');
        const gy = createBuffer(ctx, rows * dim * 4, STORAGE.rw, 'y');
        const norm = await RmsNorm.create(ctx);
        const d = norm.prepare({ x: gx, w: gw, y: gy, rows, dim, eps: 1e-5, res: fused ? gr : undefined });
        try {
          runDispatches(ctx, [d]);
          const [wantY, wantX] = rmsnormRef(x, w, rows, dim, 1e-5, fused ? res : undefined);
          assertClose(await readF32(ctx, gy, rows * dim), wantY, 'y', 1e-5, 1e-6);
          assertClose(await readF32(ctx, gx, rows * dim), wantX, 'x', 1e-6, 1e-6);
        } finally {
          d.destroy();
          for (const b of [gx, gw, gr, gy]) releaseBuffer(ctx, b);
        }
      });
    }
  }

  for (const dim of [70, 72])
    it(`xRowOffset normalizes a later row (dim ${dim})`, async () => {
      const ctx = await testGpu();
      const rng = new Rng(5);
      const x = rng.fill(4 * dim),
        w = rng.fill(dim);
      const gx = uploadBuffer(ctx, x, 'x'),
        gw = uploadBuffer(ctx, w, 'w'),
        gy = createBuffer(ctx, dim * 4, STORAGE.rw, 'y');
      const d = (await RmsNorm.create(ctx)).prepare({ x: gx, w: gw, y: gy, rows: 1, dim, eps: 1e-6, xRowOffset: 3 });
      runDispatches(ctx, [d]);
      assertClose(await readF32(ctx, gy, dim), rmsnormRef(x.subarray(3 * dim), w, 1, dim, 1e-6)[0], 'y');
      d.destroy();
      for (const b of [gx, gw, gy]) releaseBuffer(ctx, b);
    });
});
