import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import { createBuffer, readBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { effectiveBase, invFreq, RopeKv, ropeKvRef, ropeTable } from '../../kernels/rope.ts';
import { cacheValue } from '../cases/attention.ts';
import { runDispatches, StepUniform } from '../../kernels/prepared.ts';
import type { RopeSpec } from '../../models/spec.ts';
import type { KvDtype } from '../../src/engine/types.ts';
import { Rng } from '../../src/util/rng.ts';

const neox = (headDim: number, extra: Partial<RopeSpec> = {}): RopeSpec => ({ variant: 'neox', base: 1e6, rotaryDim: headDim, maxPositions: 4096, ...extra });
const glm = (headDim: number): RopeSpec => ({ variant: 'interleaved-half', base: 10000, rotaryDim: headDim / 2, maxPositions: 4096 });

describe('rope tables', () => {
  it('match float32 inv_freq and positions', () => {
    const inv = invFreq(10000, 8);
    expect(Array.from(inv)).toEqual([
      1,
      Math.fround(1 / Math.fround(10000 ** 0.25)),
      Math.fround(1 / Math.fround(10000 ** 0.5)),
      Math.fround(1 / Math.fround(10000 ** 0.75)),
    ]);
    const t = ropeTable(glm(16), 5, 2, 7);
    expect(t[0]).toBeCloseTo(Math.cos(5), 6);
    expect(t[1]).toBeCloseTo(Math.sin(5), 6);
    expect(t[8]).toBeCloseTo(Math.cos(6), 6);
  });
  it('dynamic NTK changes the base only past maxPositions', () => {
    const r = neox(64, { scaling: { type: 'dynamic', factor: 2 }, maxPositions: 100 });
    expect(effectiveBase(r, 100)).toBe(1e6);
    expect(effectiveBase(r, 150)).toBeCloseTo(1e6 * ((2 * 150) / 100 - 1) ** (64 / 62), 0);
  });
});

describe('rope + KV write (Dawn)', () => {
  const cases: [string, RopeSpec, number, number, number, number, number, KvDtype][] = [
    // name, rope, nHeads, nKvHeads, headDim, rows, pos, kvDtype
    ['glm hd32 gqa2', glm(32), 4, 2, 32, 5, 0, 'f32'],
    ['glm hd128 gqa16 f16', glm(128), 16, 1, 128, 3, 7, 'f16'],
    ['neox hd8 gqa1', neox(8), 3, 3, 8, 1, 12, 'f32'],
    ['neox hd64 gqa4 f16', neox(64), 8, 2, 64, 17, 3, 'f16'],
    ['neox hd128 gqa4', neox(128), 4, 1, 128, 2, 30, 'f32'],
  ];
  for (const [name, rope, nHeads, nKvHeads, headDim, rows, pos, kvDtype] of cases) {
    it(name, async () => {
      const ctx = await testGpu();
      const capacity = pos + rows + 3;
      const rng = new Rng(rows * 7 + headDim);
      const width = (nHeads + 2 * nKvHeads) * headDim;
      const qkv = rng.fill(rows * width, 2);
      const table = ropeTable(rope, pos, rows, pos + rows);
      const shape = { nHeads, nKvHeads, headDim, capacity, kvDtype, rope };
      const kernel = await RopeKv.create(ctx, shape);
      const cacheBytes = nKvHeads * capacity * headDim * (kvDtype === 'f32' ? 4 : 2);
      const g = {
        qkv: uploadBuffer(ctx, qkv, 'qkv'),
        table: uploadBuffer(ctx, table, 'table'),
        q: createBuffer(ctx, rows * nHeads * headDim * 4, STORAGE.rw, 'q'),
        k: createBuffer(ctx, cacheBytes, STORAGE.rw, 'k'),
        v: createBuffer(ctx, cacheBytes, STORAGE.rw, 'v'),
      };
      const step = new StepUniform(ctx);
      step.set(pos, rows);
      const d = kernel.prepare({ qkv: g.qkv, table: g.table, q: g.q, kv: { k: g.k, v: g.v }, step: step.buffer, rows });
      try {
        runDispatches(ctx, [d]);
        const want = ropeKvRef(qkv, table, shape, rows);
        assertClose(await readF32(ctx, g.q, rows * nHeads * headDim), want.q, 'q', 1e-5, 1e-6);
        const kw = new Uint32Array(await readBuffer(ctx, g.k));
        const vw = new Uint32Array(await readBuffer(ctx, g.v));
        const tol = kvDtype === 'f16' ? 1e-3 : 1e-5;
        for (const [words, ref, what] of [
          [kw, want.k, 'k'],
          [vw, want.v, 'v'],
        ] as const) {
          const got = new Float32Array(nKvHeads * rows * headDim);
          for (let h = 0; h < nKvHeads; h++)
            for (let r = 0; r < rows; r++)
              for (let c = 0; c < headDim; c++) {
                got[(h * rows + r) * headDim + c] = cacheValue(words, (h * capacity + pos + r) * headDim + c, kvDtype);
              }
          assertClose(got, ref, what, tol, 1e-6);
          // Positions outside [pos, pos + rows) stay untouched (zero).
          for (let h = 0; h < nKvHeads; h++) expect(cacheValue(words, (h * capacity + pos + rows) * headDim, kvDtype)).toBe(0);
        }
      } finally {
        d.destroy();
        step.destroy();
        for (const b of Object.values(g)) releaseBuffer(ctx, b);
      }
    });
  }
});
