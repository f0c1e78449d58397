// The linear layer, every kernel of it in this one file (launcher: kernels/linear.ts):
//   y (M, out) = x (M, in) W^T (+ bias)           or, with GATE_UP,
//   y (M, F)   = silu(x Wg^T) * (x Wu^T),  W = [Wg; Wu]
// with W in any GPU weight format of src/gpu/formats.ts, split by rows into parts.
//
// Entry points:
//   gemm                    prefill, M > 8 rows: register-tiled GEMM (128 x 128 tiles)
//   gemv_store              decode, M <= 8 rows: matrix-vector, one row of x per workgroup set;
//   gemv_residual           the three decode epilogues: plain store (optionally the RMSNorm of x
//   gemv_rope               folded in, NORM_IN), residual add + next norm's input, RoPE + KV write
//   gemv_any_store / _residual / _rope
//                           the same, element-wise, for shapes the 16-byte loads do not take
//                           (K or the group not a multiple of 4 * EPW, unaligned x offsets)
//   dequant                 a q4 / q8 weight range expanded to f32 (the prefill GEMM then reads it
//                           as an 'f32' weight; kernels/dequant.ts)
// Specialisation: the generated header (src/gpu/wgsl-header.ts) gives the tier's activation
// type act / act4, the output element yt (act; f32 for the residual stream and logits), the
// weight format FORMAT (0 f32, 1 f16, 2 q8, 3 q4) and WChunk, the GEMM's weight chunk type (WGSL
// picks a binding's type only by const); everything else is an override (GROUP, GATE_UP,
// HAS_BIAS, NORM_IN, ROPE_ROWS, KV_F16, BK, VEC) or the entry point.
// Precision: weights dequantized exactly to f32, f32 FMA accumulation; activations loaded as
// f32. Tier f16 (ACT_F16): x, h and y are f16 in memory; the matrix-vector kernel multiplies
// dequantized f16 weights by f16 x within one 16-byte weight chunk (4 * EPW products per vec4
// lane: 16 for q4, 8 q8, 4 f16) and accumulates the chunks' sums in f32; the GEMM stays f32.
//
// Bindings (gemm, gemv_*):
//   x:    (xOff + M * K) act, row m at xOff + m * K (vec4 loads where aligned)
//   w0:   weight rows of half 0 (see src/gpu/formats.ts); w1: half 1 (GATE_UP) or = w0
//   s0/1: f16-pair scales of w0 / w1 (q8, q4; a dummy otherwise)
//   bias: (biasOff + n) f32 (HAS_BIAS; a dummy otherwise)
//   y:    (yOff + M * yStride) yt, output column c of row m at yOff + m * yStride + c, c < n
//   p:    Params
//   8..12 the epilogues' (see gemv_store, gemv_residual, gemv_rope)

struct Params {
  m: u32, n: u32, k: u32, xOff: u32,
  yOff: u32, yStride: u32, row0: u32, row1: u32,
  biasOff: u32, headDim: u32, rotaryDim: u32, neox: u32,
  nss: u32, normDim: u32, eps: f32, nHeads: u32,
  nKvHeads: u32, capacity: u32, ssOff: u32, nWg: u32,
}

@group(0) @binding(3) var<storage, read> s0: array<u32>;
@group(0) @binding(4) var<storage, read> s1: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<yt>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;       // quantization group size (divides K)
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;

// ---------------------------------------------------------------------------------------------
// Weight formats (src/gpu/formats.ts). Decoding without int -> float conversions (quarter rate
// on NVIDIA) and without unpack2x16float (slow on the H100 under Dawn/Vulkan):
//   f32: the word, bit-cast.
//   f16: the half's exponent and mantissa (bits 0..14) shifted left by 13 land in an f32's
//        fields with the exponent bias 127 instead of 15, so multiplying by 2^112 gives the
//        exact value (subnormals too where the GPU keeps f32 denormals; one that flushes them
//        reads |v| < 6.1e-5 as 0); the sign moves to bit 31. Inf/NaN never occur: the loader
//        keeps out-of-range tensors in f32.
//   q8:  flipping the sign bits makes each byte b = q + 128 unsigned; byte p of a 16-bit half
//        sits at bits 8p..8p+7, inside the mantissa of a float with exponent 23 - 8p, so
//        (bits & mask) | exponent is exactly 2^(23 - 8p) + b, and one subtraction gives q.
//   q4:  nibble p of a 16-bit half sits at bits 4p..4p+3, inside the mantissa of a float with
//        exponent 23 - 4p: (bits & mask) | exponent is 2^(23 - 4p) + q, minus 2^(23 - 4p) + 8
//        gives q - 8. (All integers below 2^24: exact.) q8 / q4 values are raw; the kernels
//        multiply by the group's f16 scale.

const EPW: u32 = 1u << FORMAT;  // elements per u32 word: 1, 2, 4, 8
const QUANT: bool = FORMAT >= 2u; // per-group scales
const CH: u32 = select(8u, 4u, FORMAT == 0u); // elements of the GEMM's weight chunk WChunk (4 words f32 / f16, 2 q8, 1 q4)
const F16_EXP_FIX: f32 = 5.192296858534828e33; // 2^112
const Q8_MASK = vec2<u32>(0xffu, 0xff00u);
const Q8_EXP = vec2<u32>(0x4b000000u, 0x47000000u); // 2^23, 2^15
const Q8_BIAS = vec2<f32>(8388736.0, 32896.0);      // 2^(23 - 8p) + 128
const Q4_MASK = vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u);
const Q4_EXP = vec4<u32>(0x4b000000u, 0x49000000u, 0x47000000u, 0x45000000u); // 2^23, 2^19, 2^15, 2^11
const Q4_BIAS = vec4<f32>(8388616.0, 524296.0, 32776.0, 2056.0);             // 2^(23 - 4p) + 8

// Raw (unscaled) values of one word in element order; entries EPW.. are unused.
fn dec_word(w: u32) -> array<f32, 8> {
  switch FORMAT {
    case 0u: {
      return array<f32, 8>(bitcast<f32>(w), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    }
    case 1u: {
      let lo = bitcast<f32>(((w & 0x7fffu) << 13u) | ((w & 0x8000u) << 16u)) * F16_EXP_FIX;
      let hi = bitcast<f32>(((w >> 3u) & 0x0fffe000u) | (w & 0x80000000u)) * F16_EXP_FIX;
      return array<f32, 8>(lo, hi, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    }
    case 2u: {
      let b = w ^ 0x80808080u;
      let lo = bitcast<vec2<f32>>((vec2<u32>(b) & Q8_MASK) | Q8_EXP) - Q8_BIAS;
      let hi = bitcast<vec2<f32>>((vec2<u32>(b >> 16u) & Q8_MASK) | Q8_EXP) - Q8_BIAS;
      return array<f32, 8>(lo.x, lo.y, hi.x, hi.y, 0.0, 0.0, 0.0, 0.0);
    }
    default: {
      let lo = bitcast<vec4<f32>>((vec4<u32>(w) & Q4_MASK) | Q4_EXP) - Q4_BIAS;
      let hi = bitcast<vec4<f32>>((vec4<u32>(w >> 16u) & Q4_MASK) | Q4_EXP) - Q4_BIAS;
      return array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    }
  }
}

// Raw value of element `sub` (0 .. EPW-1) of word `w`.
fn dec_elem(w: u32, sub: u32) -> f32 {
  switch FORMAT {
    case 0u: { return bitcast<f32>(w); }
    case 1u: {
      let h = w >> (16u * sub);
      return bitcast<f32>(((h & 0x7fffu) << 13u) | ((h & 0x8000u) << 16u)) * F16_EXP_FIX;
    }
    case 2u: { return f32(bitcast<i32>(w << (24u - 8u * sub)) >> 24u); }
    default: { return f32((w >> (4u * sub)) & 15u) - 8.0; }
  }
}

fn load_scale(h: u32, g: u32) -> f32 {
  if (!QUANT) { return 1.0; }
  var s: u32;
  if (h == 0u) { s = s0[g >> 1u]; } else { s = s1[g >> 1u]; }
  return unpack2x16float(s)[g & 1u];
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

// ---------------------------------------------------------------------------------------------
// gemm: prefill. Workgroup: 256 threads, each an 8 x 8 register block (rows 4 ty + {0..3, 64..67},
// columns 4 tx + {0..3, 64..67}), so a workgroup covers 128 rows of x by 128 weight rows (64
// outputs with GATE_UP: a tile's first 64 weight rows are gate rows, the last 64 the matching up
// rows). A warp holds 8 tx x 4 ty (lanes 0-7 walk tx), so its vec4 reads of As and Bs per k
// touch 4 + 8 distinct addresses.
// K advances by BK (override: 16, or 8 where workgroup memory is below 16.5 KiB): x and the
// dequantized W tile are staged in workgroup memory as vec4 of 4 rows at one k ([k][row / 4],
// 32 + 1 vec4 per k against bank conflicts); the next tile's global loads are issued into
// registers before the current tile's math (prefetch).
// Global loads run along k: x in vec4 (4 consecutive k of one row), W in whole chunks of CH
// elements with one scale each. The load units are ordered component-major (unit u: component
// c = u / (units / 4) of the vec4 of rows 4q..4q+3), so c is the same for runs of consecutive
// threads and every store into workgroup memory writes one constant component (put_a / put_b):
// a runtime component index can become a whole-vector read-modify-write on some backends, which
// races with the neighbours.
// Needs: K % 4 == 0, xOff % 4 == 0, K % CH == 0, GROUP % CH == 0 (else gemv_any_store).
// Dispatch: (ceil(n / 128) (ceil(n / 64) with GATE_UP), ceil(M / 128), 1).
// H100 (Dawn/Vulkan, BK 16): f16 40.1 / 40.7 TFLOP/s, q4 37.8 / 38.3 at 4096 x 4096 x 4096 /
// 4096 x 14336 x 4096 (bench/gemm.ts; bench/gpu-results/h100-0900-gemm-variants.json, 'trvlsw').

@group(0) @binding(0) var<storage, read> x: array<act4>;
@group(0) @binding(1) var<storage, read> wc0: array<WChunk>;
@group(0) @binding(2) var<storage, read> wc1: array<WChunk>;

override BK: u32 = 16u;                      // K step: 8 or 16
const TILE: u32 = 128u;                      // rows of x and weight rows per workgroup
override XU: u32 = TILE * BK / 4u;           // x load units per K step (vec4 along k)
override WPR: u32 = BK / CH;                 // W chunks of one weight row per K step
override WU: u32 = TILE * WPR;               // W load units per K step
const SLOTS: u32 = 2u;                       // load units per thread, at most (x: BK / 8; W: ceil(WU / 256))

var<workgroup> As: array<array<vec4<f32>, 33>, BK>; // [k][q]: x rows 4q .. 4q + 3 at k
var<workgroup> Bs: array<array<vec4<f32>, 33>, BK>; // [k][q]: W rows 4q .. 4q + 3 at k (dequantized)

// Prefetch registers: the next tile's x vec4, raw weight chunks and their scales.
var<private> ra: array<vec4<f32>, SLOTS>;
var<private> rw: array<WChunk, SLOTS>;
var<private> rs: array<f32, SLOTS>;

fn load_chunk(h: u32, i: u32) -> WChunk {
  if (h == 0u) { return wc0[i]; }
  return wc1[i];
}

// Tile-local weight row n (0..127) of tile nt -> (half, buffer row, valid).
fn tile_row(nt: u32, n: u32) -> vec3<u32> {
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
      if (row < p.m && k < p.k) { v = vec4<f32>(x[(p.xOff >> 2u) + row * (p.k >> 2u) + (k >> 2u)]); }
      ra[i] = v;
    }
  }
  for (var i = 0u; i < SLOTS; i++) {
    let u = lid + 256u * i;
    if (u < WU) {
      let t = unit_of(u, WU, WPR);
      let r = tile_row(nt, 4u * t.x + t.y);
      let k = k0 + CH * t.z;
      var wv = WChunk();
      var sv = 0.0;
      if (r.z != 0u && k < p.k) {
        wv = load_chunk(r.x, r.y * (p.k / CH) + k / CH);
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
        let d = dec_word(rw[i][w]);
        for (var j = 0u; j < EPW; j++) { put_b(CH * t.z + w * EPW + j, t.x, t.y, d[j] * rs[i]); }
      }
    }
  }
}

// Row `row` of the thread's block: v0 = columns 4tx.., v1 = columns 64 + 4tx..
// (with GATE_UP: v0 = gate, v1 = up of output columns 4tx..).
fn store_row(row: u32, nt: u32, tx: u32, v0: vec4<f32>, v1: vec4<f32>) {
  if (row >= p.m) { return; }
  let yrow = p.yOff + row * p.yStride;
  if (GATE_UP) {
    for (var j = 0u; j < 4u; j++) {
      let c = nt * 64u + 4u * tx + j;
      if (c < p.n) { y[yrow + c] = yt(silu(v0[j]) * v1[j]); }
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
    if (c0 < p.n) { y[yrow + c0] = yt(o0); }
    if (c1 < p.n) { y[yrow + c1] = yt(o1); }
  }
}

@compute @workgroup_size(256)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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

// ---------------------------------------------------------------------------------------------
// gemv_*: decode (M <= 8 rows of x). The workgroup is TK * NG threads and covers NR = NG * RPT
// weight rows (NR / 2 outputs with GATE_UP, NR / 2 rotation pairs with ROPE_ROWS) of one row of
// x: the dispatch is nWg = ceil(n / NR) (ceil(n / (NR / 2)) with GATE_UP or ROPE_ROWS)
// workgroups per row of x, spread over (x, y); workgroup wga = xrow * nWg + wgi (rows of x
// reach the kernel as the dispatch size).
// Vector body (gemv_store, _residual, _rope): every thread streams whole vec4<u32> chunks (4
// words = 4 * EPW elements) of RPT weight rows, so a row's TK threads read consecutive 16-byte
// words (coalesced), UNROLL chunks in flight, and each x chunk serves RPT rows. Scales: one per
// chunk (the chunk never crosses a group). x is staged in workgroup memory: the workgroup walks
// K in blocks of BC = TK * UNROLL chunks and first copies the block's x there with coalesced
// loads (read back padded with one vec4 per chunk, stride EPW + 1 vec4, which spreads a
// quarter-warp over all banks; a lane's x slice read from global memory would be 16 * EPW bytes
// from its neighbour's). The block's weight loads are issued before the x copy, so both overlap.
// Needs: K % (4 * EPW) == 0, GROUP % (4 * EPW) == 0, xOff % 4 == 0.
// Element-wise body (gemv_any_*): each of a row's TK threads walks k = lane, lane + TK, ...;
// element e of a row is decoded from its word (e / EPW) and scaled by its group's scale.
// Then the TK partial sums of each row are reduced in workgroup memory (res[NR]) and the entry
// point's epilogue stores them.
// Tunables (H100 12:30 fused decode, 7B q4 greedy 230.5 tok/s, 1.8B 507.3 with x staged
// and rows reduced in workgroup memory: h100-1140-gemv-reg.json, h100-1230-engine-gemv.json):
const TK: u32 = 32u;     // threads along K per weight row
const RPT: u32 = 4u;     // weight rows per thread
const NG: u32 = 4u;      // thread groups per workgroup
const UNROLL: u32 = 2u;  // 16-byte weight chunks in flight per row and thread
const WG: u32 = TK * NG;
const NR: u32 = NG * RPT;
const HALF: u32 = NR / 2u;
const BC: u32 = TK * UNROLL;                 // chunks per block
const PAD: u32 = select(1u, 0u, EPW == 1u);  // f32 chunks are one vec4: already conflict-free
const CS: u32 = EPW + PAD;                   // vec4 per staged chunk
const XROW: u32 = BC * CS;                   // vec4 per staged x row

// Rows in rotation pairs (gemv_rope): slot s < HALF holds the first element of pair
// wgi * HALF + s, slot HALF + s its partner.
override ROPE_ROWS: bool = false;
// gemv_store / gemv_rope: x is h = x_res * normW (a gemv_residual output) and the products are
// scaled by RMSNorm's inv = 1 / sqrt(sum(x_res^2) / normDim + eps), sum(x_res^2) given as nss
// partial sums in ssIn (one per producing workgroup, summed here by every workgroup):
// rmsnorm(x_res) W^T = inv * (h W^T). Without NORM_IN the scale is 1 (ssIn is bound to a dummy).
override NORM_IN: bool = false;

@group(0) @binding(0) var<storage, read> xa: array<act>;        // gemv_any_*: x by element
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;  // gemv_*: 16-byte chunks
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> wa0: array<u32>;       // gemv_any_*: words
@group(0) @binding(2) var<storage, read> wa1: array<u32>;
@group(0) @binding(8) var<storage, read> ssIn: array<f32>;      // NORM_IN: (nss) partial sums of squares

var<workgroup> red: array<f32, NR * (TK + 1u)>; // [NR][TK + 1] partial sums of one x row (>= WG entries)
var<workgroup> res: array<f32, NR>;             // [NR] dot products
var<workgroup> xs: array<act4, XROW>;           // [BC][CS] staged x
var<private> xrow: u32;                         // the row of x (and y) of this workgroup

// Row within its head of the first (second = 0) or second element of rotation pair j of a
// head: neox pairs (j, j + rotaryDim / 2) inside the rotary part, interleaved pairs (2j, 2j + 1)
// there and (neox too) past it.
fn pair_row(j: u32, second: u32) -> u32 {
  if (p.neox != 0u && j < p.rotaryDim / 2u) { return j + second * (p.rotaryDim / 2u); }
  return 2u * j + second;
}

// Workgroup-local weight row s (0 .. NR-1) of workgroup wgi -> (half, buffer row, valid).
fn weight_row(wgi: u32, s: u32) -> vec3<u32> {
  if (GATE_UP) {
    let h = s / HALF;
    let c = wgi * HALF + s % HALF;
    return vec3<u32>(h, select(p.row1, p.row0, h == 0u) + c, u32(c < p.n));
  }
  if (ROPE_ROWS) {
    let pr = wgi * HALF + s % HALF;
    let hp = p.headDim / 2u;
    let r = (pr / hp) * p.headDim + pair_row(pr % hp, s / HALF);
    return vec3<u32>(0u, p.row0 + r, u32(pr < p.n));
  }
  let c = wgi * NR + s;
  return vec3<u32>(0u, p.row0 + c, u32(c < p.n));
}

// Sum of v over threads [0, count) (count <= WG); every thread gets it. Uses red (free outside
// the reduction); uniform control flow.
fn wg_sum(lid: u32, v: f32, count: u32) -> f32 {
  workgroupBarrier();
  red[lid] = select(0.0, v, lid < count);
  workgroupBarrier();
  for (var st = 128u; st > 0u; st = st >> 1u) {
    if (lid < st && lid + st < WG) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  let s = red[0];
  workgroupBarrier();
  return s;
}

// Sums acc (RPT partials per thread) over the TK threads of each weight row into res. Called by
// every thread of the workgroup (uniform control flow).
fn reduce_rows(acc: array<f32, RPT>, lid: u32) {
  let lane = lid % TK;
  let grp = lid / TK;
  for (var i = 0u; i < RPT; i++) { red[(grp * RPT + i) * (TK + 1u) + lane] = acc[i]; }
  workgroupBarrier();
  if (lid < NR) {
    var s = 0.0;
    for (var t = 0u; t < TK; t++) { s += red[lid * (TK + 1u) + t]; }
    res[lid] = s;
  }
  workgroupBarrier();
}

// The dot product of one 16-byte weight chunk with its 4 * EPW values of x, times the chunk's
// scale. f32 (and f32 weights in any tier): four independent FMA chains, one per vec4 lane, the
// raw sum scaled once. ACT_F16: the chunk's weights dequantized to f16 (raw value times the f16
// scale), f16 FMA chains per vec4 lane over the chunk, the lanes summed in f32.
fn dot_chunk(w: vec4<u32>, xv: array<act4, EPW>, scale: f32) -> f32 {
  if (ACT_F16 && FORMAT != 0u) {
    var raw: array<vec4<f32>, EPW>;
    for (var wj = 0u; wj < 4u; wj++) {
      let v = dec_word(w[wj]);
      for (var j = 0u; j < EPW; j++) {
        let e = wj * EPW + j;
        raw[e / 4u][e % 4u] = v[j];
      }
    }
    let s = act(scale);
    var dh = act4(0.0);
    for (var c = 0u; c < EPW; c++) { dh = fma(act4(raw[c]) * s, xv[c], dh); }
    let d = vec4<f32>(dh);
    return (d.x + d.y) + (d.z + d.w);
  }
  var d = vec4<f32>(0.0);
  for (var wj = 0u; wj < 4u; wj++) {
    let v = dec_word(w[wj]);
    for (var j = 0u; j < EPW; j++) {
      let e = wj * EPW + j;
      d[e % 4u] = fma(v[j], f32(xv[e / 4u][e % 4u]), d[e % 4u]);
    }
  }
  return ((d.x + d.y) + (d.z + d.w)) * scale;
}

fn load_w(h: u32, i: u32) -> vec4<u32> {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

// The vector body: res = the workgroup's NR dot products. Returns wgi.
fn gemv_vec(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  let wga = wg.x + wg.y * nwg.x;
  let wgi = wga % p.nWg;
  xrow = wga / p.nWg;
  let lane = lid % TK;
  let grp = lid / TK;
  let nch = p.k / (4u * EPW);
  let xb = p.xOff / 4u + xrow * (p.k / 4u); // this row of x, in vec4
  let gpr = p.k / GROUP;

  var hs: array<u32, RPT>;
  var base: array<u32, RPT>;
  var gbase: array<u32, RPT>;
  for (var i = 0u; i < RPT; i++) {
    var r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { r = weight_row(0u, 0u); }
    hs[i] = r.x;
    base[i] = r.y * nch;
    gbase[i] = r.y * gpr;
  }

  var acc: array<f32, RPT>;
  for (var cb = 0u; cb < nch; cb += BC) {
    // This block's weights (lane's UNROLL chunks) first, then x: both in flight together.
    var wv: array<vec4<u32>, UNROLL * RPT>;
    var sc: array<f32, UNROLL * RPT>;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(cb + lane + u * TK, nch - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * 4u * EPW) / GROUP);
      }
    }
    workgroupBarrier(); // the previous block's readers are done with xs
    let nv = min(BC, nch - cb) * EPW; // vec4 of x in this block
    for (var v = lid; v < nv; v += WG) { xs[(v / EPW) * CS + v % EPW] = x[xb + cb * EPW + v]; }
    workgroupBarrier();
    for (var u = 0u; u < UNROLL; u++) {
      let cl = lane + u * TK; // chunk within the block
      let live = cb + cl < nch;
      let cs = min(cl, nv / EPW - 1u);
      var xv: array<act4, EPW>;
      for (var v = 0u; v < EPW; v++) { xv[v] = xs[cs * CS + v]; }
      for (var i = 0u; i < RPT; i++) {
        acc[i] += select(0.0, dot_chunk(wv[u * RPT + i], xv, sc[u * RPT + i]), live);
      }
    }
  }
  reduce_rows(acc, lid);
  return wgi;
}

fn load_wa(h: u32, i: u32) -> u32 {
  if (h == 0u) { return wa0[i]; }
  return wa1[i];
}

// The element-wise body: res = the workgroup's NR dot products. Returns wgi.
fn gemv_elem(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  let wga = wg.x + wg.y * nwg.x;
  let wgi = wga % p.nWg;
  xrow = wga / p.nWg;
  let lane = lid % TK;
  let grp = lid / TK;
  let gpr = p.k / GROUP;

  var acc: array<f32, RPT>;
  for (var i = 0u; i < RPT; i++) {
    let r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { continue; }
    for (var k = lane; k < p.k; k += TK) {
      let e = r.y * p.k + k;
      let w = dec_elem(load_wa(r.x, e / EPW), e % EPW) * load_scale(r.x, r.y * gpr + k / GROUP);
      acc[i] = fma(w, f32(xa[p.xOff + xrow * p.k + k]), acc[i]);
    }
  }
  reduce_rows(acc, lid);
  return wgi;
}

// The input scale: 1, or with NORM_IN RMSNorm's 1 / sqrt(sum(x_res^2) / normDim + eps).
fn in_scale(lid: u32) -> f32 {
  if (!NORM_IN) { return 1.0; }
  var s = 0.0;
  for (var i = lid; i < p.nss; i += WG) { s += ssIn[i]; }
  return inverseSqrt(wg_sum(lid, s, WG) / f32(p.normDim) + p.eps);
}

// Epilogue store: row xrow of y at yOff with row stride yStride =
//   inv * dot (+ bias)                   (plain)
//   silu(inv * gate) * (inv * up)        (GATE_UP)
fn store(lid: u32, wgi: u32) {
  let inv = in_scale(lid);
  let yrow = p.yOff + xrow * p.yStride;
  if (GATE_UP) {
    if (lid < HALF) {
      let c = wgi * HALF + lid;
      if (c < p.n) { y[yrow + c] = yt(silu(inv * res[lid]) * (inv * res[HALF + lid])); }
    }
  } else if (lid < NR) {
    let c = wgi * NR + lid;
    if (c < p.n) {
      var v = inv * res[lid];
      if (HAS_BIAS) { v += bias[p.biasOff + c]; }
      y[yrow + c] = yt(v);
    }
  }
}

// Epilogue residual (one row, not GATE_UP): y is the residual stream x (yt = f32) and gets the
// product added in place, and the next RMSNorm's input is prepared without its own pass:
//   x[c] += dot (+ bias);  h[c] = x[c] * normW[c]  (c: column of the whole output, biasOff + local);
//   ssOut[ssOff + wgi] = sum over the workgroup's c of x[c]^2  (the next projection's NORM_IN).
// Bindings: normW (n) f32 (the next norm's weight), hOut (n) act, ssOut (ssOff + workgroups) f32.
@group(0) @binding(8) var<storage, read> normW: array<f32>;
@group(0) @binding(9) var<storage, read_write> hOut: array<act>;
@group(0) @binding(10) var<storage, read_write> ssOut: array<f32>;

fn store_residual(lid: u32, wgi: u32) {
  var sq = 0.0;
  if (lid < NR) {
    let c = wgi * NR + lid;
    if (c < p.n) {
      var v = res[lid] + f32(y[p.yOff + c]);
      if (HAS_BIAS) { v += bias[p.biasOff + c]; }
      y[p.yOff + c] = yt(v);
      hOut[p.biasOff + c] = act(v * normW[p.biasOff + c]);
      sq = v * v;
    }
  }
  let s = wg_sum(lid, sq, NR);
  if (lid == 0u) { ssOut[p.ssOff + wgi] = s; }
}

// Epilogue rope (one row, ROPE_ROWS): the QKV projection's rows come in rotation pairs
// (weight_row), so a workgroup holds both elements of each pair it computes and rotates them
// itself (kernels/rope.wgsl without its own pass):
//   v = inv * dot (+ bias); Q and K pairs inside rotaryDim rotated by table (cos, sin) of the
//   pair; Q -> y (nHeads * headDim), K and V -> kCache / vCache at position step.pos (f32
//   words, or KV_F16 f16 pairs: the thread of an even element writes the word with its odd
//   neighbour, which the launcher makes sure sits in the same workgroup: headDim % 4 == 0,
//   rotaryDim % 4 == 0, NR % 4 == 0).
// p.n counts pairs: (nHeads + 2 nKvHeads) * headDim / 2.
// Bindings: table (rotaryDim / 2) vec2<f32> (cos, sin) of position step.pos; kCache, vCache
// (nKvHeads, capacity, headDim) f32 words or f16 pairs (u32); step: pos (the row's position).
@group(0) @binding(9) var<storage, read> table: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read_write> kCache: array<u32>;
@group(0) @binding(11) var<storage, read_write> vCache: array<u32>;
@group(0) @binding(12) var<uniform> step: Step;

struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;

fn store_rope(lid: u32, wgi: u32) {
  let inv = in_scale(lid);
  let hp = p.headDim / 2u;
  // Rotate each pair in place (a thread owns slots o and HALF + o).
  for (var o = lid; o < HALF; o += WG) {
    let pr = wgi * HALF + o;
    if (pr < p.n) {
      let ra = weight_row(wgi, o).y - p.row0;
      let rb = weight_row(wgi, HALF + o).y - p.row0;
      var a = inv * res[o];
      var b = inv * res[HALF + o];
      if (HAS_BIAS) { a += bias[p.biasOff + ra]; b += bias[p.biasOff + rb]; }
      let j = pr % hp;
      if (ra / p.headDim < p.nHeads + p.nKvHeads && j < p.rotaryDim / 2u) {
        let cs = table[j];
        let a2 = a * cs.x - b * cs.y;
        b = b * cs.x + a * cs.y;
        a = a2;
      }
      res[o] = a;
      res[HALF + o] = b;
    }
  }
  workgroupBarrier();
  for (var s = lid; s < NR; s += WG) {
    let pr = wgi * HALF + s % HALF;
    let row = weight_row(wgi, s).y - p.row0;
    let head = row / p.headDim;
    let e = row % p.headDim;
    if (pr < p.n) {
      if (head < p.nHeads) {
        y[p.yOff + row] = yt(res[s]);
      } else if (step.pos < p.capacity) {
        let isK = head < p.nHeads + p.nKvHeads;
        let kvh = select(head - p.nHeads - p.nKvHeads, head - p.nHeads, isK);
        let idx = (kvh * p.capacity + step.pos) * p.headDim + e;
        if (KV_F16) {
          if ((e & 1u) == 0u) {
            // The odd neighbour: the next pair's slot (neox, inside rotaryDim) or this pair's second.
            let inRot = p.neox != 0u && (pr % hp) < p.rotaryDim / 2u;
            let w = pack2x16float(vec2<f32>(res[s], res[select(s + HALF, s + 1u, inRot)]));
            if (isK) { kCache[idx / 2u] = w; } else { vCache[idx / 2u] = w; }
          }
        } else {
          if (isK) { kCache[idx] = bitcast<u32>(res[s]); } else { vCache[idx] = bitcast<u32>(res[s]); }
        }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn gemv_store(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store(lid, gemv_vec(wg, nwg, lid));
}

@compute @workgroup_size(WG)
fn gemv_residual(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store_residual(lid, gemv_vec(wg, nwg, lid));
}

@compute @workgroup_size(WG)
fn gemv_rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store_rope(lid, gemv_vec(wg, nwg, lid));
}

@compute @workgroup_size(WG)
fn gemv_any_store(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store(lid, gemv_elem(wg, nwg, lid));
}

@compute @workgroup_size(WG)
fn gemv_any_residual(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store_residual(lid, gemv_elem(wg, nwg, lid));
}

@compute @workgroup_size(WG)
fn gemv_any_rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  store_rope(lid, gemv_elem(wg, nwg, lid));
}

// ---------------------------------------------------------------------------------------------
// dequant: a q4 / q8 weight range into the 'f32' weight format, so the prefill GEMM reads a
// quantized weight as a plain f32 one (kernels/dequant.ts). Copies `count` consecutive
// elements of one part, starting at element srcElem0 of the part, to elements dstElem0.. of dst.
// Workgroup: 256 threads. Dispatch: (x, y) workgroups with x * y * 256 >= the thread count:
// VEC (srcElem0, dstElem0, count and the group multiples of EPW): count / EPW threads, one
// source word each, stored as EPW / 4 whole vec4; else one destination vec4 each, elements
// outside the range kept (a neighbouring range's, written by an earlier dispatch).
// Precision: value = q * scale, exact in f32.
// Bindings: dqSrc (packed q4 / q8 words of one part), dqScales ((groups) f16 pairs of the part),
// dqDst (f32 bits of (dstElem0 + count) elements, 4 per vector), dq (DequantParams).

struct DequantParams { srcElem0: u32, dstElem0: u32, count: u32, group: u32 }

@group(0) @binding(0) var<storage, read> dqSrc: array<u32>;
@group(0) @binding(1) var<storage, read> dqScales: array<u32>;
@group(0) @binding(2) var<storage, read_write> dqDst: array<vec4<u32>>;
@group(0) @binding(3) var<uniform> dq: DequantParams;

override VEC: bool = true;

// IEEE half bits -> f32, exact for subnormals whatever the GPU's denormal mode.
fn half_to_f32(h: u32) -> f32 {
  let mag = h & 0x7fffu;
  var v: f32;
  if (mag < 0x400u) {
    v = f32(mag) * 5.960464477539063e-8; // 2^-24
  } else {
    v = bitcast<f32>((mag << 13u) + 0x38000000u); // exponent bias 15 -> 127
  }
  return select(v, -v, (h & 0x8000u) != 0u);
}

fn dq_scale(g: u32) -> f32 {
  return half_to_f32((dqScales[g >> 1u] >> (16u * (g & 1u))) & 0xffffu);
}

fn dq_elem(e: u32) -> f32 {
  return dec_elem(dqSrc[e / EPW], e % EPW) * dq_scale(e / dq.group);
}

@compute @workgroup_size(256)
fn dequant(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (VEC) {
    // Source word srcElem0 / EPW + i; its EPW elements share one group (group % EPW == 0).
    if (i >= dq.count / EPW) { return; }
    let e = dq.srcElem0 + i * EPW;
    let s = dq_scale(e / dq.group);
    let v = dec_word(dqSrc[e / EPW]);
    let d = (dq.dstElem0 + i * EPW) / 4u;
    for (var q = 0u; q < EPW / 4u; q++) {
      dqDst[d + q] = bitcast<vec4<u32>>(vec4<f32>(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]) * s);
    }
  } else {
    // Destination vector d covers elements 4d .. 4d + 3.
    let d = dq.dstElem0 / 4u + i;
    if (d * 4u >= dq.dstElem0 + dq.count) { return; }
    var w = dqDst[d];
    for (var c = 0u; c < 4u; c++) {
      let de = d * 4u + c;
      if (de >= dq.dstElem0 && de < dq.dstElem0 + dq.count) { w[c] = bitcast<u32>(dq_elem(dq.srcElem0 + de - dq.dstElem0)); }
    }
    dqDst[d] = w;
  }
}
