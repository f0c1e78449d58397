/**
 * kernels/dequant (q4 / q8 -> f32 expansion) and the prefill path through it
 * (LinearOptions.prefillDequantMinRows): the expansion bit-equal to the CPU
 * dequantization of src/loader/quant.ts, the prefill with it equal to the
 * reference over the expanded weights and to the in-kernel path, no leaks.
 */
import { describe, expect, it } from 'vitest';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';
import { createEngine } from '../../src/engine/index.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { makeWeight } from '../cases/linear.ts';
import { prepareDequant, expandedBytes } from '../../kernels/dequant.ts';

/** Bytes per weight of the prefill expansion (f32). */
const EXPANDED_BYTES = 4;
/** prefillDequantMinRows that no prefill reaches: the GEMM decodes in-kernel. */
const NEVER = 1e9;
import { gateUpRef, LinearKernels, linearRef, type LinearOptions } from '../../kernels/linear.ts';
import { readBuffer, readF32, releaseBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuContext } from '../../src/gpu/device.ts';
import { quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { dequantize, packF16, unpackF16 } from '../helpers/quant.ts';
import { GpuLimitError, InvalidOptionError } from '../../src/errors.ts';
import { checkPlan, planMemory } from '../../src/loader/memory-plan.ts';
import { BIG_LIMITS, INTERNLM2_7B, paperModel } from '../helpers/paper-model.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertClose } from '../helpers/compare.ts';

/** Rows of mixed magnitudes: f16 subnormal scales and outputs, overflow-free large ones, rounding ties. */
function weights(rng: Rng, rows: number, inDim: number): Float32Array {
  const w = rng.fill(rows * inDim);
  const mags = [1, 3e-6, 2e-4, 40, 0.07, 1500];
  for (let r = 0; r < rows; r++) for (let c = 0; c < inDim; c++) w[r * inDim + c] *= mags[r % mags.length];
  return w;
}

function run(ctx: GpuContext, encode: (pass: GPUComputePassEncoder) => void): void {
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
}

async function readWords(ctx: GpuContext, buf: GPUBuffer): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(ctx, buf));
}

interface DqCase {
  format: 'q4' | 'q8';
  rows: number;
  inDim: number;
  group: number;
}
const DQ_CASES: DqCase[] = [
  { format: 'q4', rows: 12, inDim: 64, group: 32 },
  { format: 'q4', rows: 7, inDim: 128, group: 128 },
  { format: 'q8', rows: 12, inDim: 48, group: 16 },
  { format: 'q8', rows: 7, inDim: 9, group: 3 },
  { format: 'q8', rows: 6, inDim: 33, group: 33 },
];

describe('dequant (Dawn)', () => {
  for (const c of DQ_CASES) {
    it(`${c.format}/g${c.group} ${c.rows}x${c.inDim}: the f32 expansion bit-equal to the CPU, whole and in odd ranges`, async () => {
      const ctx = await testGpu();
      const before = liveBytes(ctx);
      const src = weights(new Rng(c.rows * 31 + c.inDim), c.rows, c.inDim);
      const q = c.format === 'q4' ? quantizeQ4(src, c.inDim, c.group) : quantizeQ8(src, c.inDim, c.group);
      const n = c.rows * c.inDim;
      const ref = dequantize(c.format, q, n);
      const data = uploadBuffer(ctx, q.data, 'q');
      const scales = uploadBuffer(ctx, q.scales, 's');
      const part = { rowStart: 0, rows: c.rows, data, scales };
      // Ranges (src start, count, dst start): the whole part; two ranges meeting mid-word; an odd tail at an odd offset.
      const a = Math.floor(c.rows / 3) * c.inDim + (c.inDim % 2 ? 0 : 5);
      const layouts: [number, number, number][][] = [
        [[0, n, 0]],
        [
          [a, n - a, 0],
          [0, a, n - a],
        ],
        [[c.inDim + 1, n - c.inDim - 1, 3]],
      ];
      try {
        for (const out of ['f32'] as const) {
          for (const ranges of layouts) {
            const total = Math.max(...ranges.map(([, cnt, d]) => d + cnt));
            const dst = uploadBuffer(ctx, new Uint32Array(expandedBytes(total) / 4).fill(0xdeadbeef), 'dst');
            const ds = ranges.map(([s0, count, d0]) =>
              prepareDequant(ctx, { format: c.format, groupSize: c.group, part, srcElem0: s0, count, dst, dstElem0: d0, label: 'w' }),
            );
            try {
              ctx.device.pushErrorScope('validation');
              run(ctx, (pass) => {
                for (const d of ds) d.encode(pass);
              });
              const err = await ctx.device.popErrorScope();
              expect(err?.message).toBeUndefined();
              // Expected: the f32 values of the ranges at their places, then packed; untouched elements keep the fill.
              const want = new Float32Array(total);
              const touched = new Uint8Array(total);
              for (const [s0, count, d0] of ranges) {
                want.set(ref.subarray(s0, s0 + count), d0);
                touched.fill(1, d0, d0 + count);
              }
              const got = await readWords(ctx, dst);
              const bits = new Uint32Array(want.buffer);
              for (let e = 0; e < total; e++) {
                const w = touched[e] ? bits[e] : 0xdeadbeef;
                if (got[e] !== w) throw new Error(`${out} element ${e}: got ${got[e].toString(16)}, want ${w.toString(16)}`);
              }
            } finally {
              for (const d of ds) d.destroy();
              releaseBuffer(ctx, dst);
            }
          }
        }
      } finally {
        releaseBuffer(ctx, data);
        releaseBuffer(ctx, scales);
      }
      expect(liveBytes(ctx)).toBe(before);
    });
  }

  interface PrefillCase {
    format: 'q4' | 'q8';
    rows: number;
    inDim: number;
    out: number;
    group: number;
    partRows?: number;
    gateUp?: boolean;
    bias?: boolean;
  }
  const PREFILL: PrefillCase[] = [
    { format: 'q4', rows: 20, inDim: 96, out: 130, group: 32, partRows: 100, bias: true },
    { format: 'q4', rows: 17, inDim: 64, out: 2 * 72, group: 32, partRows: 50, gateUp: true },
    { format: 'q8', rows: 24, inDim: 33, out: 2 * 21, group: 11, gateUp: true },
    { format: 'q8', rows: 19, inDim: 72, out: 9, group: 24 },
  ];

  /** Runs a case; returns y. */
  async function prefill(
    ctx: GpuContext,
    lin: LinearKernels,
    c: PrefillCase,
    seed: number,
  ): Promise<{ y: Float32Array; expanded: Float32Array; x: Float32Array; bias?: Float32Array }> {
    const rng = new Rng(seed);
    const x = rng.fill(c.rows * c.inDim);
    const w = makeWeight(ctx, 'w', c.format, rng.fill(c.out * c.inDim), c.out, c.inDim, c.group, c.partRows ?? c.out);
    const bias = c.bias ? rng.fill(c.out) : undefined;
    const outCols = c.gateUp ? c.out / 2 : c.out;
    const gx = uploadBuffer(ctx, x, 'x');
    const gb = bias ? uploadBuffer(ctx, bias, 'bias') : undefined;
    const gy = uploadBuffer(ctx, new Float32Array(c.rows * outCols + 3).fill(1234.5), 'y');
    const d = c.gateUp ? lin.prepareGateUp({ x: gx, w: w.weight, y: gy, rows: c.rows }) : lin.prepare({ x: gx, w: w.weight, bias: gb, y: gy, rows: c.rows });
    try {
      ctx.device.pushErrorScope('validation');
      run(ctx, (pass) => d.encode(pass));
      expect((await ctx.device.popErrorScope())?.message).toBeUndefined();
      const all = await readF32(ctx, gy, c.rows * outCols + 3);
      for (let i = c.rows * outCols; i < all.length; i++) expect(all[i]).toBe(1234.5);
      return { y: all.subarray(0, c.rows * outCols), expanded: w.dequant, x, bias };
    } finally {
      d.destroy();
      for (const b of [gx, gb, gy, ...w.buffers]) releaseBuffer(ctx, b);
    }
  }

  it('prefill through the scratch: f32 equals the in-kernel path; chunked scratch; no leaks', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const opts: [string, LinearOptions][] = [
      ['none', { prefillDequantMinRows: NEVER }],
      ['f32', { prefillDequantMinRows: 16 }],
      // A scratch of a few rows: every weight runs in row chunks.
      ['f32 chunked', { prefillDequantMinRows: 16, prefillScratchMaxBytes: 1 << 12 }],
    ];
    const lins = await Promise.all(opts.map(([, o]) => LinearKernels.create(ctx, o)));
    try {
      for (const [ci, c] of PREFILL.entries()) {
        const outCols = c.gateUp ? c.out / 2 : c.out;
        const ys: Float32Array[] = [];
        for (const [i, [name]] of opts.entries()) {
          const r = await prefill(ctx, lins[i], c, ci + 1);
          ys.push(r.y);
          const w = r.expanded;
          const want = c.gateUp ? gateUpRef(r.x, w, c.rows, c.inDim, outCols) : linearRef(r.x, w, c.rows, c.inDim, c.out, r.bias);
          assertClose(r.y, want, `${name} ${JSON.stringify(c)}`, 1e-4, 0);
        }
        // f32 expansion: the same weights as the in-kernel path, so the same sums.
        assertClose(ys[1], ys[0], `f32 vs none ${JSON.stringify(c)}`, 1e-6, 0);
        assertClose(ys[2], ys[0], `f32 chunked vs none ${JSON.stringify(c)}`, 1e-6, 0);
      }
      // Scratch: none for 'none', allocated by the first large prefill, capped where asked.
      expect(lins[0].dequantScratchBytes).toBe(0);
      expect(lins[1].dequantScratchBytes).toBeGreaterThan(0);
      expect(lins[2].dequantScratchBytes).toBeLessThanOrEqual(1 << 12);
      // Below the row threshold nothing is allocated.
      const fresh = await LinearKernels.create(ctx, { prefillDequantMinRows: 64 });
      await prefill(ctx, fresh, PREFILL[0], 1);
      expect(fresh.dequantScratchBytes).toBe(0);
      fresh.destroy();
    } finally {
      for (const l of lins) l.destroy();
    }
    expect(liveBytes(ctx)).toBe(before);
    await expect(LinearKernels.create(ctx, { prefillScratchMaxBytes: 8 })).rejects.toThrow(InvalidOptionError);
    await expect(LinearKernels.create(ctx, { prefillDequantMinRows: 0 })).rejects.toThrow(/prefillDequantMinRows/);
    expect(liveBytes(ctx)).toBe(before);
  });

  it('the scratch hint sizes the first allocation for the largest weight', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const lin = await LinearKernels.create(ctx, { prefillDequantMinRows: 16 });
    lin.reserveDequantScratch([
      [2 * 72, 64],
      [130, 96],
    ]);
    expect(lin.dequantScratchBytes).toBe(0);
    await prefill(ctx, lin, PREFILL[3], 3);
    expect(lin.dequantScratchBytes).toBe(130 * 96 * EXPANDED_BYTES); // the default expansion's element size
    lin.destroy();
    expect(liveBytes(ctx)).toBe(before);
  });
});

describe('memory plan: prefill dequantization scratch', () => {
  it('counts the largest layer matrix expanded (q4 / q8, large chunks only), capped at one binding; a budget that only misses by it fails typed', () => {
    const { spec, plan } = paperModel(INTERNLM2_7B);
    const limits = BIG_LIMITS;
    const q4 = planMemory(spec, plan, limits, { format: 'q4', contextLength: 4096, prefillChunk: 512 });
    expect(q4.dequantScratchBytes).toBe(2 * 14336 * 4096 * EXPANDED_BYTES); // gate/up, default expansion
    expect(q4.totalBytes).toBe(q4.weightsBytes + q4.kvCacheBytes + q4.activationBytes + q4.dequantScratchBytes);
    expect(planMemory(spec, plan, limits, { format: 'q8', contextLength: 4096 }).dequantScratchBytes).toBe(2 * 14336 * 4096 * 4);
    expect(planMemory(spec, plan, limits, { format: 'q4', contextLength: 4096, prefillDequantMinRows: NEVER }).dequantScratchBytes).toBe(0);
    expect(planMemory(spec, plan, limits, { format: 'q4', contextLength: 4096, prefillChunk: 128 }).dequantScratchBytes).toBe(0);
    expect(planMemory(spec, plan, limits, { format: 'f16', contextLength: 4096 }).dequantScratchBytes).toBe(0);
    const small = { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 27 };
    expect(planMemory(spec, plan, small, { format: 'q4', contextLength: 4096 }).dequantScratchBytes).toBe(2 ** 27);
    const without = q4.totalBytes - q4.dequantScratchBytes;
    expect(() => checkPlan(spec, plan, limits, { format: 'q4', contextLength: 4096, prefillChunk: 512, budgetBytes: without + 1 })).toThrow(GpuLimitError);
    expect(() =>
      checkPlan(spec, plan, limits, { format: 'q4', contextLength: 4096, prefillChunk: 512, prefillDequantMinRows: NEVER, budgetBytes: without + 1 }),
    ).not.toThrow();
  });
});

describe('engine prefill through the dequantization scratch (internlm2-tiny q4)', () => {
  it('f32 expansion gives the in-kernel logits; the scratch is freed with the engine', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const dir = `${FIXTURES}golden/internlm2-tiny`;
    const fs = nodeSource(dir);
    const model = await readModel(fs);
    const weights = await loadWeights(ctx, fs, model.spec, model.plan, { format: 'q4' });
    const rng = new Rng(5);
    const ids = Array.from({ length: 12 }, () => rng.int(512));
    const logits: Float32Array[] = [];
    try {
      for (const prefillDequant of ['none', 'f32'] as const) {
        const prefillDequantMinRows = prefillDequant === 'none' ? NEVER : 8;
        const e = await createEngine(ctx, {
          spec: model.spec,
          weights,
          ownsWeights: false,
          contextLength: 16,
          prefillChunk: 12,
          kvDtype: 'f32',
          attention: { attention: 'dense' },
          linear: { prefillDequantMinRows },
        });
        try {
          logits.push((await e.prefill(ids, { allLogits: true })).logits!);
          expect(e.stateBytes.dequantScratch > 0).toBe(prefillDequant !== 'none');
        } finally {
          e.destroy();
        }
      }
    } finally {
      releaseWeights(ctx, weights.values());
    }
    assertClose(logits[1], logits[0], 'f32 expansion vs in-kernel', 1e-5, 1e-6);
    expect(liveBytes(ctx)).toBe(before);
  }, 120_000);
});
