// Shared part of the decode (matrix-vector) linear kernels linear_gemv.wgsl
// and linear_gemv_any.wgsl: tunables, parameters, the non-weight bindings, the
// weight-row mapping and the reduction. kernels/linear.ts prepends a
// weight-format file and appends one epilogue defining
//   fn in_scale(lid) -> f32   (1, or the RMSNorm scale: linear_gemv_norm_in.wgsl)
//   fn store(lid, wgi)        (linear_gemv_store.wgsl: y = v (+ bias) or the
//                              gate/up product; linear_gemv_resid.wgsl: residual
//                              add + next norm's input; linear_gemv_rope.wgsl:
//                              RoPE + KV-cache write)
// The workgroup is TK * NG threads and covers NR = NG * RPT weight rows
// (NR / 2 outputs with GATE_UP, NR / 2 rotation pairs with ROPE_ROWS) of one
// row of x: the dispatch is nWg workgroups per row of x, workgroup
// wga = xrow * nWg + wgi (rows of x reach the kernel as the dispatch size).
// Tunables (H100 12:30 fused decode, 7B q4 greedy 230.5 tok/s, 1.8B 507.3 with x staged
// and rows reduced in workgroup memory: h100-1140-gemv-reg.json, h100-1230-engine-gemv.json):
const TK: u32 = 32u;     // threads along K per weight row
const RPT: u32 = 4u;     // weight rows per thread
const NG: u32 = 4u;      // thread groups per workgroup
const UNROLL: u32 = 2u;  // 16-byte weight chunks in flight per row and thread

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
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;
// Rows in rotation pairs (linear_gemv_rope.wgsl): slot s < HALF holds the
// first element of pair wgi * HALF + s, slot HALF + s its partner.
override ROPE_ROWS: bool = false;
const WG: u32 = TK * NG;
const NR: u32 = NG * RPT;
const HALF: u32 = NR / 2u;

var<workgroup> red: array<f32, NR * (TK + 1u)>; // [NR][TK + 1] partial sums of one x row (>= WG entries)
var<workgroup> res: array<f32, NR>;             // [NR] dot products
var<private> xrow: u32;                         // the row of x (and y) of this workgroup

fn load_scale(h: u32, g: u32) -> f32 {
  if (!QUANT) { return 1.0; }
  var s: u32;
  if (h == 0u) { s = s0[g >> 1u]; } else { s = s1[g >> 1u]; }
  return unpack2x16float(s)[g & 1u];
}

// Row within its head of the first (second = 0) or second element of rotation
// pair j of a head: neox pairs (j, j + rotaryDim / 2) inside the rotary part,
// interleaved pairs (2j, 2j + 1) there and (neox too) past it.
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

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

// Sum of v over threads [0, count) (count <= WG); every thread gets it. Uses
// red (free outside the reduction below); uniform control flow.
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

// Sums acc (RPT partials per thread) over the TK threads of each weight row
// into res, then runs the epilogue. Called by every thread of the workgroup
// (uniform control flow).
fn reduce_and_store(acc: array<f32, RPT>, lid: u32, wgi: u32) {
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
  store(lid, wgi);
}

// Raw dot product of one chunk of weights with 4 * EPW values of x (four
// independent FMA chains, one per vec4 lane).
fn dot_chunk(w: vec4<u32>, xs: array<vec4<f32>, EPW>) -> f32 {
  var d = vec4<f32>(0.0);
  for (var wj = 0u; wj < 4u; wj++) {
    let v = dec_word(w[wj]);
    for (var j = 0u; j < EPW; j++) {
      let e = wj * EPW + j;
      d[e % 4u] = fma(v[j], xs[e / 4u][e % 4u], d[e % 4u]);
    }
  }
  return (d.x + d.y) + (d.z + d.w);
}
