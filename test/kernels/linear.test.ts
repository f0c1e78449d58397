import { describe, expect, it } from 'vitest';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { caseName, LINEAR_CASES, makeWeight, runLinearCase, type LinearCase } from '../cases/linear.ts';
import { LinearKernels, linearRef } from '../../kernels/linear.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, writeBuffer } from '../../src/gpu/buffers.ts';
import { assertClose } from '../helpers/compare.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const GEMV_CASES: LinearCase[] = [
  { format: 'q4', rows: 8, inDim: 128, out: 37, groupSize: 32, partRows: 20, bias: true },
  { format: 'f16', rows: 2, inDim: 64, out: 2 * 21, gateUp: true },
  { format: 'q8', rows: 1, inDim: 48, out: 9, groupSize: 16 },
];

const GEMM_CASES: LinearCase[] = [
  { format: 'q4', rows: 20, inDim: 96, out: 130, groupSize: 32, partRows: 100, bias: true },
  { format: 'f16', rows: 9, inDim: 33, out: 2 * 21, gateUp: true },
  { format: 'q8', rows: 40, inDim: 72, out: 9, groupSize: 24 },
];

describe('linear kernels (Dawn)', () => {
  for (const c of LINEAR_CASES) {
    it(`${caseName(c)} matches the dequantized f64 reference`, async () => {
      const ctx = await testGpu();
      const err = await runLinearCase(ctx, c);
      expect(err).toBeLessThan(1e-4);
    });
  }

  it('matrix-vector (1-8 rows as dispatch size) and GEMM cases give the reference results', async () => {
    const ctx = await testGpu();
    const lin = await LinearKernels.create(ctx);
    try {
      for (const c of GEMV_CASES) expect(await runLinearCase(ctx, c, 5, lin)).toBeLessThan(1e-4);
      for (const c of GEMM_CASES) expect(await runLinearCase(ctx, c, 6, lin)).toBeLessThan(1e-4);
    } finally {
      lin.destroy();
    }
  });

  it('a prepared dispatch replays: new x contents give new results, nothing is rebuilt', async () => {
    const ctx = await testGpu();
    const lin = await LinearKernels.create(ctx);
    const rng = new Rng(9);
    const inDim = 64,
      out = 24;
    const w = makeWeight(ctx, 'w', 'q4', rng.fill(out * inDim), out, inDim, 32, 10);
    for (const rows of [1, 12]) {
      const x = createBuffer(ctx, rows * inDim * 4, STORAGE.rw, 'x');
      const y = createBuffer(ctx, rows * out * 4, STORAGE.rw, 'y');
      const d = lin.prepare({ x, w: w.weight, y, rows });
      try {
        for (let step = 0; step < 2; step++) {
          const xs = rng.fill(rows * inDim);
          writeBuffer(ctx, x, 0, xs);
          const enc = ctx.device.createCommandEncoder();
          const pass = enc.beginComputePass();
          d.encode(pass);
          pass.end();
          ctx.device.queue.submit([enc.finish()]);
          const got = await readF32(ctx, y, rows * out);
          assertClose(got, linearRef(xs, w.dequant, rows, inDim, out), `replay rows=${rows} step ${step}`, 1e-4, 0);
        }
      } finally {
        d.destroy();
        releaseBuffer(ctx, x);
        releaseBuffer(ctx, y);
      }
    }
    for (const b of w.buffers) releaseBuffer(ctx, b);
    lin.destroy();
  });

  it('rejects bad shapes and buffers with typed errors, leaking nothing', async () => {
    const ctx = await testGpu();
    const lin = await LinearKernels.create(ctx);
    const before = liveBytes(ctx);
    const w = makeWeight(ctx, 'blk.0.w', 'q4', new Rng(3).fill(16 * 64), 16, 64, 32, 8);
    const x = createBuffer(ctx, 64 * 4, STORAGE.rw, 'x');
    const y = createBuffer(ctx, 16 * 4, STORAGE.rw, 'y');
    try {
      expect(() => lin.prepare({ x, w: w.weight, y, rows: 2 })).toThrow(InvalidOptionError);
      expect(() => lin.prepare({ x, w: w.weight, y, rows: 0 })).toThrow(/rows/);
      expect(() => lin.prepare({ x, w: { ...w.weight, groupSize: 48 }, y, rows: 1 })).toThrow(/group size 48/);
      expect(() => lin.prepare({ x, w: { ...w.weight, parts: [w.weight.parts[1]] }, y, rows: 1 })).toThrow(/blk\.0\.w/);
      const small = createBuffer(ctx, 8, STORAGE.rw, 'bias');
      try {
        expect(() => lin.prepare({ x, w: w.weight, y, rows: 1, bias: small })).toThrow(/bias/);
      } finally {
        releaseBuffer(ctx, small);
      }
      expect(() => lin.prepareGateUp({ x, w: { ...w.weight, shape: [15, 64] }, y, rows: 1 })).toThrow(InvalidOptionError);
      const d = lin.prepare({ x, w: w.weight, y, rows: 1 });
      d.destroy();
    } finally {
      for (const b of [x, y, ...w.buffers]) releaseBuffer(ctx, b);
    }
    expect(liveBytes(ctx)).toBe(before);
    lin.destroy();
  });
});
