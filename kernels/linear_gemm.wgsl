// Linear layer for prefill, the default GEMM: y (M, out) = x (M, in) W^T (+ bias),
// or with GATE_UP y = silu(x Wg^T) * (x Wu^T) (a tile's first 64 weight rows are
// gate rows, the last 64 the matching up rows). kernels/linear.ts prepends the
// weight-format file (linear_<fmt>.wgsl: EPW, QUANT, dec_word, and the 16-byte-or-less
// weight chunk WChunk of CH elements with chunk_word).
//
// Workgroup: 256 threads, each an 8 x 8 register block (rows 4 ty + {0..3, 64..67},
// columns 4 tx + {0..3, 64..67}), so a workgroup covers 128 rows of x by 128 weight
// rows (64 outputs with GATE_UP). A warp holds 8 tx x 4 ty (lanes 0-7 walk tx), so
// its vec4 reads of As and Bs per k touch 4 + 8 distinct addresses.
// K advances by BK (override: 16, or 8 where workgroup memory is below 16.5 KiB): x and
// the dequantized W tile are staged in workgroup memory as vec4 of 4 rows at one k
// ([k][row / 4], 32 + 1 vec4 per k against bank conflicts); the next tile's global
// loads are issued into registers before the current tile's math (prefetch).
// Global loads run along k: x in vec4 (4 consecutive k of one row), W in whole chunks
// of CH elements with one scale each. The load units are ordered component-major
// (unit u: component c = u / (units / 4) of the vec4 of rows 4q..4q+3), so c is the
// same for runs of consecutive threads and every store into workgroup memory writes
// one constant component (put_a / put_b): a runtime component index can become a
// whole-vector read-modify-write on some backends, which races with the neighbours.
// Needs: K % 4 == 0, xOff % 4 == 0, K % CH == 0, GROUP % CH == 0 (else kernels/linear.ts runs linear_gemv_any.wgsl).
// Dispatch: (ceil(n / 128) (ceil(n / 64) with GATE_UP), ceil(M / 128), 1).
// Precision: weights dequantized to f32 exactly, f32 FMA accumulation.
// H100 (Dawn/Vulkan, BK 16): f16 40.1 / 40.7 TFLOP/s, q4 37.8 / 38.3 at 4096 x 4096 x 4096 /
// 4096 x 14336 x 4096 (bench/gemm.ts; bench/gpu-results/h100-0900-gemm-variants.json, 'trvlsw').
//
// Bindings:
//   x:    (xOff + M * K) f32 as vec4, row m at xOff + m * K
//   w0:   weight rows of half 0 in chunks (see src/loader/formats.ts)
//   w1:   weight rows of half 1 (same buffer as w0 unless GATE_UP)
//   s0/1: f16-pair scales of w0/w1 (QUANT formats; a dummy otherwise)
//   bias: (biasOff + n) f32 (HAS_BIAS; a dummy otherwise)
//   y:    output column c of row m at yOff + m * yStride + c, c < n
//   p:    Params

struct Params {
  m: u32, n: u32, k: u32, xOff: u32,
  yOff: u32, yStride: u32, row0: u32, row1: u32,
  biasOff: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<WChunk>;
@group(0) @binding(2) var<storage, read> w1: array<WChunk>;
@group(0) @binding(3) var<storage, read> s0: array<u32>;
@group(0) @binding(4) var<storage, read> s1: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;       // quantization group size (divides K)
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;
override BK: u32 = 16u;         // K step: 8 or 16

const TILE: u32 = 128u;                    // rows of x and weight rows per workgroup
override XU: u32 = TILE * BK / 4u;           // x load units per K step (vec4 along k)
override WPR: u32 = BK / CH;                 // W chunks of one weight row per K step
override WU: u32 = TILE * WPR;               // W load units per K step
const SLOTS: u32 = 2u;                     // load units per thread, at most (x: BK / 8; W: ceil(WU / 256))

var<workgroup> As: array<array<vec4<f32>, 33>, BK>; // [k][q]: x rows 4q .. 4q + 3 at k
var<workgroup> Bs: array<array<vec4<f32>, 33>, BK>; // [k][q]: W rows 4q .. 4q + 3 at k (dequantized)

// Prefetch registers: the next tile's x vec4, raw weight chunks and their scales.
var<private> ra: array<vec4<f32>, SLOTS>;
var<private> rw: array<WChunk, SLOTS>;
var<private> rs: array<f32, SLOTS>;

fn load_w(h: u32, i: u32) -> WChunk {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

fn load_scale(h: u32, g: u32) -> f32 {
  if (!QUANT) { return 1.0; }
  var s: u32;
  if (h == 0u) { s = s0[g >> 1u]; } else { s = s1[g >> 1u]; }
  return unpack2x16float(s)[g & 1u];
}

// Tile-local weight row n (0..127) of tile nt -> (half, buffer row, valid).
fn weight_row(nt: u32, n: u32) -> vec3<u32> {
  if (GATE_UP) {
    let c = nt * 64u + (n & 63u);
    let h = n >> 6u;
    return vec3<u32>(h, select(p.row1, p.row0, h == 0u) + c, u32(c < p.n));
  }
  let c = nt * TILE + n;
  return vec3<u32>(0u, p.row0 + c, u32(c < p.n));
}

// Unit u of `units` (component-major) -> (q, component, index along k), rows 4q + component.
fn unit_of(u: u32, units: u32, perRow: u32) -> vec3<u32> {
  let quarter = units / 4u;
  return vec3<u32>((u % quarter) / perRow, u / quarter, (u % quarter) % perRow);
}

// Component c of As[k][q] / Bs[k][q], with a constant component index in each branch.
fn put_a(k: u32, q: u32, c: u32, v: f32) {
  switch c {
    case 0u: { As[k][q].x = v; }
    case 1u: { As[k][q].y = v; }
    case 2u: { As[k][q].z = v; }
    default: { As[k][q].w = v; }
  }
}

fn put_b(k: u32, q: u32, c: u32, v: f32) {
  switch c {
    case 0u: { Bs[k][q].x = v; }
    case 1u: { Bs[k][q].y = v; }
    case 2u: { Bs[k][q].z = v; }
    default: { Bs[k][q].w = v; }
  }
}

// Global loads of the K step at k0 into the prefetch registers.
fn fetch(lid: u32, m0: u32, nt: u32, k0: u32) {
  for (var i = 0u; i < SLOTS; i++) {
    let u = lid + 256u * i;
    if (u < XU) {
      let t = unit_of(u, XU, BK / 4u);
      let row = m0 + 4u * t.x + t.y;
      let k = k0 + 4u * t.z;
      var v = vec4<f32>(0.0);
      if (row < p.m && k < p.k) { v = x[(p.xOff >> 2u) + row * (p.k >> 2u) + (k >> 2u)]; }
      ra[i] = v;
    }
  }
  for (var i = 0u; i < SLOTS; i++) {
    let u = lid + 256u * i;
    if (u < WU) {
      let t = unit_of(u, WU, WPR);
      let r = weight_row(nt, 4u * t.x + t.y);
      let k = k0 + CH * t.z;
      var wv = WChunk();
      var sv = 0.0;
      if (r.z != 0u && k < p.k) {
        wv = load_w(r.x, r.y * (p.k / CH) + k / CH);
        sv = load_scale(r.x, r.y * (p.k / GROUP) + k / GROUP);
      }
      rw[i] = wv;
      rs[i] = sv;
    }
  }
}

// The prefetch registers into the workgroup tiles (W dequantized and scaled).
fn commit(lid: u32) {
  for (var i = 0u; i < SLOTS; i++) {
    let u = lid + 256u * i;
    if (u < XU) {
      let t = unit_of(u, XU, BK / 4u);
      for (var e = 0u; e < 4u; e++) { put_a(4u * t.z + e, t.x, t.y, ra[i][e]); }
    }
  }
  for (var i = 0u; i < SLOTS; i++) {
    let u = lid + 256u * i;
    if (u < WU) {
      let t = unit_of(u, WU, WPR);
      for (var w = 0u; w < CH / EPW; w++) {
        let d = dec_word(chunk_word(rw[i], w));
        for (var j = 0u; j < EPW; j++) { put_b(CH * t.z + w * EPW + j, t.x, t.y, d[j] * rs[i]); }
      }
    }
  }
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

// Row `row` of the thread's block: v0 = columns 4tx.., v1 = columns 64 + 4tx..
// (with GATE_UP: v0 = gate, v1 = up of output columns 4tx..).
fn store_row(row: u32, nt: u32, tx: u32, v0: vec4<f32>, v1: vec4<f32>) {
  if (row >= p.m) { return; }
  let yrow = p.yOff + row * p.yStride;
  if (GATE_UP) {
    for (var j = 0u; j < 4u; j++) {
      let c = nt * 64u + 4u * tx + j;
      if (c < p.n) { y[yrow + c] = silu(v0[j]) * v1[j]; }
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    let c0 = nt * TILE + 4u * tx + j;
    let c1 = c0 + 64u;
    var o0 = v0[j];
    var o1 = v1[j];
    if (HAS_BIAS) {
      if (c0 < p.n) { o0 += bias[p.biasOff + c0]; }
      if (c1 < p.n) { o1 += bias[p.biasOff + c1]; }
    }
    if (c0 < p.n) { y[yrow + c0] = o0; }
    if (c1 < p.n) { y[yrow + c1] = o1; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nt = wg.x;
  let m0 = wg.y * TILE;
  let tx = (lid & 7u) | ((lid >> 2u) & 8u);          // lanes 0-7 of a warp, then warp bit 0
  let ty = ((lid >> 3u) & 3u) | ((lid >> 4u) & 12u); // lanes 8-31 in 4 rows, then warp bits 1-2
  // acc[2 * i + h]: row i of the thread's 8 (4ty.. and 64 + 4ty..), columns 4tx.. (h 0) or 64 + 4tx.. (h 1).
  var acc: array<vec4<f32>, 16>; // zero-initialized

  let nk = (p.k + BK - 1u) / BK;
  fetch(lid, m0, nt, 0u);
  for (var t = 0u; t < nk; t++) {
    commit(lid);
    workgroupBarrier();
    if (t + 1u < nk) { fetch(lid, m0, nt, (t + 1u) * BK); }
    for (var k = 0u; k < BK; k++) {
      let a0 = As[k][ty];
      let a1 = As[k][ty + 16u];
      let b0 = Bs[k][tx];
      let b1 = Bs[k][tx + 16u];
      acc[0] = fma(vec4<f32>(a0.x), b0, acc[0]);
      acc[1] = fma(vec4<f32>(a0.x), b1, acc[1]);
      acc[2] = fma(vec4<f32>(a0.y), b0, acc[2]);
      acc[3] = fma(vec4<f32>(a0.y), b1, acc[3]);
      acc[4] = fma(vec4<f32>(a0.z), b0, acc[4]);
      acc[5] = fma(vec4<f32>(a0.z), b1, acc[5]);
      acc[6] = fma(vec4<f32>(a0.w), b0, acc[6]);
      acc[7] = fma(vec4<f32>(a0.w), b1, acc[7]);
      acc[8] = fma(vec4<f32>(a1.x), b0, acc[8]);
      acc[9] = fma(vec4<f32>(a1.x), b1, acc[9]);
      acc[10] = fma(vec4<f32>(a1.y), b0, acc[10]);
      acc[11] = fma(vec4<f32>(a1.y), b1, acc[11]);
      acc[12] = fma(vec4<f32>(a1.z), b0, acc[12]);
      acc[13] = fma(vec4<f32>(a1.z), b1, acc[13]);
      acc[14] = fma(vec4<f32>(a1.w), b0, acc[14]);
      acc[15] = fma(vec4<f32>(a1.w), b1, acc[15]);
    }
    workgroupBarrier();
  }

  // Constant indices only, so acc stays in registers.
  let r0 = m0 + 4u * ty;
  let r1 = m0 + 64u + 4u * ty;
  store_row(r0, nt, tx, acc[0], acc[1]);
  store_row(r0 + 1u, nt, tx, acc[2], acc[3]);
  store_row(r0 + 2u, nt, tx, acc[4], acc[5]);
  store_row(r0 + 3u, nt, tx, acc[6], acc[7]);
  store_row(r1, nt, tx, acc[8], acc[9]);
  store_row(r1 + 1u, nt, tx, acc[10], acc[11]);
  store_row(r1 + 2u, nt, tx, acc[12], acc[13]);
  store_row(r1 + 3u, nt, tx, acc[14], acc[15]);
}
