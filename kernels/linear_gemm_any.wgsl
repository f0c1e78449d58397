// Linear layer for prefill, any shape: the fallback of linear_gemm.wgsl for
// shapes its vec4 / whole-chunk loads do not take (K or the x offset not a
// multiple of 4, K or the group size not a multiple of the format's chunk).
// y (M, out) = x (M, in) W^T (+ bias), W packed in one of the weight formats
// (kernels/linear.ts prepends linear_<fmt>.wgsl: EPW, QUANT, dec_word, dec_elem).
// With GATE_UP, the tile's first 64 weight rows are gate rows and the last 64
// the matching up rows, and y = silu(x Wg^T) * (x Wu^T).
//
// Workgroup: 256 threads (16 x 16), each an 8 x 8 register block, so one
// workgroup covers 128 rows of x by 128 weight rows (64 outputs with GATE_UP).
// K advances by BK = 8: x and the dequantized W tile are staged in workgroup
// memory as vec4 columns [k][row / 4] (row stride padded to 33 vec4); the next
// tile's global loads are issued before the current tile's math.
// Dispatch: (ceil(n / 128) (ceil(n / 64) with GATE_UP), ceil(M / 128), 1).
// Precision: weights dequantized to f32 exactly, f32 FMA accumulation.
//
// Bindings:
//   x:    (xOff + M * K) f32, row m at xOff + m * K
//   w0:   weight rows of half 0 (packed words; see src/loader/formats.ts)
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

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w0: array<u32>;
@group(0) @binding(2) var<storage, read> w1: array<u32>;
@group(0) @binding(3) var<storage, read> s0: array<u32>;
@group(0) @binding(4) var<storage, read> s1: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;       // quantization group size (divides K)
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;
override WORD_PATH: bool = true; // K % EPW == 0 and GROUP % EPW == 0: whole words per row
const BK: u32 = 8u;             // K step

const ASLOTS: u32 = BK / 8u;     // (4 rows, 1 k) slots of x per thread; also of W on the element path
const LD: u32 = 33u;            // vec4 per k-row of a tile (32 + 1 pad against bank conflicts)
const WPR: u32 = BK / EPW;      // words of one weight row per tile (word path)
const BSLOTS: u32 = (32u * WPR + 255u) / 256u; // (4 rows, 1 word) slots per thread (word path)

var<workgroup> As: array<vec4<f32>, BK * LD>; // [BK][LD]: As[k * LD + q] = x rows 4q..4q+3 at k
var<workgroup> Bs: array<vec4<f32>, BK * LD>; // [BK][LD]: Bs[k * LD + q] = W rows 4q..4q+3 at k (dequantized)

// Prefetch registers: the next tile's x values and raw weight words/scales.
var<private> ra: array<vec4<f32>, ASLOTS>;
var<private> rw: array<vec4<u32>, BSLOTS>;
var<private> rs: array<vec4<f32>, max(ASLOTS, BSLOTS)>;   // word path: scales of the BSLOTS slots; else dequantized values

fn load_w(h: u32, i: u32) -> u32 {
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
  let c = nt * 128u + n;
  return vec3<u32>(0u, p.row0 + c, u32(c < p.n));
}

fn fetch(lid: u32, m0: u32, nt: u32, k0: u32) {
  // x: 32 * BK slots of (4 rows, 1 k); consecutive threads walk k (coalesced).
  for (var i = 0u; i < ASLOTS; i++) {
    let s = lid + i * 256u;
    let kk = s % BK;
    let row = m0 + (s / BK) * 4u;
    let k = k0 + kk;
    var v = vec4<f32>(0.0);
    if (k < p.k) {
      let base = p.xOff + row * p.k + k;
      if (row < p.m) { v.x = x[base]; }
      if (row + 1u < p.m) { v.y = x[base + p.k]; }
      if (row + 2u < p.m) { v.z = x[base + 2u * p.k]; }
      if (row + 3u < p.m) { v.w = x[base + 3u * p.k]; }
    }
    ra[i] = v;
  }
  if (WORD_PATH) {
    // W: 32 * WPR slots of (4 rows, 1 word).
    let kw = p.k / EPW;
    let gpr = p.k / GROUP;
    for (var i = 0u; i < BSLOTS; i++) {
      let s = lid + i * 256u;
      var wv = vec4<u32>(0u);
      var sv = vec4<f32>(0.0);
      if (s < 32u * WPR) {
        let wk = s % WPR;
        let k = k0 + wk * EPW;
        if (k < p.k) {
          for (var j = 0u; j < 4u; j++) {
            let r = weight_row(nt, (s / WPR) * 4u + j);
            if (r.z != 0u) {
              wv[j] = load_w(r.x, r.y * kw + k / EPW);
              sv[j] = load_scale(r.x, r.y * gpr + k / GROUP);
            }
          }
        }
      }
      rw[i] = wv;
      rs[i] = sv;
    }
  } else {
    // Any K: 32 * BK slots of (4 rows, 1 k), one element each, dequantized here.
    let gpr = p.k / GROUP;
    for (var i = 0u; i < ASLOTS; i++) {
      let s = lid + i * 256u;
      let k = k0 + s % BK;
      var v = vec4<f32>(0.0);
      if (k < p.k) {
        for (var j = 0u; j < 4u; j++) {
          let r = weight_row(nt, (s / BK) * 4u + j);
          if (r.z != 0u) {
            let e = r.y * p.k + k;
            v[j] = dec_elem(load_w(r.x, e / EPW), e % EPW) * load_scale(r.x, r.y * gpr + k / GROUP);
          }
        }
      }
      rs[i] = v;
    }
  }
}

fn commit(lid: u32) {
  for (var i = 0u; i < ASLOTS; i++) {
    let s = lid + i * 256u;
    As[(s % BK) * LD + s / BK] = ra[i];
  }
  if (WORD_PATH) {
    for (var i = 0u; i < BSLOTS; i++) {
      let s = lid + i * 256u;
      if (s < 32u * WPR) {
        let q = s / WPR;
        let kb = (s % WPR) * EPW;
        let d0 = dec_word(rw[i].x);
        let d1 = dec_word(rw[i].y);
        let d2 = dec_word(rw[i].z);
        let d3 = dec_word(rw[i].w);
        for (var j = 0u; j < EPW; j++) {
          Bs[(kb + j) * LD + q] = vec4<f32>(d0[j], d1[j], d2[j], d3[j]) * rs[i];
        }
      }
    }
  } else {
    for (var i = 0u; i < ASLOTS; i++) {
      let s = lid + i * 256u;
      Bs[(s % BK) * LD + s / BK] = rs[i];
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
    let c0 = nt * 128u + 4u * tx + j;
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
  let m0 = wg.y * 128u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  // acc[2 * i + hc]: row i of the thread's 8 (4ty.. and 64 + 4ty..), columns 4tx.. (hc 0) or 64 + 4tx.. (hc 1).
  var acc: array<vec4<f32>, 16>; // zero-initialized

  let nk = (p.k + BK - 1u) / BK;
  fetch(lid, m0, nt, 0u);
  for (var t = 0u; t < nk; t++) {
    commit(lid);
    workgroupBarrier();
    if (t + 1u < nk) { fetch(lid, m0, nt, (t + 1u) * BK); }
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = As[kk * LD + ty];
      let a1 = As[kk * LD + 16u + ty];
      let b0 = Bs[kk * LD + tx];
      let b1 = Bs[kk * LD + 16u + tx];
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
