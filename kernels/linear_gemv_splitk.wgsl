// Split-K pass 2 of the matrix-vector linear kernels: sums the nSlices
// partial dot products of linear_gemv_partial.wgsl into res and runs the
// epilogue kernels/linear.ts appends (store / resid / rope, with in_scale),
// with the same workgroup -> rows mapping as pass 1.
// Workgroup: TK * NG threads (as pass 1). Dispatch: nWg workgroups over (x, y).
// Precision: f32 sums, slices in order.
//
// Bindings (plus those of linear_gemv_common.wgsl the epilogue uses):
//   part: (nSlices * nWg * ROWS * NR) f32, [slice][wgi][ROWS][NR]

@group(0) @binding(0) var<storage, read> part: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wgi = wg.x + wg.y * nwg.x;
  for (var idx = lid; idx < ROWS * NR; idx += WG) {
    var s = 0.0;
    for (var sl = 0u; sl < p.nSlices; sl++) { s += part[(sl * p.nWg + wgi) * ROWS * NR + idx]; }
    res[idx] = s;
  }
  workgroupBarrier();
  store(lid, wgi);
}
