/**
 * The decode fusions of the matrix-vector linear kernel (kernels/linear.ts:
 * GemvNormIn, GemvResidual, GemvRope) against CPU references built from the
 * unfused references (rmsnormRef, linearRef / gateUpRef, ropeKvRef), on small
 * odd shapes with multi-part weights, bias and both RoPE variants / KV dtypes.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { makeWeight, runLinearCase, type LinearCase } from '../cases/linear.ts';
import { gateUpRef, LinearKernels, linearRef } from '../../kernels/linear.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import { rmsnormRef } from '../../kernels/norm.ts';
import { ropeKvRef, ropeTable } from '../../kernels/rope.ts';
import { cacheValue } from '../cases/attention.ts';
import { createBuffer, readBuffer, readF32, releaseBuffer, STORAGE, uniformBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import { runDispatches } from '../../kernels/prepared.ts';
import type { RopeSpec } from '../../models/spec.ts';
import { assertClose } from '../helpers/compare.ts';
import { Rng } from '../../src/util/rng.ts';

const rand = (rng: Rng, n: number, s = 1) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * s);

/** Splits sum(v^2) into `parts` partial sums (as the residual epilogue leaves them). */
function partials(v: Float32Array, parts: number): Float32Array {
  const out = new Float32Array(parts);
  v.forEach((x, i) => {
    out[i % parts] += x * x;
  });
  return out;
}

describe('matrix-vector decode fusions (Dawn)', () => {
  it('normIn: rmsnorm folded into a projection and the gate/up product', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const rng = new Rng(11);
    const dim = 96,
      out = 37,
      f = 21,
      eps = 1e-5;
    const xRes = rand(rng, dim, 2),
      g = rand(rng, dim);
    const [hRef] = rmsnormRef(xRes, g, 1, dim, eps);
    const lin = await LinearKernels.create(ctx);
    const w = makeWeight(ctx, 'w', 'q4', rand(rng, out * dim), out, dim, 32, 16);
    const wgu = makeWeight(ctx, 'wgu', 'f16', rand(rng, 2 * f * dim), 2 * f, dim);
    const biasV = rand(rng, out);
    const bufs = [
      uploadBuffer(
        ctx,
        xRes.map((v, i) => v * g[i]),
        'h',
      ),
      uploadBuffer(ctx, partials(xRes, 5), 'ss'),
      uploadBuffer(ctx, biasV, 'bias'),
      createBuffer(ctx, out * 4, STORAGE.rw, 'y'),
      createBuffer(ctx, f * 4, STORAGE.rw, 'yg'),
    ];
    const [h, ss, bias, y, yg] = bufs;
    const normIn = { ss, count: 5, dim, eps };
    const d1 = lin.prepare({ x: h, w: w.weight, bias, y, rows: 1, normIn });
    const d2 = lin.prepareGateUp({ x: h, w: wgu.weight, y: yg, rows: 1, normIn });
    try {
      runDispatches(ctx, [d1, d2]);
      const want = linearRef(hRef, w.dequant, 1, dim, out, biasV);
      assertClose(await readF32(ctx, y, out), want, 'normIn linear', 1e-4, 1e-4);
      assertClose(await readF32(ctx, yg, f), gateUpRef(hRef, wgu.dequant, 1, dim, f), 'normIn gate/up', 1e-4, 1e-4);
    } finally {
      d1.destroy();
      d2.destroy();
      for (const b of [...bufs, ...w.buffers, ...wgu.buffers]) releaseBuffer(ctx, b);
      lin.destroy();
    }
    expect(liveBytes(ctx)).toBe(before);
  });

  it('residual: y += x W^T in place, next norm input and partial sums of squares (multi-part weight)', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const rng = new Rng(12);
    const inDim = 64,
      dim = 45;
    const x = rand(rng, inDim),
      res = rand(rng, dim),
      g = rand(rng, dim);
    const w = makeWeight(ctx, 'wo', 'q8', rand(rng, dim * inDim), dim, inDim, 32, 20);
    for (const t of ['default']) {
      const lin = await LinearKernels.create(ctx);
      const bufs = [
        uploadBuffer(ctx, x, 'x'),
        uploadBuffer(ctx, res, 'res'),
        uploadBuffer(ctx, g, 'g'),
        createBuffer(ctx, dim * 4, STORAGE.rw, 'h'),
        createBuffer(ctx, 64 * 4, STORAGE.rw, 'ss'),
      ];
      const [xb, yb, gb, hb, ssb] = bufs;
      const d = lin.prepare({ x: xb, w: w.weight, y: yb, rows: 1, residual: { normW: gb, h: hb, ss: ssb } });
      try {
        // 3 parts of 20/20/5 rows, 16 rows per workgroup: 2 + 2 + 1 workgroups.
        expect(d.workgroups).toBe(5);
        runDispatches(ctx, [d]);
        const sum = linearRef(x, w.dequant, 1, inDim, dim).map((v, i) => v + res[i]);
        assertClose(await readF32(ctx, yb, dim), sum, 'residual x', 1e-5, 1e-5);
        assertClose(
          await readF32(ctx, hb, dim),
          sum.map((v, i) => v * g[i]),
          'residual h',
          1e-5,
          1e-5,
        );
        const ss = (await readF32(ctx, ssb, d.workgroups)).reduce((a, b) => a + b, 0);
        expect(Math.abs(ss - sum.reduce((a, v) => a + v * v, 0)), t).toBeLessThan(1e-4 * ss);
      } finally {
        d.destroy();
        for (const b of bufs) releaseBuffer(ctx, b);
        lin.destroy();
      }
    }
    for (const b of w.buffers) releaseBuffer(ctx, b);
    expect(liveBytes(ctx)).toBe(before);
  });

  const ROPES: { variant: RopeSpec['variant']; rotaryDim: number; kv: 'f32' | 'f16'; norm: boolean }[] = [
    { variant: 'neox', rotaryDim: 16, kv: 'f16', norm: true },
    { variant: 'neox', rotaryDim: 8, kv: 'f32', norm: false },
    { variant: 'interleaved-half', rotaryDim: 8, kv: 'f16', norm: true },
  ];
  for (const rc of ROPES) {
    it(`rope: QKV + bias + ${rc.variant} RoPE (rotaryDim ${rc.rotaryDim}) + ${rc.kv} KV write${rc.norm ? ' + normIn' : ''}`, async () => {
      const ctx = await testGpu();
      const before = liveBytes(ctx);
      const rng = new Rng(13);
      const dim = 64,
        nHeads = 4,
        nKvHeads = 2,
        headDim = 16,
        capacity = 9,
        pos = 6,
        eps = 1e-6;
      const out = (nHeads + 2 * nKvHeads) * headDim;
      const rope: RopeSpec = { variant: rc.variant, rotaryDim: rc.rotaryDim, base: 10000, maxPositions: 64 };
      const xRes = rand(rng, dim),
        g = rand(rng, dim),
        biasV = rand(rng, out);
      const hRef = rc.norm ? rmsnormRef(xRes, g, 1, dim, eps)[0] : xRes;
      const table = ropeTable(rope, pos, 1, pos + 1);
      const lin = await LinearKernels.create(ctx);
      expect(lin.ropeFits(headDim, rc.rotaryDim)).toBe(true);
      const w = makeWeight(ctx, 'wqkv', 'q4', rand(rng, out * dim), out, dim, 32);
      const kvBytes = nKvHeads * capacity * headDim * (rc.kv === 'f16' ? 2 : 4);
      const step = uniformBuffer(ctx, [pos, 1, pos + 1, 0], 'step');
      const bufs = [
        uploadBuffer(ctx, rc.norm ? xRes.map((v, i) => v * g[i]) : xRes, 'x'),
        uploadBuffer(ctx, partials(xRes, 3), 'ss'),
        uploadBuffer(ctx, biasV, 'bias'),
        createBuffer(ctx, nHeads * headDim * 4, STORAGE.rw, 'q'),
        uploadBuffer(ctx, table, 'table'),
        createBuffer(ctx, kvBytes, STORAGE.rw, 'k'),
        createBuffer(ctx, kvBytes, STORAGE.rw, 'v'),
        step,
      ];
      const [xb, ss, bias, q, tb, k, v] = bufs;
      const d = lin.prepare({
        x: xb,
        w: w.weight,
        bias,
        y: q,
        rows: 1,
        normIn: rc.norm ? { ss, count: 3, dim, eps } : undefined,
        rope: { table: tb, k, v, step, nHeads, nKvHeads, headDim, rotaryDim: rc.rotaryDim, neox: rc.variant === 'neox', capacity, kvF16: rc.kv === 'f16' },
      });
      try {
        runDispatches(ctx, [d]);
        const qkv = linearRef(hRef, w.dequant, 1, dim, out, biasV);
        const want = ropeKvRef(qkv, table, { nHeads, nKvHeads, headDim, rope }, 1);
        assertClose(await readF32(ctx, q, nHeads * headDim), want.q, 'rope q', 1e-4, 1e-4);
        const kw = new Uint32Array(await readBuffer(ctx, k)),
          vw = new Uint32Array(await readBuffer(ctx, v));
        const at = (words: Uint32Array, h: number, e: number) => cacheValue(words, (h * capacity + pos) * headDim + e, rc.kv);
        const tol = rc.kv === 'f16' ? 2e-3 : 1e-4;
        for (let h = 0; h < nKvHeads; h++) {
          const gotK = Array.from({ length: headDim }, (_, e) => at(kw, h, e));
          const gotV = Array.from({ length: headDim }, (_, e) => at(vw, h, e));
          assertClose(gotK, want.k.subarray(h * headDim, (h + 1) * headDim), `rope k head ${h}`, tol, tol);
          assertClose(gotV, want.v.subarray(h * headDim, (h + 1) * headDim), `rope v head ${h}`, tol, tol);
        }
      } finally {
        d.destroy();
        for (const b of [...bufs, ...w.buffers]) releaseBuffer(ctx, b);
        lin.destroy();
      }
      expect(liveBytes(ctx)).toBe(before);
    });
  }
});
