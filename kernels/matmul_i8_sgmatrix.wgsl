// Experimental: int8 GEMM on the tensor cores through Dawn's
// chromium_experimental_subgroup_matrix (the only component types the
// NVIDIA Vulkan driver reports are i8/u8 -> i32/u32, 16x16x32 and 16x8x32).
// C (M, N) i32 = A (M, K) i8 * B (N, K)^T i8.
//
// Workgroup: 128 threads = 4 subgroups of 32 (2 x 2), each computing a
// 32 x 32 block of C as 2 x 2 result tiles of 16 x 16; a workgroup covers
// 64 x 64. Tiles are loaded straight from storage (L1/L2 serve the reuse).
// Dispatch: (N / 64, M / 64). Requires M, N multiples of 64 and K of 32.
//
// Bindings:
//   a: (M, K) i8, row-major, 4 per i32
//   b: (N, K) i8, row-major, 4 per i32 (= K x N column-major: the right operand)
//   c: (M, N) i32 row-major
//   dims: (M, N, K)
enable chromium_experimental_subgroup_matrix;

struct Dims { m: u32, n: u32, k: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> a: array<i32>;
@group(0) @binding(1) var<storage, read> b: array<i32>;
@group(0) @binding(2) var<storage, read_write> c: array<i32>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32) {
  let m0 = wg.y * 64u + (sg / 2u) * 32u;
  let n0 = wg.x * 64u + (sg % 2u) * 32u;
  var c00 = subgroup_matrix_result<i32, 16, 16>();
  var c01 = subgroup_matrix_result<i32, 16, 16>();
  var c10 = subgroup_matrix_result<i32, 16, 16>();
  var c11 = subgroup_matrix_result<i32, 16, 16>();
  for (var k = 0u; k < dims.k; k += 32u) {
    let a0 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&a, m0 * dims.k + k, false, dims.k);
    let a1 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&a, (m0 + 16u) * dims.k + k, false, dims.k);
    let b0 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>>(&b, n0 * dims.k + k, true, dims.k);
    let b1 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>>(&b, (n0 + 16u) * dims.k + k, true, dims.k);
    c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
    c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
    c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
    c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
  }
  subgroupMatrixStore(&c, m0 * dims.n + n0, c00, false, dims.n);
  subgroupMatrixStore(&c, m0 * dims.n + n0 + 16u, c01, false, dims.n);
  subgroupMatrixStore(&c, (m0 + 16u) * dims.n + n0, c10, false, dims.n);
  subgroupMatrixStore(&c, (m0 + 16u) * dims.n + n0 + 16u, c11, false, dims.n);
}
