// Tiled matrix multiply, f32: C = A * B^T (the layout of a Linear layer: y = x W^T).
//
// Workgroup: 256 threads (16 x 16), each computing an 8 x 8 block of C, so a
// workgroup covers a 128 x 128 tile of C. K advances in steps of 16; the A and
// B tiles are staged in workgroup memory transposed to [k][row] (16 KiB).
// Dispatch: (ceil(N / 128), ceil(M / 128), 1).
// Precision: f32 loads, f32 accumulation. Any M, N, K (edges are guarded).
//
// Bindings:
//   a: (M, K) row-major f32
//   b: (N, K) row-major f32
//   c: (M, N) row-major f32
//   dims: (M, N, K)

struct Dims { m: u32, n: u32, k: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const TILE: u32 = 128u;
const BK: u32 = 16u;
const PER: u32 = 8u;

var<workgroup> as_: array<f32, 2048>; // [BK][TILE]
var<workgroup> bs_: array<f32, 2048>; // [BK][TILE]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let m0 = wg.y * TILE;
  let n0 = wg.x * TILE;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc: array<array<f32, 8>, 8>;
  for (var i = 0u; i < PER; i++) { for (var j = 0u; j < PER; j++) { acc[i][j] = 0.0; } }

  for (var k0 = 0u; k0 < dims.k; k0 += BK) {
    for (var i = 0u; i < 8u; i++) {
      let idx = lid + i * 256u;
      let r = idx / BK;
      let kk = idx % BK;
      let gk = k0 + kk;
      var av = 0.0;
      if (m0 + r < dims.m && gk < dims.k) { av = a[(m0 + r) * dims.k + gk]; }
      as_[kk * TILE + r] = av;
      var bv = 0.0;
      if (n0 + r < dims.n && gk < dims.k) { bv = b[(n0 + r) * dims.k + gk]; }
      bs_[kk * TILE + r] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var ar: array<f32, 8>;
      var br: array<f32, 8>;
      for (var i = 0u; i < PER; i++) { ar[i] = as_[kk * TILE + i * 16u + ty]; }
      for (var j = 0u; j < PER; j++) { br[j] = bs_[kk * TILE + j * 16u + tx]; }
      for (var i = 0u; i < PER; i++) {
        for (var j = 0u; j < PER; j++) { acc[i][j] = fma(ar[i], br[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < PER; i++) {
    let row = m0 + i * 16u + ty;
    if (row >= dims.m) { continue; }
    for (var j = 0u; j < PER; j++) {
      let col = n0 + j * 16u + tx;
      if (col < dims.n) { c[row * dims.n + col] = acc[i][j]; }
    }
  }
}
