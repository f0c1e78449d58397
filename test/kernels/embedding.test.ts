import { describe, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { Embedding, embeddingRef } from '../../kernels/embedding.ts';
import { runDispatches } from '../../kernels/prepared.ts';
import { releaseWeight } from '../../src/engine/weights.ts';
import { uploadWeight } from '../../bench/synthetic/weights.ts';
import { roundTrip } from '../helpers/quant.ts';
import type { WeightFormat } from '../../src/loader/formats.ts';
import { Rng } from '../../src/util/rng.ts';

describe('embedding gather (Dawn)', () => {
  const cases: [WeightFormat, number, number, number | undefined][] = [
    ['f32', 37, 48, undefined],
    ['f16', 37, 300, 10],
    ['q8', 50, 64, 7],
    ['q4', 61, 96, 16],
    ['q4', 9, 32, 1],
  ];
  for (const [format, vocab, dim, partRows] of cases) {
    it(`${format} vocab=${vocab} dim=${dim} parts of ${partRows ?? 'all'} rows`, async () => {
      const ctx = await testGpu();
      const rng = new Rng(vocab + dim);
      const table = rng.fill(vocab * dim);
      const gs = 32;
      const w = uploadWeight(ctx, 'embed', table, [vocab, dim], { format, groupSize: gs, partRows });
      const ids = Uint32Array.from([0, vocab - 1, 3, 3, Math.floor(vocab / 2), 1, vocab - 2]);
      const gIds = uploadBuffer(ctx, ids, 'ids');
      const out = createBuffer(ctx, ids.length * dim * 4, STORAGE.rw, 'out');
      const emb = await Embedding.create(ctx);
      const d = emb.prepare({ ids: gIds, table: w, out, rows: ids.length });
      try {
        runDispatches(ctx, [d]);
        const want = embeddingRef(roundTrip(format, table, dim, gs), dim, ids);
        assertClose(await readF32(ctx, out, ids.length * dim), want, `${format} gather`, 0, 1e-7);
      } finally {
        d.destroy();
        releaseWeight(ctx, w);
        releaseBuffer(ctx, gIds);
        releaseBuffer(ctx, out);
      }
    });
  }
});
