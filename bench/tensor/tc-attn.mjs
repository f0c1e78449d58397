// Conformance + speed probe of kernels/attention_tensor.wgsl. node tc-attn.mjs [quick]
import { device, f16bits, f16val } from './probe-common.mjs';
import { readFileSync } from 'node:fs';
const keep = setInterval(() => {}, 1000);
const code = readFileSync(new URL('../../kernels/attention_tensor.wgsl', import.meta.url), 'utf8');
device.pushErrorScope('validation');
const mod = device.createShaderModule({ code });
for (const m of (await mod.getCompilationInfo()).messages) console.error(m.type, m.lineNum, m.message);
const pipes = new Map();
async function pipe(group) {
  if (!pipes.has(group))
    pipes.set(group, await device.createComputePipelineAsync({ layout: 'auto', compute: { module: mod, entryPoint: 'main', constants: { GROUP: group } } }));
  return pipes.get(group);
}
let seed = 99;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
const mk = (data, usage) => {
  const b = device.createBuffer({ size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, data);
  return b;
};
const D = 128;
async function runCase({ S, H, Hkv, step = 0, check = true, time = false, qscale = 1 }) {
  const G = H / Hkv,
    cap = step + S,
    rows = S;
  const Q = new Float32Array(rows * H * D);
  for (let i = 0; i < Q.length; i++) Q[i] = (rnd() * 2 - 1) * qscale;
  const Kh = new Uint16Array(Hkv * cap * D),
    Vh = new Uint16Array(Hkv * cap * D);
  for (let i = 0; i < Kh.length; i++) {
    Kh[i] = f16bits(rnd() * 2 - 1);
    Vh[i] = f16bits(rnd() * 2 - 1);
  }
  const bq = mk(Q, GPUBufferUsage.STORAGE),
    bk = mk(Kh, GPUBufferUsage.STORAGE),
    bv = mk(Vh, GPUBufferUsage.STORAGE);
  const bo = device.createBuffer({ size: Q.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const scale = Math.LOG2E / Math.sqrt(D);
  const pr = new ArrayBuffer(32);
  new Uint32Array(pr).set([rows, step, H, cap]);
  new Float32Array(pr)[4] = scale;
  const bp = mk(new Uint8Array(pr), GPUBufferUsage.UNIFORM);
  const p = await pipe(G);
  const bg = device.createBindGroup({
    layout: p.getBindGroupLayout(0),
    entries: [bq, bk, bv, bo, bp].map((b, i) => ({ binding: i, resource: { buffer: b } })),
  });
  const wgs = [Math.ceil((rows * G) / 64), Hkv];
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
  const out = { S, H, Hkv, step };
  if (check) {
    const rb = device.createBuffer({ size: Q.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(bo, 0, rb, 0, Q.byteLength);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    const O = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    rb.destroy();
    let maxErr = 0,
      maxRef = 0,
      nan = 0;
    const samples = Math.min(rows * H, 96);
    for (let t = 0; t < samples; t++) {
      const i = t === 0 ? rows - 1 : t === 1 ? 0 : Math.floor(rnd() * rows),
        h = Math.floor(rnd() * H),
        kh = Math.floor(h / G);
      const pos = step + i;
      const sc = new Float64Array(pos + 1);
      let mx = -Infinity;
      for (let j = 0; j <= pos; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += Q[(i * H + h) * D + d] * f16val(Kh[(kh * cap + j) * D + d]);
        sc[j] = s / Math.sqrt(D);
        mx = Math.max(mx, sc[j]);
      }
      let den = 0;
      for (let j = 0; j <= pos; j++) {
        sc[j] = Math.exp(sc[j] - mx);
        den += sc[j];
      }
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = 0; j <= pos; j++) o += sc[j] * f16val(Vh[(kh * cap + j) * D + d]);
        o /= den;
        const g = O[(i * H + h) * D + d];
        if (!Number.isFinite(g)) nan++;
        maxErr = Math.max(maxErr, Math.abs(o - g));
        maxRef = Math.max(maxRef, Math.abs(o));
      }
    }
    out.relErr = +(maxErr / maxRef).toExponential(2);
    out.nan = nan;
    out.ok = out.relErr < 1e-2 && nan === 0;
  }
  if (time) {
    let reps = 1,
      t = await submit(1);
    while (t < 40 && reps < 256) {
      reps *= 2;
      t = await submit(reps);
    }
    const ts = [];
    for (let i = 0; i < 3; i++) ts.push((await submit(reps)) / reps);
    ts.sort((a, b) => a - b);
    out.ms = +ts[1].toFixed(3);
    out.tflops = +((((4 * S * S) / 2) * D * H) / (ts[1] * 1e-3) / 1e12).toFixed(1);
  }
  for (const b of [bq, bk, bv, bo, bp]) b.destroy();
  console.log(JSON.stringify(out));
}
const quick = process.argv[2] === 'quick';
const cases = [
  { S: 64, H: 4, Hkv: 1 },
  { S: 200, H: 8, Hkv: 2 },
  { S: 130, H: 8, Hkv: 2, step: 70 },
  { S: 333, H: 4, Hkv: 4 },
  { S: 300, H: 16, Hkv: 1, qscale: 8 },
];
if (!quick) cases.push({ S: 4096, H: 32, Hkv: 8, time: true, check: false }, { S: 32768, H: 32, Hkv: 8, time: true, check: false });
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
