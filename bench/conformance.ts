/**
 * bench/conformance: the GPU conformance command of the kernel tiers (issue 17). Runs each
 * tier's kernels against CPU references (f64) at odd shapes and prints a table; exits 1 on
 * any failure. The f32 tier is what CI tests on SwiftShader; the 'tensor' tier needs
 * shader-f16 and f16 subgroup matrices (an NVIDIA GPU with Dawn's vulkan_enable_f16_on_nvidia,
 * which getGpu sets in Node), so on a device without them its rows say 'unsupported'.
 *   npm run bench -- bench/conformance.ts [--json FILE]
 * GPU machine: npm run gpu:bundle -- bench/conformance.ts; source .gpu/setup.sh && node .gpu/conformance.mjs --json $OUT/conformance.json
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import type { GpuWeight, WeightFormat } from '../src/loader/formats.ts';
import { f16ToF32, f32ToF16 } from '../src/loader/quant.ts';
import { Rng } from '../src/util/rng.ts';
import { TensorLinear, tensorTierSupport } from '../kernels/linear_tensor.ts';
import { TensorAttention } from '../kernels/attention_tensor.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { runF16Kernels } from './conformance/f16-kernels.ts';

const args = benchArgs();
const ctx = await getGpu();
const rng = new Rng(20261207);
const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
let failures = 0;

function record(tier: string, kernel: string, shape: string, err: number, bar: number): void {
  const ok = Number.isFinite(err) && err <= bar;
  if (!ok) failures++;
  rows.push([tier, kernel, shape, err.toExponential(2), bar.toExponential(0), ok ? 'ok' : 'FAIL']);
  results.push({ tier, kernel, shape, err, bar, ok });
}

function upload(data: ArrayBufferView, label: string, usage = STORAGE.rw): GPUBuffer {
  const bytes = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
  const b = createBuffer(ctx, bytes, usage, label);
  const pad = new Uint8Array(bytes);
  pad.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  ctx.device.queue.writeBuffer(b, 0, pad);
  return b;
}

/** A random [rows, k] weight in `format` (the loader's packing), and its values as the kernel decodes them (f16-rounded). */
function weight(format: WeightFormat, rowsN: number, k: number, group: number): { w: GpuWeight; val: Float32Array; bufs: GPUBuffer[] } {
  const n = rowsN * k;
  const val = new Float32Array(n);
  const r16 = (x: number) => f16ToF32(f32ToF16(x));
  let data: GPUBuffer;
  let scales: GPUBuffer | undefined;
  if (format === 'f16') {
    const h = new Uint16Array(n);
    for (let e = 0; e < n; e++) {
      h[e] = f32ToF16(rng.next() - 0.5);
      val[e] = f16ToF32(h[e]);
    }
    data = upload(h, 'w');
  } else {
    const sc = new Uint16Array(n / group);
    for (let g = 0; g < sc.length; g++) sc[g] = f32ToF16(0.01 + 0.05 * rng.next());
    const words = new Uint32Array(format === 'q8' ? n / 4 : n / 8);
    for (let e = 0; e < n; e++) {
      const s = f16ToF32(sc[Math.floor(e / group)]);
      if (format === 'q8') {
        const q = Math.floor(rng.next() * 256) - 128;
        words[e >> 2] |= (q & 255) << (8 * (e & 3));
        val[e] = r16(q * s);
      } else {
        const q = Math.floor(rng.next() * 16);
        words[e >> 3] |= q << (4 * (e & 7));
        val[e] = r16((q - 8) * s);
      }
    }
    data = upload(words, 'w');
    scales = upload(sc, 'scales');
  }
  const w: GpuWeight = { name: 'w', format, shape: [rowsN, k], groupSize: format === 'f16' ? 0 : group, parts: [{ rowStart: 0, rows: rowsN, data, scales }] };
  return { w, val, bufs: scales ? [data, scales] : [data] };
}

async function linearCase(
  lin: TensorLinear,
  format: WeightFormat,
  m: number,
  n: number,
  k: number,
  opts: { group?: number; bias?: boolean; gateUp?: boolean } = {},
): Promise<void> {
  const group = opts.group ?? 32;
  const wr = opts.gateUp ? 2 * n : n;
  const { w, val, bufs } = weight(format, wr, k, group);
  const x = new Float32Array(m * k).map(() => rng.next() * 2 - 1);
  const bias = new Float32Array(n).map(() => rng.next());
  const bx = upload(x, 'x');
  const bb = upload(bias, 'bias');
  const by = createBuffer(ctx, m * n * 4, STORAGE.rw, 'y');
  const d = lin.prepare({ x: bx, w, y: by, rows: m, bias: opts.bias ? bb : undefined }, !!opts.gateUp);
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  d.encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const y = await readF32(ctx, by, m * n);
  let maxErr = 0;
  let maxRef = 0;
  const r16 = (v: number) => f16ToF32(f32ToF16(v));
  for (let t = 0; t < 200; t++) {
    const i = t === 0 ? m - 1 : Math.floor(rng.next() * m);
    const j = t === 0 ? n - 1 : Math.floor(rng.next() * n);
    const dot = (row: number) => {
      let s = 0;
      for (let q = 0; q < k; q++) s += r16(x[i * k + q]) * val[row * k + q];
      return s;
    };
    let ref = dot(j);
    if (opts.gateUp) ref = (ref / (1 + Math.exp(-ref))) * dot(n + j);
    else if (opts.bias) ref += bias[j];
    maxErr = Math.max(maxErr, Math.abs(ref - y[i * n + j]));
    maxRef = Math.max(maxRef, Math.abs(ref));
  }
  d.destroy();
  for (const b of [bx, bb, by, ...bufs]) releaseBuffer(ctx, b);
  const kind = opts.gateUp ? 'gate/up' : opts.bias ? '+bias' : '';
  record(
    'tensor',
    `linear ${format}${kind ? ' ' + kind : ''}`,
    `${m}x${n}x${k}${format === 'f16' ? '' : ' g' + group}`,
    maxErr / Math.max(maxRef, 1e-30),
    1e-3,
  );
}

async function attentionCase(s: number, h: number, hkv: number, step: number, qScale = 1): Promise<void> {
  const d = 128;
  const cap = step + s + 3;
  const att = await TensorAttention.create(ctx, h, hkv);
  const q = new Float32Array(s * h * d).map(() => (rng.next() * 2 - 1) * qScale);
  const kh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const vh = new Uint16Array(hkv * cap * d).map(() => f32ToF16(rng.next() * 2 - 1));
  const bq = upload(q, 'q');
  const bk = upload(kh, 'k');
  const bv = upload(vh, 'v');
  const bo = createBuffer(ctx, q.byteLength, STORAGE.rw, 'o');
  const disp = att.prepare({ q: bq, k: bk, v: bv, out: bo, nHeads: h, nKvHeads: hkv, capacity: cap }, () => ({ rows: s, step }));
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  disp.encode(pass);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  const o = await readF32(ctx, bo, s * h * d);
  const g = h / hkv;
  let maxErr = 0;
  let maxRef = 0;
  for (let t = 0; t < 48; t++) {
    const i = t === 0 ? s - 1 : t === 1 ? 0 : Math.floor(rng.next() * s);
    const head = Math.floor(rng.next() * h);
    const kvh = Math.floor(head / g);
    const pos = step + i;
    const sc = new Float64Array(pos + 1);
    let mx = -Infinity;
    for (let j = 0; j <= pos; j++) {
      let acc = 0;
      for (let e = 0; e < d; e++) acc += q[(i * h + head) * d + e] * f16ToF32(kh[(kvh * cap + j) * d + e]);
      sc[j] = acc / Math.sqrt(d);
      mx = Math.max(mx, sc[j]);
    }
    let den = 0;
    for (let j = 0; j <= pos; j++) {
      sc[j] = Math.exp(sc[j] - mx);
      den += sc[j];
    }
    for (let e = 0; e < d; e++) {
      let acc = 0;
      for (let j = 0; j <= pos; j++) acc += sc[j] * f16ToF32(vh[(kvh * cap + j) * d + e]);
      const ref = acc / den;
      maxErr = Math.max(maxErr, Math.abs(ref - o[(i * h + head) * d + e]));
      maxRef = Math.max(maxRef, Math.abs(ref));
    }
  }
  disp.destroy();
  for (const b of [bq, bk, bv, bo]) releaseBuffer(ctx, b);
  record('tensor', 'attention dense causal', `S=${s} step=${step} ${h}q/${hkv}kv${qScale !== 1 ? ` qx${qScale}` : ''}`, maxErr / Math.max(maxRef, 1e-30), 1e-2);
}

const why = tensorTierSupport(ctx);
if (why) {
  rows.push(['tensor', '*', '-', '-', '-', `unsupported: ${why}`]);
  results.push({ tier: 'tensor', unsupported: why });
} else {
  const lin = await TensorLinear.create(ctx, ['f16', 'q8', 'q4']);
  await linearCase(lin, 'f16', 1, 128, 64);
  await linearCase(lin, 'f16', 300, 200, 96, { bias: true });
  await linearCase(lin, 'q8', 257, 384, 128, { group: 64 });
  await linearCase(lin, 'q4', 7, 256, 128);
  await linearCase(lin, 'q4', 1000, 1030, 256, { group: 128, bias: true });
  await linearCase(lin, 'q4', 200, 192, 256, { gateUp: true });
  await linearCase(lin, 'f16', 130, 100, 64, { gateUp: true });
  await linearCase(lin, 'q8', 129, 320, 160, { group: 32, gateUp: true });
  lin.destroy();
  await attentionCase(1, 4, 1, 0);
  await attentionCase(64, 4, 1, 0);
  await attentionCase(200, 8, 2, 0);
  await attentionCase(130, 8, 2, 70);
  await attentionCase(333, 4, 4, 0);
  await attentionCase(77, 32, 2, 5);
  await attentionCase(300, 16, 1, 0, 8);
}

// The f16 tier's kernels (bench/conformance/f16-kernels.ts).
if (ctx.features.has('shader-f16')) {
  await runF16Kernels(ctx, record);
} else {
  rows.push(['f16', '*', '-', '-', '-', 'unsupported: no shader-f16']);
  results.push({ tier: 'f16', unsupported: 'no shader-f16' });
}

finish(
  {
    bench: 'conformance',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: 'n/a',
    header: ['tier', 'kernel', 'shape', 'max err / max |ref|', 'bar', 'result'],
    rows,
    results,
  },
  args.json,
);
ctx.destroy();
if (failures > 0) {
  console.error(`conformance: ${failures} failure(s)`);
  process.exit(1);
}
