/**
 * The 'f16' tier's rows of bench/conformance.ts (issue 17): each f16 kernel instantiation (the
 * tier header of src/gpu/wgsl-header.ts: f16 activations between ops, f32 accumulation, an f16
 * KV cache) against its CPU reference (f64, on the f16-rounded inputs the kernel sees) at odd
 * shapes. Needs a device with shader-f16 (SwiftShader has none: test/gpu/f16-tier.test.ts only
 * compiles these kernels, on Dawn's null backend).
 *
 * Bars (max |err| / max |ref|): f16 storage of the outputs alone costs up to 2^-11 relative
 * (4.9e-4); the matrix-vector kernel also rounds each dequantized weight to f16 and sums a
 * 16-byte chunk's products in f16. 1e-2 for the linear layers, 4e-3 elsewhere; the f32 tier's
 * tests hold 1e-4.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { createBuffer, readBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuWeight, GpuWeightPart, WeightFormat } from '../../src/gpu/formats.ts';
import { f16ToF32, f32ToF16, quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { packF16, roundTrip } from '../../test/helpers/quant.ts';
import { Rng } from '../../src/util/rng.ts';
import { gateUpRef, LinearKernels, linearRef } from '../../kernels/linear.ts';
import { RmsNorm, rmsnormRef } from '../../kernels/norm.ts';
import { RopeKv, ropeKvRef, ropeTable } from '../../kernels/rope.ts';
import { DecodeAttention, attentionRef as decodeRef } from '../../kernels/attention_decode.ts';
import { runDispatches, StepUniform } from '../../kernels/prepared.ts';
import { PrefillAttention } from '../../src/attention/index.ts';
import { DEFAULT_ATTENTION } from '../../src/defaults.ts';
import type { RopeSpec } from '../../models/spec.ts';

/** Adds one table row: (tier, kernel, shape, error, bar). */
export type Record = (tier: string, kernel: string, shape: string, err: number, bar: number) => void;

const LINEAR_BAR = 1e-2;
const BAR = 4e-3;

const r16 = (a: Float32Array) => a.map((v) => f16ToF32(f32ToF16(v)));

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0,
    mx = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    mx = Math.max(mx, Math.abs(want[i]));
  }
  return err / Math.max(mx, 1e-30);
}

async function readF16(ctx: GpuContext, b: GPUBuffer, n: number): Promise<Float32Array> {
  const h = new Uint16Array(await readBuffer(ctx, b), 0, n);
  return Float32Array.from(h, f16ToF32);
}

/** An f16 activation buffer (at least 16 bytes, whole words) holding `v`. */
function uploadF16(ctx: GpuContext, v: Float32Array, label: string): GPUBuffer {
  const words = packF16(v.length % 2 ? Float32Array.from([...v, 0]) : v);
  const padded = new Uint32Array(Math.max(4, Math.ceil(words.length / 4) * 4));
  padded.set(words);
  return uploadBuffer(ctx, padded, label);
}

function f16Buffer(ctx: GpuContext, n: number, label: string): GPUBuffer {
  return createBuffer(ctx, Math.max(16, Math.ceil((n * 2) / 16) * 16), STORAGE.rw, label);
}

function packWeight(
  ctx: GpuContext,
  format: WeightFormat,
  src: Float32Array,
  out: number,
  inDim: number,
  group: number,
): { w: GpuWeight; deq: Float32Array; bufs: GPUBuffer[] } {
  const bufs: GPUBuffer[] = [];
  let part: GpuWeightPart;
  if (format === 'f32') part = { rowStart: 0, rows: out, data: uploadBuffer(ctx, src, 'w') };
  else if (format === 'f16') part = { rowStart: 0, rows: out, data: uploadBuffer(ctx, packF16(src), 'w') };
  else {
    const q = format === 'q8' ? quantizeQ8(src, inDim, group) : quantizeQ4(src, inDim, group);
    part = { rowStart: 0, rows: out, data: uploadBuffer(ctx, q.data, 'w'), scales: uploadBuffer(ctx, q.scales, 'scales') };
    bufs.push(part.scales!);
  }
  bufs.push(part.data);
  const quant = format === 'q8' || format === 'q4';
  return { w: { name: 'w', format, shape: [out, inDim], groupSize: quant ? group : 0, parts: [part] }, deq: roundTrip(format, src, inDim, group), bufs };
}

/** Runs the f16 tier's kernels; rows go to `record` with tier 'f16'. */
export async function runF16Kernels(ctx: GpuContext, record: Record): Promise<void> {
  const rng = new Rng(1716);
  const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * s);

  // Linear: matrix-vector (1, 3 rows; vector and element-wise), GEMM (130 rows), q4 / q8 through the f32 expansion (300 rows).
  const lin = await LinearKernels.create(ctx, { prefillDequantMinRows: 256 }, 'f16');
  const cases: { f: WeightFormat; rows: number; inDim: number; out: number; g?: number; gateUp?: boolean; bias?: boolean; yF32?: boolean }[] = [];
  for (const rows of [1, 3, 130]) {
    cases.push({ f: 'f16', rows, inDim: 200, out: 33, bias: true });
    cases.push({ f: 'f16', rows, inDim: 33, out: 96 });
    cases.push({ f: 'q8', rows, inDim: 96, out: 64, g: 32 });
    cases.push({ f: 'q4', rows, inDim: 256, out: 200, g: 64, bias: true });
    cases.push({ f: 'f32', rows, inDim: 64, out: 40 });
    cases.push({ f: 'q4', rows, inDim: 96, out: 2 * 40, g: 32, gateUp: true });
    cases.push({ f: 'q4', rows, inDim: 128, out: 1003, g: 32, yF32: true });
  }
  cases.push({ f: 'q4', rows: 300, inDim: 128, out: 96, g: 32 });
  cases.push({ f: 'q8', rows: 300, inDim: 64, out: 2 * 48, g: 64, gateUp: true });
  for (const c of cases) {
    const outCols = c.gateUp ? c.out / 2 : c.out;
    const x = r16(rand(c.rows * c.inDim));
    const pw = packWeight(ctx, c.f, rand(c.out * c.inDim, 0.2), c.out, c.inDim, c.g ?? 0);
    const bias = c.bias ? rand(c.out) : undefined;
    const gx = uploadF16(ctx, x, 'x');
    const gb = bias ? uploadBuffer(ctx, bias, 'bias') : undefined;
    const gy = c.yF32 ? createBuffer(ctx, c.rows * outCols * 4, STORAGE.rw, 'y') : f16Buffer(ctx, c.rows * outCols, 'y');
    const d = c.gateUp
      ? lin.prepareGateUp({ x: gx, w: pw.w, y: gy, rows: c.rows })
      : lin.prepare({ x: gx, w: pw.w, bias: gb, y: gy, yF32: c.yF32, rows: c.rows });
    try {
      runDispatches(ctx, [d]);
      const got = c.yF32 ? await readF32(ctx, gy, c.rows * outCols) : await readF16(ctx, gy, c.rows * outCols);
      const want = c.gateUp ? gateUpRef(x, pw.deq, c.rows, c.inDim, outCols) : linearRef(x, pw.deq, c.rows, c.inDim, c.out, bias);
      const what = `${c.gateUp ? 'gate/up ' : ''}${c.f}${c.g ? '/g' + c.g : ''}${c.bias ? ' +bias' : ''}${c.yF32 ? ' -> f32' : ''}`;
      record(
        'f16',
        `linear ${c.rows <= 8 ? 'gemv' : c.rows >= 256 && (c.f === 'q4' || c.f === 'q8') ? 'dequant+gemm' : 'gemm'}`,
        `${what} ${c.rows}x${c.inDim}x${c.out}`,
        relErr(got, want),
        LINEAR_BAR,
      );
    } finally {
      d.destroy();
      for (const b of [gx, gb, gy, ...pw.bufs]) releaseBuffer(ctx, b);
    }
  }

  // Fused decode: residual epilogue (x f32 += x W^T, h f16, partial sums) then the normIn gate/up reading them.
  {
    const inDim = 64,
      dim = 96,
      f = 40;
    const x = r16(rand(inDim)),
      res = rand(dim),
      g = rand(dim);
    const wo = packWeight(ctx, 'q4', rand(dim * inDim, 0.2), dim, inDim, 32);
    const wgu = packWeight(ctx, 'q8', rand(2 * f * dim, 0.2), 2 * f, dim, 32);
    const bufs = [
      uploadF16(ctx, x, 'x'),
      uploadBuffer(ctx, res, 'res'),
      uploadBuffer(ctx, g, 'g'),
      f16Buffer(ctx, dim, 'h'),
      createBuffer(ctx, 64 * 4, STORAGE.rw, 'ss'),
      f16Buffer(ctx, f, 'ff'),
    ];
    const [xb, yb, gb, hb, ssb, ffb] = bufs;
    const d1 = lin.prepare({ x: xb, w: wo.w, y: yb, rows: 1, residual: { normW: gb, h: hb, ss: ssb } });
    const d2 = lin.prepareGateUp({ x: hb, w: wgu.w, y: ffb, rows: 1, normIn: { ss: ssb, count: d1.workgroups, dim, eps: 1e-5 } });
    try {
      runDispatches(ctx, [d1, d2]);
      const sum = linearRef(x, wo.deq, 1, inDim, dim).map((v, i) => v + res[i]);
      record('f16', 'linear gemv residual', `q4 1x${inDim}x${dim}: x`, relErr(await readF32(ctx, yb, dim), sum), LINEAR_BAR);
      record(
        'f16',
        'linear gemv residual',
        `q4 1x${inDim}x${dim}: h`,
        relErr(
          await readF16(ctx, hb, dim),
          sum.map((v, i) => v * g[i]),
        ),
        LINEAR_BAR,
      );
      const [hRef] = rmsnormRef(sum, g, 1, dim, 1e-5);
      record(
        'f16',
        'linear gemv normIn',
        `gate/up q8 1x${dim}x${2 * f}`,
        relErr(await readF16(ctx, ffb, f), gateUpRef(r16(hRef), wgu.deq, 1, dim, f)),
        LINEAR_BAR,
      );
    } finally {
      d1.destroy();
      d2.destroy();
      for (const b of [...bufs, ...wo.bufs, ...wgu.bufs]) releaseBuffer(ctx, b);
    }
  }

  // Fused decode: QKV + RoPE + f16 KV write.
  for (const variant of ['neox', 'interleaved-half'] as const) {
    const dim = 64,
      nHeads = 4,
      nKvHeads = 2,
      headDim = 16,
      capacity = 9,
      pos = 6,
      rotaryDim = variant === 'neox' ? 16 : 8;
    const out = (nHeads + 2 * nKvHeads) * headDim;
    const rope: RopeSpec = { variant, rotaryDim, base: 10000, maxPositions: 64 };
    const x = r16(rand(dim));
    const table = ropeTable(rope, pos, 1, pos + 1);
    const w = packWeight(ctx, 'q4', rand(out * dim, 0.2), out, dim, 32);
    const step = new StepUniform(ctx);
    step.set(pos, 1);
    const kvBytes = nKvHeads * capacity * headDim * 2;
    const bufs = [
      uploadF16(ctx, x, 'x'),
      f16Buffer(ctx, nHeads * headDim, 'q'),
      uploadBuffer(ctx, table, 'table'),
      createBuffer(ctx, kvBytes, STORAGE.rw, 'k'),
      createBuffer(ctx, kvBytes, STORAGE.rw, 'v'),
    ];
    const [xb, qb, tb, kb, vb] = bufs;
    const d = lin.prepare({
      x: xb,
      w: w.w,
      y: qb,
      rows: 1,
      rope: { table: tb, k: kb, v: vb, step: step.buffer, nHeads, nKvHeads, headDim, rotaryDim, neox: variant === 'neox', capacity, kvF16: true },
    });
    try {
      runDispatches(ctx, [d]);
      const want = ropeKvRef(linearRef(x, w.deq, 1, dim, out), table, { nHeads, nKvHeads, headDim, rope }, 1);
      const k = new Uint16Array(await readBuffer(ctx, kb)),
        v = new Uint16Array(await readBuffer(ctx, vb));
      const at = (h: Uint16Array, kvh: number, e: number) => f16ToF32(h[(kvh * capacity + pos) * headDim + e]);
      const gotK = Array.from({ length: nKvHeads * headDim }, (_, i) => at(k, Math.floor(i / headDim), i % headDim));
      const gotV = Array.from({ length: nKvHeads * headDim }, (_, i) => at(v, Math.floor(i / headDim), i % headDim));
      record('f16', 'linear gemv rope', `${variant} q4 1x${dim}x${out}: q`, relErr(await readF16(ctx, qb, nHeads * headDim), want.q), LINEAR_BAR);
      record('f16', 'linear gemv rope', `${variant} q4 1x${dim}x${out}: k, v`, Math.max(relErr(gotK, want.k), relErr(gotV, want.v)), LINEAR_BAR);
    } finally {
      d.destroy();
      step.destroy();
      for (const b of [...bufs, ...w.bufs]) releaseBuffer(ctx, b);
    }
  }
  lin.destroy();

  // RMSNorm: plain and with the residual add, scalar (odd dim) and vec4.
  const norm = await RmsNorm.create(ctx, 'f16');
  for (const dim of [37, 96]) {
    for (const withRes of [false, true]) {
      const rows = 3;
      const x = rand(rows * dim, 3),
        w = rand(dim),
        res = r16(rand(rows * dim));
      const bufs = [uploadBuffer(ctx, x, 'x'), uploadBuffer(ctx, w, 'w'), f16Buffer(ctx, rows * dim, 'y'), uploadF16(ctx, res, 'res')];
      const d = norm.prepare({ x: bufs[0], w: bufs[1], y: bufs[2], rows, dim, eps: 1e-5, res: withRes ? bufs[3] : undefined });
      try {
        runDispatches(ctx, [d]);
        const [y, xs] = rmsnormRef(x, w, rows, dim, 1e-5, withRes ? res : undefined);
        const err = Math.max(relErr(await readF16(ctx, bufs[2], rows * dim), y), withRes ? relErr(await readF32(ctx, bufs[0], rows * dim), xs) : 0);
        record('f16', withRes ? 'add_rmsnorm' : 'rmsnorm', `${rows}x${dim}`, err, BAR);
      } finally {
        d.destroy();
        for (const b of bufs) releaseBuffer(ctx, b);
      }
    }
  }

  // RoPE + f16 KV write (the unfused kernel, prefill rows).
  for (const variant of ['neox', 'interleaved-half'] as const) {
    const nHeads = 4,
      nKvHeads = 2,
      headDim = 10,
      capacity = 12,
      pos = 3,
      rows = 5,
      rotaryDim = variant === 'neox' ? 10 : 6;
    const rope: RopeSpec = { variant, rotaryDim, base: 10000, maxPositions: 64 };
    const n = (nHeads + 2 * nKvHeads) * headDim;
    const kernel = await RopeKv.create(ctx, { nHeads, nKvHeads, headDim, capacity, kvDtype: 'f16', rope, tier: 'f16' });
    const qkv = r16(rand(rows * n));
    const table = ropeTable(rope, pos, rows, pos + rows);
    const step = new StepUniform(ctx);
    step.set(pos, rows);
    const kvBytes = Math.max(16, nKvHeads * capacity * headDim * 2);
    const bufs = [
      uploadF16(ctx, qkv, 'qkv'),
      uploadBuffer(ctx, table, 'table'),
      f16Buffer(ctx, rows * nHeads * headDim, 'q'),
      createBuffer(ctx, kvBytes, STORAGE.rw, 'k'),
      createBuffer(ctx, kvBytes, STORAGE.rw, 'v'),
    ];
    const d = kernel.prepare({ qkv: bufs[0], table: bufs[1], q: bufs[2], kv: { k: bufs[3], v: bufs[4] }, step: step.buffer, rows });
    try {
      runDispatches(ctx, [d]);
      const want = ropeKvRef(qkv, table, { nHeads, nKvHeads, headDim, rope }, rows);
      const k = new Uint16Array(await readBuffer(ctx, bufs[3])),
        v = new Uint16Array(await readBuffer(ctx, bufs[4]));
      const gotK: number[] = [],
        gotV: number[] = [];
      for (let h = 0; h < nKvHeads; h++)
        for (let r = 0; r < rows; r++)
          for (let e = 0; e < headDim; e++) {
            gotK.push(f16ToF32(k[(h * capacity + pos + r) * headDim + e]));
            gotV.push(f16ToF32(v[(h * capacity + pos + r) * headDim + e]));
          }
      const err = Math.max(relErr(await readF16(ctx, bufs[2], rows * nHeads * headDim), want.q), relErr(gotK, want.k), relErr(gotV, want.v));
      record('f16', 'rope + kv', `${variant} rows=${rows} head=${headDim}`, err, BAR);
    } finally {
      d.destroy();
      step.destroy();
      for (const b of bufs) releaseBuffer(ctx, b);
    }
  }

  // Attention over an f16 cache: decode (split-K, tiled and simple) and the dense flash prefill.
  for (const [nHeads, nKvHeads, headDim, pos, rows, variant] of [
    [8, 2, 64, 70, 1, 'tiled'],
    [4, 4, 6, 33, 1, 'simple'],
    [6, 2, 32, 200, 2, 'tiled'],
  ] as const) {
    const capacity = pos + rows + 3;
    const kv = r16(rand(2 * nKvHeads * capacity * headDim));
    const k = kv.subarray(0, nKvHeads * capacity * headDim),
      v = kv.subarray(nKvHeads * capacity * headDim);
    const q = r16(rand(rows * nHeads * headDim));
    const att = await DecodeAttention.create(ctx, { nHeads, nKvHeads, headDim, kvDtype: 'f16', capacity, maxRows: rows, variant, tier: 'f16' });
    const step = new StepUniform(ctx);
    step.set(pos, rows);
    att.setStep(pos, rows);
    const bufs = [uploadF16(ctx, q, 'q'), uploadF16(ctx, k, 'k'), uploadF16(ctx, v, 'v'), f16Buffer(ctx, rows * nHeads * headDim, 'out')];
    const d = att.prepare({ q: bufs[0], kv: { k: bufs[1], v: bufs[2] }, out: bufs[3], step: step.buffer });
    try {
      runDispatches(ctx, [d]);
      const want = decodeRef(q, k, v, { nHeads, nKvHeads, headDim }, pos, rows, capacity);
      record(
        'f16',
        `attention decode ${variant}`,
        `${nHeads}q/${nKvHeads}kv D=${headDim} pos=${pos} rows=${rows}`,
        relErr(await readF16(ctx, bufs[3], rows * nHeads * headDim), want),
        BAR,
      );
    } finally {
      d.destroy();
      att.destroy();
      step.destroy();
      for (const b of bufs) releaseBuffer(ctx, b);
    }
  }
  for (const [nHeads, nKvHeads, headDim, pos, rows] of [
    [8, 2, 64, 0, 77],
    [4, 1, 128, 40, 130],
    [3, 3, 6, 5, 33],
  ] as const) {
    const capacity = pos + rows;
    const kv = r16(rand(2 * nKvHeads * capacity * headDim));
    const k = kv.subarray(0, nKvHeads * capacity * headDim),
      v = kv.subarray(nKvHeads * capacity * headDim);
    const q = r16(rand(rows * nHeads * headDim));
    const attn = await PrefillAttention.create(ctx, { nHeads, nKvHeads, headDim, kvDtype: 'f16', capacity, maxRows: rows, tier: 'f16' }, { sparse: false });
    const bufs = [uploadF16(ctx, q, 'q'), uploadF16(ctx, k, 'k'), uploadF16(ctx, v, 'v'), f16Buffer(ctx, rows * nHeads * headDim, 'out')];
    try {
      const enc = ctx.device.createCommandEncoder();
      attn.encode(enc, { q: bufs[0], kv: { k: bufs[1], v: bufs[2] }, out: bufs[3], pos, rows, layer: 0 }, { ...DEFAULT_ATTENTION, attention: 'dense' });
      ctx.device.queue.submit([enc.finish()]);
      const want = decodeRef(q, k, v, { nHeads, nKvHeads, headDim }, pos, rows, capacity);
      record(
        'f16',
        'attention prefill dense',
        `${nHeads}q/${nKvHeads}kv D=${headDim} pos=${pos} rows=${rows}`,
        relErr(await readF16(ctx, bufs[3], rows * nHeads * headDim), want),
        BAR,
      );
    } finally {
      attn.destroy();
      for (const b of bufs) releaseBuffer(ctx, b);
    }
  }
}
