// Tensor-core f16 GEMM probe: C (M,N) f32 = A (M,K) f16 * W (N,K)^T f16, via
// chromium_experimental_subgroup_matrix. One variant per process (a crash kills only it).
//   node tc-gemm.mjs VARIANT [M N K]
import { adapter, device, f16bits, f16val, feats, r16 } from './probe-common.mjs';
const keep = setInterval(() => {}, 1000);
const variant = process.argv[2] ?? 'smem128';
const [M, N, K] = (process.argv.slice(3).length ? process.argv.slice(3) : [4096, 4096, 4096]).map(Number);

const HEAD = `enable f16;\nenable chromium_experimental_subgroup_matrix;\nstruct Dims { m: u32, n: u32, k: u32, pad: u32 }\n`;
const SM = (t, c, r) => `subgroup_matrix_${t}<f16, ${c}, ${r}>`;
function accDecl(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += `  var c${i} = subgroup_matrix_result<f32, 16, 16>();\n`;
  return s;
}

// Variant generator: BM x BN tile, BK k-step, subgroups SGM x SGN each covering TM x TN (multiples of 16).
function smemKernel({ BM, BN, BK, SGM, SGN, LDS }) {
  const TM = BM / SGM,
    TN = BN / SGN,
    FM = TM / 16,
    FN = TN / 16,
    NT = SGM * SGN * 32;
  const vecA = (BM * BK) / 4 / NT,
    vecB = (BN * BK) / 4 / NT;
  let s =
    HEAD +
    `@group(0) @binding(0) var<storage, read> a: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
var<workgroup> sa: array<f16, ${BM * LDS}>;
var<workgroup> sb: array<f16, ${BN * LDS}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32) {
  let m0 = wg.y * ${BM}u; let n0 = wg.x * ${BN}u;
  let sm = (sg / ${SGN}u) * ${TM}u; let sn = (sg % ${SGN}u) * ${TN}u;
  let k4 = dims.k / 4u;
${accDecl(FM * FN)}  for (var k0 = 0u; k0 < dims.k; k0 += ${BK}u) {
    for (var i = 0u; i < ${vecA}u; i++) {
      let idx = lid + i * ${NT}u; let r = idx / ${BK / 4}u; let q = idx % ${BK / 4}u;
      let v = a[(m0 + r) * k4 + k0 / 4u + q]; let o = r * ${LDS}u + q * 4u;
      sa[o] = v.x; sa[o + 1u] = v.y; sa[o + 2u] = v.z; sa[o + 3u] = v.w;
    }
    for (var i = 0u; i < ${vecB}u; i++) {
      let idx = lid + i * ${NT}u; let r = idx / ${BK / 4}u; let q = idx % ${BK / 4}u;
      let v = w[(n0 + r) * k4 + k0 / 4u + q]; let o = r * ${LDS}u + q * 4u;
      sb[o] = v.x; sb[o + 1u] = v.y; sb[o + 2u] = v.z; sb[o + 3u] = v.w;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk += 16u) {
`;
  for (let i = 0; i < FM; i++) s += `      let a${i} = subgroupMatrixLoad<${SM('left', 16, 16)}>(&sa, (sm + ${i * 16}u) * ${LDS}u + kk, false, ${LDS}u);\n`;
  for (let j = 0; j < FN; j++) s += `      let b${j} = subgroupMatrixLoad<${SM('right', 16, 16)}>(&sb, (sn + ${j * 16}u) * ${LDS}u + kk, true, ${LDS}u);\n`;
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) s += `      c${i * FN + j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i * FN + j});\n`;
  s += `    }\n    workgroupBarrier();\n  }\n`;
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) s += `  subgroupMatrixStore(&c, (m0 + sm + ${i * 16}u) * dims.n + n0 + sn + ${j * 16}u, c${i * FN + j}, false, dims.n);\n`;
  return { code: s + '}\n', wg: [N / BN, M / BM], threads: NT, smem: (BM + BN) * LDS * 2 };
}
function directKernel({ SGM, SGN, TM, TN }) {
  const FM = TM / 16,
    FN = TN / 16,
    NT = SGM * SGN * 32,
    BM = SGM * TM,
    BN = SGN * TN;
  let s =
    HEAD +
    `@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> w: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32) {
  let sm = wg.y * ${BM}u + (sg / ${SGN}u) * ${TM}u; let sn = wg.x * ${BN}u + (sg % ${SGN}u) * ${TN}u;
${accDecl(FM * FN)}  for (var k = 0u; k < dims.k; k += 16u) {
`;
  for (let i = 0; i < FM; i++) s += `    let a${i} = subgroupMatrixLoad<${SM('left', 16, 16)}>(&a, (sm + ${i * 16}u) * dims.k + k, false, dims.k);\n`;
  for (let j = 0; j < FN; j++) s += `    let b${j} = subgroupMatrixLoad<${SM('right', 16, 16)}>(&w, (sn + ${j * 16}u) * dims.k + k, true, dims.k);\n`;
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) s += `    c${i * FN + j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i * FN + j});\n`;
  s += `  }\n`;
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) s += `  subgroupMatrixStore(&c, (sm + ${i * 16}u) * dims.n + sn + ${j * 16}u, c${i * FN + j}, false, dims.n);\n`;
  return { code: s + '}\n', wg: [N / BN, M / BM], threads: NT, smem: 0 };
}

// q4 weights (project format: 8 nibbles per u32, value (q-8)*scale, f16 scales per 32 along K) and f32
// activations converted to f16 while staging: what the engine's linear layers would feed a tensor tier.
function q4Kernel({ BM, BN, SGM, SGN, LDS }) {
  const BK = 32,
    TM = BM / SGM,
    TN = BN / SGN,
    FM = TM / 16,
    FN = TN / 16,
    NT = SGM * SGN * 32;
  const vecA = (BM * BK) / 4 / NT,
    wordsB = (BN * BK) / 8 / NT;
  let s =
    HEAD +
    `@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
@group(0) @binding(4) var<storage, read> scales: array<u32>;
var<workgroup> sa: array<f16, ${BM * LDS}>;
var<workgroup> sb: array<f16, ${BN * LDS}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32) {
  let m0 = wg.y * ${BM}u; let n0 = wg.x * ${BN}u;
  let sm = (sg / ${SGN}u) * ${TM}u; let sn = (sg % ${SGN}u) * ${TN}u;
  let k4 = dims.k / 4u; let k8 = dims.k / 8u; let groups = dims.k / 32u;
${accDecl(FM * FN)}  for (var k0 = 0u; k0 < dims.k; k0 += ${BK}u) {
    for (var i = 0u; i < ${vecA}u; i++) {
      let idx = lid + i * ${NT}u; let r = idx / ${BK / 4}u; let q = idx % ${BK / 4}u;
      let v = vec4<f16>(a[(m0 + r) * k4 + k0 / 4u + q]); let o = r * ${LDS}u + q * 4u;
      sa[o] = v.x; sa[o + 1u] = v.y; sa[o + 2u] = v.z; sa[o + 3u] = v.w;
    }
    for (var i = 0u; i < ${wordsB}u; i++) {
      let idx = lid + i * ${NT}u; let r = idx / 4u; let q = idx % 4u;
      let word = w[(n0 + r) * k8 + k0 / 8u + q];
      let g = (n0 + r) * groups + k0 / 32u;
      let sc = f16(unpack2x16float(scales[g >> 1u])[g & 1u]);
      let o = r * ${LDS}u + q * 8u;
      for (var e = 0u; e < 8u; e++) { sb[o + e] = (f16((word >> (4u * e)) & 15u) - 8.0h) * sc; }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk += 16u) {
`;
  for (let i = 0; i < FM; i++) s += `      let a${i} = subgroupMatrixLoad<${SM('left', 16, 16)}>(&sa, (sm + ${i * 16}u) * ${LDS}u + kk, false, ${LDS}u);\n`;
  for (let j = 0; j < FN; j++) s += `      let b${j} = subgroupMatrixLoad<${SM('right', 16, 16)}>(&sb, (sn + ${j * 16}u) * ${LDS}u + kk, true, ${LDS}u);\n`;
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) s += `      c${i * FN + j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i * FN + j});\n`;
  s += `    }\n    workgroupBarrier();\n  }\n`;
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) s += `  subgroupMatrixStore(&c, (m0 + sm + ${i * 16}u) * dims.n + n0 + sn + ${j * 16}u, c${i * FN + j}, false, dims.n);\n`;
  return { code: s + '}\n', wg: [N / BN, M / BM], threads: NT, smem: (BM + BN) * LDS * 2, q4: true };
}
const VARIANTS = {
  q4s128: () => q4Kernel({ BM: 128, BN: 128, SGM: 4, SGN: 2, LDS: 40 }),
  q4s128w4: () => q4Kernel({ BM: 128, BN: 128, SGM: 2, SGN: 2, LDS: 40 }),
  direct64: () => directKernel({ SGM: 2, SGN: 2, TM: 32, TN: 32 }),
  direct128: () => directKernel({ SGM: 2, SGN: 2, TM: 64, TN: 64 }),
  smem128: () => smemKernel({ BM: 128, BN: 128, BK: 32, SGM: 4, SGN: 2, LDS: 40 }),
  smem128np: () => smemKernel({ BM: 128, BN: 128, BK: 32, SGM: 4, SGN: 2, LDS: 32 }),
  smem128w4: () => smemKernel({ BM: 128, BN: 128, BK: 32, SGM: 2, SGN: 2, LDS: 40 }),
  smem64: () => smemKernel({ BM: 64, BN: 64, BK: 32, SGM: 2, SGN: 2, LDS: 40 }),
  smem128k64: () => smemKernel({ BM: 128, BN: 128, BK: 64, SGM: 4, SGN: 2, LDS: 72 }),
};

device.addEventListener?.('uncapturederror', (e) => console.error('uncaptured:', e.error?.message));
const out = { variant, M, N, K, features: feats, adapter: adapter.info?.description };
const k = VARIANTS[variant]();
device.pushErrorScope('validation');
const mod = device.createShaderModule({ code: k.code });
const info = await mod.getCompilationInfo();
for (const m of info.messages) if (m.type === 'error') console.error('wgsl:', m.lineNum, m.message);
const pipe = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: mod, entryPoint: 'main' } }).catch((e) => {
  console.error('pipeline:', e.message);
  process.exit(3);
});
const e1 = await device.popErrorScope();
if (e1) {
  console.error('validation:', e1.message);
  process.exit(3);
}

// Data: small exact values.
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
const A = new Uint16Array(M * K),
  W = new Uint16Array(N * K);
for (let i = 0; i < A.length; i++) A[i] = f16bits(Math.round((rnd() * 2 - 1) * 64) / 64);
for (let i = 0; i < W.length; i++) W[i] = f16bits(Math.round((rnd() * 2 - 1) * 64) / 64);
let Af32, Wq, Sc, Wv;
if (k.q4) {
  Af32 = new Float32Array(M * K);
  for (let i = 0; i < A.length; i++) Af32[i] = f16val(A[i]);
  Wq = new Uint32Array((N * K) / 8);
  Sc = new Uint16Array((N * K) / 32);
  Wv = new Float32Array(N * K);
  for (let g = 0; g < Sc.length; g++) Sc[g] = f16bits(2 ** -(4 + (g % 3)));
  for (let e = 0; e < N * K; e++) {
    const q = Math.floor(rnd() * 16);
    Wq[e >> 3] |= q << (4 * (e & 7));
    Wv[e] = (q - 8) * f16val(Sc[e >> 5]);
  }
}
const mk = (data, usage) => {
  const b = device.createBuffer({ size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, data);
  return b;
};
const bA = mk(k.q4 ? Af32 : A, GPUBufferUsage.STORAGE),
  bW = mk(k.q4 ? Wq : W, GPUBufferUsage.STORAGE);
const bS = k.q4 ? mk(Sc, GPUBufferUsage.STORAGE) : null;
const bC = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const bD = mk(new Uint32Array([M, N, K, 0]), GPUBufferUsage.UNIFORM);
const bg = device.createBindGroup({
  layout: pipe.getBindGroupLayout(0),
  entries: [bA, bW, bC, bD, ...(bS ? [bS] : [])].map((b, i) => ({ binding: i, resource: { buffer: b } })),
});
async function runReps(reps) {
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, bg);
  for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(k.wg[0], k.wg[1]);
  pass.end();
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) {
    console.error('submit validation:', err.message);
    process.exit(4);
  }
  const t0 = performance.now();
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}
await runReps(1);
// check
const rb = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
{
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(bC, 0, rb, 0, M * N * 4);
  device.queue.submit([enc.finish()]);
}
await rb.mapAsync(GPUMapMode.READ);
const C = new Float32Array(rb.getMappedRange().slice(0));
rb.unmap();
let maxErr = 0,
  maxRef = 0;
for (let t = 0; t < 256; t++) {
  const i = t === 0 ? M - 1 : Math.floor(rnd() * M),
    j = t === 0 ? N - 1 : Math.floor(rnd() * N);
  let s = 0;
  for (let q = 0; q < K; q++) s += f16val(A[i * K + q]) * (k.q4 ? Wv[j * K + q] : f16val(W[j * K + q]));
  maxErr = Math.max(maxErr, Math.abs(s - C[i * N + j]));
  maxRef = Math.max(maxRef, Math.abs(s));
}
out.relErr = maxErr / maxRef;
out.ok = out.relErr < 1e-4;
// time
const flops = 2 * M * N * K;
let reps = 1;
let t = await runReps(reps);
while (t < 30 && reps < 4096) {
  reps *= 2;
  t = await runReps(reps);
}
const times = [];
for (let i = 0; i < 5; i++) times.push((await runReps(reps)) / reps);
times.sort((x, y) => x - y);
out.ms = times[2];
out.tflops = flops / (out.ms * 1e-3) / 1e12;
out.threads = k.threads;
out.smem = k.smem;
console.log(JSON.stringify(out));
clearInterval(keep);
process.exit(0);
