/**
 * Matmul kernel cases, shared by the Node test (Dawn) and the browser test
 * page (Chromium): each returns its measured error or throws.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { readF32, releaseBuffer, uploadBuffer, createBuffer, STORAGE } from '../../src/gpu/buffers.ts';
import { MatmulF32, matmulRef, type MatmulShape } from '../../bench/matmul.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertClose } from '../helpers/compare.ts';

export const MATMUL_SHAPES: MatmulShape[] = [
  { m: 1, n: 1, k: 1 },
  { m: 17, n: 33, k: 65 },
  { m: 128, n: 256, k: 64 },
  { m: 130, n: 7, k: 300 },
];

export async function runMatmulCase(ctx: GpuContext, shape: MatmulShape, seed = 1): Promise<number> {
  const rng = new Rng(seed);
  const a = rng.fill(shape.m * shape.k);
  const b = rng.fill(shape.n * shape.k);
  const mm = await MatmulF32.create(ctx);
  const ga = uploadBuffer(ctx, a, 'a');
  const gb = uploadBuffer(ctx, b, 'b');
  const gc = createBuffer(ctx, shape.m * shape.n * 4, STORAGE.rw, 'c');
  try {
    mm.run(ga, gb, gc, shape);
    const got = await readF32(ctx, gc, shape.m * shape.n);
    const want = matmulRef(a, b, shape);
    return assertClose(got, want, `matmul ${shape.m}x${shape.n}x${shape.k}`, 1e-5, 1e-5).maxAbs;
  } finally {
    for (const buf of [ga, gb, gc]) releaseBuffer(ctx, buf);
  }
}
