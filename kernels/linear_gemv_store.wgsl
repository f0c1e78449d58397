// Epilogue of the matrix-vector linear kernels (see linear_gemv_common.wgsl):
// row xrow of y (rows, n) at yOff with row stride yStride =
//   in_scale * dot (+ bias)                          (plain)
//   silu(in_scale * gate) * (in_scale * up)          (GATE_UP)
// in_scale is 1, or the RMSNorm scale of x (linear_gemv_norm_in.wgsl, one row).

fn store(lid: u32, wgi: u32) {
  let inv = in_scale(lid);
  let yrow = p.yOff + xrow * p.yStride;
  if (GATE_UP) {
    if (lid < HALF) {
      let c = wgi * HALF + lid;
      if (c < p.n) { y[yrow + c] = silu(inv * res[lid]) * (inv * res[HALF + lid]); }
    }
  } else if (lid < NR) {
    let c = wgi * NR + lid;
    if (c < p.n) {
      var v = inv * res[lid];
      if (HAS_BIAS) { v += bias[p.biasOff + c]; }
      y[yrow + c] = v;
    }
  }
}
