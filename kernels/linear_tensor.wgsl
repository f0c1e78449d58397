// Tier 'tensor': the prefill linear layer on the tensor cores.
//   y (M, N) = x (M, K) W^T (+ bias)        or, with GATE_UP,
//   y (M, N) = silu(x Wg^T) * (x Wu^T)      (Wg, Wu: the gate and up halves)
// x and y are f32 (the engine's activations); W is f16, q8 or q4 (src/loader/formats.ts).
// Both operands are staged in workgroup memory as f16 (x converted, W decoded with its
// group scale), multiplied with f16 16x16x16 subgroup matrices, accumulated in f32.
//
// Tile: a workgroup computes 128 rows x 128 columns (GATE_UP: 128 rows x 64 outputs, i.e.
// 64 gate + 64 up columns) in K-steps of 32, with 8 subgroups of 32 invocations laid out
// 4 (rows) x 2 (columns); each subgroup owns 32 x 64 = 2 x 4 result tiles.
// Requires: subgroup size 32, K a multiple of 32, the q8/q4 group size a multiple of 32.
// Rows past M read zeros and are not written; columns past N likewise.
// Dispatch: (ceil(N / BN), ceil(M / 128)) with BN = 128 (64 with GATE_UP).
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

// 0: f16, 1: q8, 2: q4 (src/loader/formats.ts)
override FORMAT: u32 = 0u;
override GATE_UP: bool = false;
override HAS_BIAS: bool = false;

struct Dims {
  m: u32,      // rows of x and y
  n: u32,      // output columns written by this dispatch
  k: u32,      // inner dimension
  ldy: u32,    // row stride of y, elements
  y0: u32,     // element offset of y's first written column (row 0)
  x0: u32,     // element offset of x (row 0)
  row0: u32,   // first weight row of this dispatch in wa (gate with GATE_UP)
  row1: u32,   // first weight row in wb (up; GATE_UP only)
  b0: u32,     // bias element of this dispatch's first column
  group: u32,  // elements per scale group along K (q8, q4; a multiple of 32)
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wa: array<u32>;
@group(0) @binding(2) var<storage, read> sa_scales: array<u32>;
@group(0) @binding(3) var<storage, read> wb: array<u32>;
@group(0) @binding(4) var<storage, read> sb_scales: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> dims: Dims;

const BM = 128u;
const BK = 32u;
// Row stride of the staged tiles: 32 + 8 halves, so the 16-byte rows of consecutive
// matrix rows start in different banks.
const LDS = 40u;
const THREADS = 256u;

var<workgroup> tile_x: array<f16, 5120>; // BM x LDS
var<workgroup> tile_w: array<f16, 5120>; // 128 weight rows x LDS
// Epilogue: one 16 x 16 f32 tile (plus its up partner) per subgroup.
var<workgroup> scratch: array<f32, 4096>;

// 8 consecutive weights of `row` starting at element k (a multiple of 8), as f16.
fn load8(w: ptr<storage, array<u32>, read>, s: ptr<storage, array<u32>, read>, row: u32, k: u32) -> array<f16, 8> {
  var o: array<f16, 8>;
  let e = row * dims.k + k;
  if (FORMAT == 0u) {
    for (var i = 0u; i < 4u; i++) {
      let h = bitcast<vec2<f16>>((*w)[e / 2u + i]);
      o[2u * i] = h.x;
      o[2u * i + 1u] = h.y;
    }
  } else {
    let g = e / dims.group;
    let scale = f16(unpack2x16float((*s)[g / 2u])[g & 1u]);
    if (FORMAT == 1u) {
      for (var i = 0u; i < 2u; i++) {
        let word = (*w)[e / 4u + i];
        for (var b = 0u; b < 4u; b++) {
          // sign-extend byte b
          o[4u * i + b] = f16(i32(word << (24u - 8u * b)) >> 24u) * scale;
        }
      }
    } else {
      let word = (*w)[e / 8u];
      for (var b = 0u; b < 8u; b++) {
        o[b] = (f16((word >> (4u * b)) & 15u) - 8.0h) * scale;
      }
    }
  }
  return o;
}

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let bn = select(128u, 64u, GATE_UP);
  let m0 = wg.y * BM;
  let n0 = wg.x * bn;
  let sm = (sg / 2u) * 32u;          // subgroup's first row in the tile
  let sn = sg % 2u;                  // subgroup's column half
  let k4 = dims.k / 4u;

  // Weight tile row j of the subgroup's 4 right-operand columns blocks:
  // plain: 64 consecutive columns; GATE_UP: 32 gate columns then the same 32 up columns.
  var bRow: array<u32, 4>;
  for (var j = 0u; j < 4u; j++) {
    bRow[j] = select(sn * 64u + j * 16u, (j / 2u) * 64u + sn * 32u + (j % 2u) * 16u, GATE_UP);
  }

  var c00 = subgroup_matrix_result<f32, 16, 16>();
  var c01 = subgroup_matrix_result<f32, 16, 16>();
  var c02 = subgroup_matrix_result<f32, 16, 16>();
  var c03 = subgroup_matrix_result<f32, 16, 16>();
  var c10 = subgroup_matrix_result<f32, 16, 16>();
  var c11 = subgroup_matrix_result<f32, 16, 16>();
  var c12 = subgroup_matrix_result<f32, 16, 16>();
  var c13 = subgroup_matrix_result<f32, 16, 16>();

  for (var k0 = 0u; k0 < dims.k; k0 += BK) {
    // x: 128 rows x 32 -> 1024 vec4, 4 per invocation, converted to f16.
    for (var i = 0u; i < 4u; i++) {
      let idx = lid + i * THREADS;
      let r = idx / 8u;
      let q = idx % 8u;
      var v = vec4<f32>(0.0);
      if (m0 + r < dims.m) {
        v = x[dims.x0 / 4u + (m0 + r) * k4 + k0 / 4u + q];
      }
      let h = vec4<f16>(v);
      let o = r * LDS + q * 4u;
      tile_x[o] = h.x;
      tile_x[o + 1u] = h.y;
      tile_x[o + 2u] = h.z;
      tile_x[o + 3u] = h.w;
    }
    // W: 128 rows x 32 -> 512 runs of 8, 2 per invocation.
    for (var i = 0u; i < 2u; i++) {
      let idx = lid + i * THREADS;
      let r = idx / 4u;
      let q = idx % 4u;
      var vals: array<f16, 8>;
      if (GATE_UP) {
        let col = n0 + (r % 64u);
        if (col < dims.n) {
          if (r < 64u) {
            vals = load8(&wa, &sa_scales, dims.row0 + col, k0 + q * 8u);
          } else {
            vals = load8(&wb, &sb_scales, dims.row1 + col, k0 + q * 8u);
          }
        }
      } else if (n0 + r < dims.n) {
        vals = load8(&wa, &sa_scales, dims.row0 + n0 + r, k0 + q * 8u);
      }
      let o = r * LDS + q * 8u;
      for (var e = 0u; e < 8u; e++) {
        tile_w[o + e] = vals[e];
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += 16u) {
      let a0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&tile_x, sm * LDS + kk, false, LDS);
      let a1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&tile_x, (sm + 16u) * LDS + kk, false, LDS);
      let b0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&tile_w, bRow[0] * LDS + kk, true, LDS);
      let b1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&tile_w, bRow[1] * LDS + kk, true, LDS);
      let b2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&tile_w, bRow[2] * LDS + kk, true, LDS);
      let b3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&tile_w, bRow[3] * LDS + kk, true, LDS);
      c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
      c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
      c02 = subgroupMatrixMultiplyAccumulate(a0, b2, c02);
      c03 = subgroupMatrixMultiplyAccumulate(a0, b3, c03);
      c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
      c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
      c12 = subgroupMatrixMultiplyAccumulate(a1, b2, c12);
      c13 = subgroupMatrixMultiplyAccumulate(a1, b3, c13);
    }
    workgroupBarrier();
  }

  // Epilogue, one 16 x 16 tile (GATE_UP: a gate tile and its up tile) at a time through this
  // subgroup's 512 floats of scratch: bias, silu * up, bounds.
  let base = sg * 512u;
  for (var t = 0u; t < 8u; t++) {
    let i = t / 4u;
    let j = t % 4u;
    if (GATE_UP && j >= 2u) {
      break;
    }
    // Select the tile (subgroup matrices cannot be indexed).
    var g: subgroup_matrix_result<f32, 16, 16>;
    var u: subgroup_matrix_result<f32, 16, 16>;
    switch (t) {
      case 0u: { g = c00; u = c02; }
      case 1u: { g = c01; u = c03; }
      case 2u: { g = c02; u = c02; }
      case 3u: { g = c03; u = c03; }
      case 4u: { g = c10; u = c12; }
      case 5u: { g = c11; u = c13; }
      case 6u: { g = c12; u = c12; }
      default: { g = c13; u = c13; }
    }
    subgroupMatrixStore(&scratch, base, g, false, 16u);
    if (GATE_UP) {
      subgroupMatrixStore(&scratch, base + 256u, u, false, 16u);
    }
    workgroupBarrier();
    let colBase = select(n0 + sn * 64u + j * 16u, n0 + sn * 32u + j * 16u, GATE_UP);
    for (var e = lane; e < 256u; e += 32u) {
      let r = m0 + sm + i * 16u + e / 16u;
      let col = colBase + e % 16u;
      if (r < dims.m && col < dims.n) {
        var v = scratch[base + e];
        if (GATE_UP) {
          v = silu(v) * scratch[base + 256u + e];
        } else if (HAS_BIAS) {
          v += bias[dims.b0 + col];
        }
        y[dims.y0 + r * dims.ldy + col] = v;
      }
    }
    workgroupBarrier();
  }
}
