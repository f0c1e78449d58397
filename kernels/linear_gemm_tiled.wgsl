// Linear layer for prefill, generated variants (issue 9): y (M, out) = x (M, in) W^T (+ bias),
// or with GATE_UP y = silu(x Wg^T) * (x Wu^T) (the tile's first half of weight
// rows are gate rows, the second half the matching up rows). Same bindings,
// Params and results as linear_gemm.wgsl; kernels/linear_gemm.ts prepends the
// format file (linear_<fmt>.wgsl: EPW, QUANT, dec_word, dec_elem) and the
// tile constants, and replaces the placeholder lines (dollar + NAME) with straight-line code
// (constant indices only: no loop counters in workgroup-memory indices, so
// Tint's robustness clamps fold away or are loop-invariant, and the
// accumulators are plain variables that stay in registers).
//
// Workgroup: 256 threads (16 x 16), each a TM x TN register block; the tile is
// 16 TM rows of x by 16 TN weight rows (16 TN / 2 outputs with GATE_UP). K
// advances by BK; the x and dequantized W tiles are staged in workgroup memory
// in one of two layouts (LAYOUT, see linear_gemm.ts): 'kv' holds vec4 runs
// along k of one row (As[i][ty][kq]: thread rows ty + 16 i, columns tx + 16 j),
// 'tr' holds vec4 of 4 rows at one k (As[k][q], as linear_gemm.wgsl: rows
// 4 (ty + 16 i4) .. + 3, columns 4 (tx + 16 j4) .. + 3). Thread (tx, ty) is
// lid = 16 ty + tx, or with `sw` a warp covers 8 tx x 4 ty (lanes 0-7 walk
// tx) instead of 16 x 2, so its vec4 reads of As and Bs per step touch 4 + 8
// distinct addresses (64 + 128 bytes) instead of 2 + 16 (32 + 256 bytes).
// Global loads ('kv'): vec4 runs along k (x) and whole-word chunks along k (W)
// where the shape allows, single elements otherwise; ('tr') 4 rows at one k or
// one word, as linear_gemm.wgsl. Every workgroup-memory store is a whole vec4.
// With prefetch the next tile's global
// loads are issued before the current tile's math; double-buffered (db), the
// next tile is stored into the other workgroup-memory buffer after the math,
// one barrier per tile (the K loop unrolled by 2, so buffer indices are
// constants too).
// Dispatch: (ceil(n / TILE_N) (ceil(n / (TILE_N / 2)) with GATE_UP), ceil(M / TILE_M), 1).
// Precision: weights dequantized to f32 exactly, f32 FMA accumulation.
//
// Bindings:
//   x:    (xOff + M * K) f32 (vec4 where K and xOff allow), row m at xOff + m * K
//   w0:   weight rows of half 0 (packed words; vec2/vec4 chunks along k where the shape allows)
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

@group(0) @binding(0) var<storage, read> x: array<$X_ELEM>;
@group(0) @binding(1) var<storage, read> w0: array<$W_ELEM>;
@group(0) @binding(2) var<storage, read> w1: array<$W_ELEM>;
@group(0) @binding(3) var<storage, read> s0: array<u32>;
@group(0) @binding(4) var<storage, read> s1: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override GROUP: u32 = 1u;       // quantization group size (divides K)
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;

$SHARED

fn load_w(h: u32, i: u32) -> $W_ELEM {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

fn load_scale(h: u32, g: u32) -> f32 {
  if (!QUANT) { return 1.0; }
  var s: u32;
  if (h == 0u) { s = s0[g >> 1u]; } else { s = s1[g >> 1u]; }
  return unpack2x16float(s)[g & 1u];
}

// Tile-local weight row n (0 .. TILE_N - 1) of tile nt -> (half, buffer row, valid).
fn weight_row(nt: u32, n: u32) -> vec3<u32> {
  if (GATE_UP) {
    let c = nt * (TILE_N / 2u) + n % (TILE_N / 2u);
    let h = n / (TILE_N / 2u);
    return vec3<u32>(h, select(p.row1, p.row0, h == 0u) + c, u32(c < p.n));
  }
  let c = nt * TILE_N + n;
  return vec3<u32>(0u, p.row0 + c, u32(c < p.n));
}

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

// One output: row `row`, column `col` (< p.n checked here).
fn put(row: u32, col: u32, v: f32) {
  if (row >= p.m || col >= p.n) { return; }
  var o = v;
  if (HAS_BIAS) { o += bias[p.biasOff + col]; }
  y[p.yOff + row * p.yStride + col] = o;
}

fn put_gu(row: u32, col: u32, g: f32, u: f32) {
  if (row >= p.m || col >= p.n) { return; }
  y[p.yOff + row * p.yStride + col] = silu(g) * u;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nt = wg.x;
  let m0 = wg.y * TILE_M;
$LANES
  let nk = (p.k + BK - 1u) / BK;
  // Every binding stays in the 'auto' layout (f32 / f16 never read the scales).
  _ = &s0;
  _ = &s1;
  _ = &bias;
$DECLS
$LOOP
$STORE
}
