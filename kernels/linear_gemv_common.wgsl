// Shared part of the decode (matrix-vector) linear kernels linear_gemv.wgsl
// and linear_gemv_any.wgsl: parameters, the non-weight bindings, and the
// reduction + epilogue. kernels/linear.ts prepends the tunables
//   ROWS (rows of x, <= 8), TK (threads along K per weight row),
//   RPT (weight rows per thread), NG (thread groups per workgroup)
// and a weight-format file; the workgroup is TK * NG threads and covers
// NR = NG * RPT weight rows (NR / 2 outputs with GATE_UP).

struct Params {
  m: u32, n: u32, k: u32, xOff: u32,
  yOff: u32, yStride: u32, row0: u32, row1: u32,
  biasOff: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(3) var<storage, read> s0: array<u32>;
@group(0) @binding(4) var<storage, read> s1: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;

const WG: u32 = TK * NG;
const NR: u32 = NG * RPT;
const HALF: u32 = NR / 2u;

var<workgroup> red: array<f32, NR * (TK + 1u)>; // [NR][TK + 1] partial sums of one x row
var<workgroup> res: array<f32, ROWS * NR>;      // [ROWS][NR] dot products

fn load_scale(h: u32, g: u32) -> f32 {
  if (!QUANT) { return 1.0; }
  var s: u32;
  if (h == 0u) { s = s0[g >> 1u]; } else { s = s1[g >> 1u]; }
  return unpack2x16float(s)[g & 1u];
}

// Workgroup-local weight row s (0 .. NR-1) of workgroup wgi -> (half, buffer row, valid).
fn weight_row(wgi: u32, s: u32) -> vec3<u32> {
  if (GATE_UP) {
    let h = s / HALF;
    let c = wgi * HALF + s % HALF;
    return vec3<u32>(h, select(p.row1, p.row0, h == 0u) + c, u32(c < p.n));
  }
  let c = wgi * NR + s;
  return vec3<u32>(0u, p.row0 + c, u32(c < p.n));
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

// Sums acc (ROWS x RPT partials per thread) over the TK threads of each row
// and writes y. Called by every thread of the workgroup (uniform control flow).
fn reduce_and_store(acc: array<f32, ROWS * RPT>, lid: u32, wgi: u32) {
  let lane = lid % TK;
  let grp = lid / TK;
  for (var r = 0u; r < ROWS; r++) {
    for (var i = 0u; i < RPT; i++) { red[(grp * RPT + i) * (TK + 1u) + lane] = acc[r * RPT + i]; }
    workgroupBarrier();
    if (lid < NR) {
      var s = 0.0;
      for (var t = 0u; t < TK; t++) { s += red[lid * (TK + 1u) + t]; }
      res[r * NR + lid] = s;
    }
    workgroupBarrier();
  }
  if (GATE_UP) {
    for (var idx = lid; idx < ROWS * HALF; idx += WG) {
      let r = idx / HALF;
      let o = idx % HALF;
      let c = wgi * HALF + o;
      if (c < p.n && r < p.m) {
        y[p.yOff + r * p.yStride + c] = silu(res[r * NR + o]) * res[r * NR + HALF + o];
      }
    }
  } else {
    for (var idx = lid; idx < ROWS * NR; idx += WG) {
      let r = idx / NR;
      let o = idx % NR;
      let c = wgi * NR + o;
      if (c < p.n && r < p.m) {
        var v = res[idx];
        if (HAS_BIAS) { v += bias[p.biasOff + c]; }
        y[p.yOff + r * p.yStride + c] = v;
      }
    }
  }
}
