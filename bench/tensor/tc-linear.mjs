// Conformance + speed probe of kernels/linear_tensor.wgsl. node tc-linear.mjs [quick]
import { adapter, device, f16bits, f16val, feats, r16 } from './probe-common.mjs';
import { readFileSync } from 'node:fs';
const keep = setInterval(() => {}, 1000);
const code = readFileSync(new URL('../../kernels/linear_tensor.wgsl', import.meta.url), 'utf8');
console.log(
  JSON.stringify({ features: feats, smem: adapter.limits.maxComputeWorkgroupStorageSize, sg: [adapter.info.subgroupMinSize, adapter.info.subgroupMaxSize] }),
);
device.pushErrorScope('validation');
const mod = device.createShaderModule({ code });
const ci = await mod.getCompilationInfo();
for (const m of ci.messages) console.error(m.type, m.lineNum, m.message);
const pipes = new Map();
async function pipe(format, gateUp, bias, group) {
  const key = `${format}${gateUp}${bias}`;
  if (!pipes.has(key))
    pipes.set(
      key,
      await device.createComputePipelineAsync({
        layout: 'auto',
        compute: { module: mod, entryPoint: 'main', constants: { FORMAT: format, GATE_UP: gateUp ? 1 : 0, HAS_BIAS: bias ? 1 : 0 } },
      }),
    );
  return pipes.get(key);
}
let seed = 777;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
const mk = (data, usage) => {
  const b = device.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 4) * 4), usage: usage | GPUBufferUsage.COPY_DST });
  const pad = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  pad.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  device.queue.writeBuffer(b, 0, pad);
  return b;
};
const FMT = { f16: 0, q8: 1, q4: 2 };
// weight rows x K in the project's format; returns buffers + f16-rounded decoded values
function weight(fmt, rows, K, group) {
  const n = rows * K;
  const val = new Float32Array(n);
  if (fmt === 'f16') {
    const h = new Uint16Array(n);
    for (let e = 0; e < n; e++) {
      h[e] = f16bits((rnd() * 2 - 1) * 0.5);
      val[e] = f16val(h[e]);
    }
    return { data: mk(h, GPUBufferUsage.STORAGE), scales: mk(new Uint32Array(4), GPUBufferUsage.STORAGE), val };
  }
  const sc = new Uint16Array(n / group);
  for (let g = 0; g < sc.length; g++) sc[g] = f16bits(0.01 + rnd() * 0.05);
  const epw = fmt === 'q8' ? 4 : 8;
  const words = new Uint32Array(n / epw);
  for (let e = 0; e < n; e++) {
    if (fmt === 'q8') {
      const q = Math.floor(rnd() * 256) - 128;
      words[e >> 2] |= (q & 255) << (8 * (e & 3));
      val[e] = r16(q * f16val(sc[Math.floor(e / group)]));
    } else {
      const q = Math.floor(rnd() * 16);
      words[e >> 3] |= q << (4 * (e & 7));
      val[e] = r16((q - 8) * f16val(sc[Math.floor(e / group)]));
    }
  }
  return { data: mk(words, GPUBufferUsage.STORAGE), scales: mk(sc, GPUBufferUsage.STORAGE), val };
}
async function runCase({ fmt, gateUp = false, bias = false, M, N, K, group = 32, check = true, time = false }) {
  const wrows = gateUp ? 2 * N : N;
  const W = weight(fmt, wrows, K, group);
  const X = new Float32Array(M * K);
  for (let i = 0; i < X.length; i++) X[i] = rnd() * 2 - 1;
  const B = new Float32Array(N);
  for (let i = 0; i < N; i++) B[i] = rnd();
  const bx = mk(X, GPUBufferUsage.STORAGE),
    bb = mk(B, GPUBufferUsage.STORAGE);
  const by = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dims = mk(new Uint32Array([M, N, K, N, 0, 0, 0, gateUp ? N : 0, 0, group, 0, 0]), GPUBufferUsage.UNIFORM);
  const p = await pipe(FMT[fmt], gateUp, bias, group);
  const bg = device.createBindGroup({
    layout: p.getBindGroupLayout(0),
    entries: [bx, W.data, W.scales, W.data, W.scales, bb, by, dims].map((b, i) => ({ binding: i, resource: { buffer: b } })),
  });
  const wgs = [Math.ceil(N / (gateUp ? 64 : 128)), Math.ceil(M / 128)];
  const submit = async (reps) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, bg);
    for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(...wgs);
    pass.end();
    device.queue.submit([enc.finish()]);
    const t0 = performance.now();
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await submit(1);
  const out = { fmt, gateUp, bias, M, N, K, group };
  if (check) {
    const rb = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(by, 0, rb, 0, M * N * 4);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    const Y = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    rb.destroy();
    let maxErr = 0,
      maxRef = 0;
    for (let t = 0; t < 300; t++) {
      const i = t === 0 ? M - 1 : Math.floor(rnd() * M),
        j = t === 0 ? N - 1 : Math.floor(rnd() * N);
      const dot = (row) => {
        let s = 0;
        for (let q = 0; q < K; q++) s += r16(X[i * K + q]) * W.val[row * K + q];
        return s;
      };
      let ref = dot(j);
      if (gateUp) {
        const u = dot(N + j);
        ref = (ref / (1 + Math.exp(-ref))) * u;
      } else if (bias) ref += B[j];
      maxErr = Math.max(maxErr, Math.abs(ref - Y[i * N + j]));
      maxRef = Math.max(maxRef, Math.abs(ref));
    }
    out.relErr = +(maxErr / maxRef).toExponential(2);
    out.ok = out.relErr < 1e-3;
  }
  if (time) {
    let reps = 1,
      t = await submit(1);
    while (t < 40 && reps < 1024) {
      reps *= 2;
      t = await submit(reps);
    }
    const ts = [];
    for (let i = 0; i < 5; i++) ts.push((await submit(reps)) / reps);
    ts.sort((a, b) => a - b);
    out.ms = +ts[2].toFixed(3);
    out.tflops = +((2 * M * N * K * (gateUp ? 2 : 1)) / (ts[2] * 1e-3) / 1e12).toFixed(1);
  }
  for (const b of [bx, bb, by, dims, W.data, W.scales]) b.destroy();
  console.log(JSON.stringify(out));
  return out;
}
const quick = process.argv[2] === 'quick';
const cases = [
  { fmt: 'f16', M: 128, N: 128, K: 64 },
  { fmt: 'f16', M: 300, N: 200, K: 96, bias: true },
  { fmt: 'q8', M: 257, N: 384, K: 128, group: 64 },
  { fmt: 'q4', M: 1, N: 256, K: 128 },
  { fmt: 'q4', M: 1000, N: 1030, K: 256, group: 128, bias: true },
  { fmt: 'q4', M: 200, N: 192, K: 256, gateUp: true },
  { fmt: 'f16', M: 130, N: 100, K: 64, gateUp: true },
];
if (!quick)
  cases.push(
    { fmt: 'f16', M: 4096, N: 4096, K: 4096, time: true, check: true },
    { fmt: 'q4', M: 4096, N: 4096, K: 4096, time: true, check: true },
    { fmt: 'q8', M: 4096, N: 4096, K: 4096, time: true, check: false },
    { fmt: 'f16', M: 4096, N: 14336, K: 4096, time: true, check: false },
    { fmt: 'q4', M: 4096, N: 14336, K: 4096, time: true, check: false },
    { fmt: 'q4', M: 4096, N: 14336, K: 4096, gateUp: true, time: true, check: false },
    { fmt: 'q4', M: 4096, N: 4096, K: 14336, time: true, check: false },
  );
for (const c of cases) {
  device.pushErrorScope('validation');
  try {
    await runCase(c);
  } catch (e) {
    console.log(JSON.stringify({ ...c, error: String(e.message ?? e) }));
  }
  const err = await device.popErrorScope();
  if (err) console.log('validation:', err.message);
}
const e0 = await device.popErrorScope();
if (e0) console.log('validation(module):', e0.message);
clearInterval(keep);
process.exit(0);
