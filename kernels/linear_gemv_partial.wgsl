// Split-K pass 1 epilogue of the matrix-vector linear kernels
// (linear_gemv_common.wgsl, SPLIT_K): workgroup wga = slice * nWg + wgi
// leaves its ROWS x NR dot products, unscaled, for linear_gemv_splitk.wgsl.
//
// Bindings: part (nSlices * nWg * ROWS * NR) f32, [slice][wgi][ROWS][NR].

@group(0) @binding(8) var<storage, read_write> part: array<f32>;

fn store(lid: u32, wga: u32) {
  if (wga >= p.nSlices * p.nWg) { return; } // grid padding (dispatchDims)
  for (var idx = lid; idx < ROWS * NR; idx += WG) { part[wga * ROWS * NR + idx] = res[idx]; }
}
