/**
 * Linear kernel cases (kernels/linear.ts), shared by the Node test (Dawn)
 * and the browser test page (Chromium): each builds a packed GpuWeight from
 * random data with the CPU packers of src/loader/quant.ts, runs the prepared
 * dispatch and compares with the f64 reference over the *dequantized*
 * weights; returns the error relative to max |reference| or throws.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { readF32, releaseBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import type { GpuWeight, GpuWeightPart, WeightFormat } from '../../src/loader/formats.ts';
import { quantizeQ4, quantizeQ8 } from '../../src/loader/quant.ts';
import { packF16, roundTrip } from '../helpers/quant.ts';
import { gateUpRef, LinearKernels, linearRef } from '../../kernels/linear.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertClose } from '../helpers/compare.ts';

export interface LinearCase {
  format: WeightFormat;
  rows: number;
  inDim: number;
  out: number;
  groupSize?: number;
  /** Rows per weight part (forces multi-part weights); default: one part. */
  partRows?: number;
  bias?: boolean;
  gateUp?: boolean;
  /** Offsets into x / y in f32 elements. */
  xOff?: number;
  yOff?: number;
}

export function caseName(c: LinearCase): string {
  return (
    `${c.gateUp ? 'gateUp' : 'linear'} ${c.format}${c.groupSize ? `/g${c.groupSize}` : ''} rows=${c.rows} in=${c.inDim} out=${c.out}` +
    `${c.partRows ? ` parts of ${c.partRows}` : ''}${c.bias ? ' +bias' : ''}${c.xOff || c.yOff ? ` off=${c.xOff ?? 0}/${c.yOff ?? 0}` : ''}`
  );
}

export interface TestWeight {
  weight: GpuWeight;
  dequant: Float32Array;
  buffers: GPUBuffer[];
}

/** Packs `src` ([out, in] f32) into a GpuWeight with parts of `partRows` rows; `dequant` is what the kernels see. */
export function makeWeight(
  ctx: GpuContext,
  name: string,
  format: WeightFormat,
  src: Float32Array,
  out: number,
  inDim: number,
  groupSize = 0,
  partRows = out,
): TestWeight {
  const parts: GpuWeightPart[] = [];
  const buffers: GPUBuffer[] = [];
  for (let r0 = 0; r0 < out; r0 += partRows) {
    const rows = Math.min(partRows, out - r0);
    const slice = src.subarray(r0 * inDim, (r0 + rows) * inDim);
    let data: GPUBuffer;
    let scales: GPUBuffer | undefined;
    if (format === 'f32') data = uploadBuffer(ctx, slice, `${name}.${r0}`);
    else if (format === 'f16') data = uploadBuffer(ctx, packF16(slice), `${name}.${r0}`);
    else {
      const q = format === 'q8' ? quantizeQ8(slice, inDim, groupSize) : quantizeQ4(slice, inDim, groupSize);
      data = uploadBuffer(ctx, q.data, `${name}.${r0}`);
      scales = uploadBuffer(ctx, q.scales, `${name}.${r0}.scales`);
      buffers.push(scales);
    }
    buffers.push(data);
    parts.push({ rowStart: r0, rows, data, scales });
  }
  const quant = format === 'q8' || format === 'q4';
  return {
    weight: { name, format, shape: [out, inDim], groupSize: quant ? groupSize : 0, parts },
    dequant: roundTrip(format, src, inDim, groupSize),
    buffers,
  };
}

export const LINEAR_CASES: LinearCase[] = (() => {
  const cs: LinearCase[] = [];
  // Decode (matrix-vector) and prefill (GEMM) over odd shapes, every format.
  for (const rows of [1, 3, 17, 130]) {
    cs.push({ format: 'f32', rows, inDim: 33, out: 200, bias: rows === 3 });
    cs.push({ format: 'f16', rows, inDim: 33, out: 96 });
    cs.push({ format: 'f16', rows, inDim: 200, out: 33, partRows: 16, bias: true });
    cs.push({ format: 'q8', rows, inDim: 96, out: 64, groupSize: 32, partRows: 24 });
    cs.push({ format: 'q8', rows, inDim: 33, out: 17, groupSize: 33 });
    cs.push({ format: 'q4', rows, inDim: 64, out: 200, groupSize: 32, bias: true });
    cs.push({ format: 'q4', rows, inDim: 96, out: 33, groupSize: 32, partRows: 8 });
  }
  cs.push({ format: 'f32', rows: 1, inDim: 1, out: 1 });
  cs.push({ format: 'f16', rows: 17, inDim: 1, out: 33 });
  cs.push({ format: 'f16', rows: 3, inDim: 1, out: 5, bias: true });
  cs.push({ format: 'q8', rows: 5, inDim: 200, out: 64, groupSize: 200 });
  cs.push({ format: 'q8', rows: 130, inDim: 128, out: 64, groupSize: 128, bias: true });
  cs.push({ format: 'q4', rows: 1, inDim: 256, out: 96, groupSize: 128 });
  cs.push({ format: 'q4', rows: 33, inDim: 128, out: 64, groupSize: 64, partRows: 40 });
  // Offsets into x / y (aligned and unaligned to vec4).
  cs.push({ format: 'q4', rows: 1, inDim: 64, out: 40, groupSize: 32, xOff: 64, yOff: 3 });
  cs.push({ format: 'f16', rows: 2, inDim: 64, out: 40, xOff: 5, yOff: 7 });
  cs.push({ format: 'f32', rows: 20, inDim: 64, out: 40, xOff: 64, yOff: 1 });
  cs.push({ format: 'q4', rows: 20, inDim: 64, out: 40, groupSize: 64, xOff: 3, yOff: 2, bias: true });
  // Gate/up (silu(gate) * up), parts that cut gate, up and the boundary between them.
  for (const rows of [1, 3, 17, 130]) {
    cs.push({ format: 'f16', rows, inDim: 64, out: 2 * 33, gateUp: true, partRows: 20 });
    cs.push({ format: 'q4', rows, inDim: 96, out: 2 * 40, groupSize: 32, gateUp: true });
  }
  cs.push({ format: 'f32', rows: 5, inDim: 33, out: 2 * 17, gateUp: true, partRows: 7 });
  cs.push({ format: 'q8', rows: 70, inDim: 64, out: 2 * 96, groupSize: 64, gateUp: true, partRows: 50 });
  return cs;
})();

let kernels: Promise<LinearKernels> | undefined;
let kernelsCtx: GpuContext | undefined;

/** Runs one case with `lin` (default: one LinearKernels per context, default tunables). */
export async function runLinearCase(ctx: GpuContext, c: LinearCase, seed = 1, lin?: LinearKernels): Promise<number> {
  if (!lin) {
    if (kernelsCtx !== ctx) {
      kernels = LinearKernels.create(ctx);
      kernelsCtx = ctx;
    }
    lin = await kernels!;
  }
  const rng = new Rng(seed);
  const xOff = c.xOff ?? 0;
  const yOff = c.yOff ?? 0;
  const outCols = c.gateUp ? c.out / 2 : c.out;
  const x = rng.fill(xOff + c.rows * c.inDim);
  const w = makeWeight(ctx, 'w', c.format, rng.fill(c.out * c.inDim), c.out, c.inDim, c.groupSize ?? 0, c.partRows ?? c.out);
  const bias = c.bias ? rng.fill(c.out) : undefined;
  const gx = uploadBuffer(ctx, x, 'x');
  const gb = bias ? uploadBuffer(ctx, bias, 'bias') : undefined;
  // y is pre-filled with a marker so writes outside the rows/columns show up.
  const ySize = yOff + c.rows * outCols + 5;
  const gy = uploadBuffer(ctx, new Float32Array(ySize).fill(1234.5), 'y');
  const d = c.gateUp
    ? lin.prepareGateUp({ x: gx, xOffsetBytes: xOff * 4, w: w.weight, y: gy, yOffsetBytes: yOff * 4, rows: c.rows })
    : lin.prepare({ x: gx, xOffsetBytes: xOff * 4, w: w.weight, bias: gb, y: gy, yOffsetBytes: yOff * 4, rows: c.rows });
  try {
    ctx.device.pushErrorScope('validation');
    const enc = ctx.device.createCommandEncoder({ label: 'linear-test' });
    const pass = enc.beginComputePass();
    d.encode(pass);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    const err = await ctx.device.popErrorScope();
    if (err) throw new Error(`${caseName(c)}: GPU validation error: ${err.message}`);
    const got = await readF32(ctx, gy, ySize);
    const xs = x.subarray(xOff);
    const want = c.gateUp ? gateUpRef(xs, w.dequant, c.rows, c.inDim, outCols) : linearRef(xs, w.dequant, c.rows, c.inDim, c.out, bias);
    for (let i = 0; i < ySize; i++) {
      if ((i < yOff || i >= yOff + want.length) && got[i] !== 1234.5) throw new Error(`${caseName(c)}: wrote y[${i}] outside the output`);
    }
    const dd = assertClose(got.subarray(yOff, yOff + want.length), want, caseName(c), 1e-4, 0);
    return dd.maxRel;
  } finally {
    d.destroy();
    for (const b of [gx, gb, gy, ...w.buffers]) releaseBuffer(ctx, b);
  }
}
