// Epilogue of the matrix-vector linear kernels (see linear_gemv_common.wgsl):
// y (ROWS, n) at yOff with row stride yStride =
//   in_scale * dot (+ bias)                          (plain)
//   silu(in_scale * gate) * (in_scale * up)          (GATE_UP)
// in_scale is 1, or the RMSNorm scale of x (linear_gemv_norm_in.wgsl, ROWS = 1).

fn store(lid: u32, wgi: u32) {
  let inv = in_scale(lid);
  if (GATE_UP) {
    for (var idx = lid; idx < ROWS * HALF; idx += WG) {
      let r = idx / HALF;
      let o = idx % HALF;
      let c = wgi * HALF + o;
      if (c < p.n && r < p.m) {
        y[p.yOff + r * p.yStride + c] = silu(inv * res[r * NR + o]) * (inv * res[r * NR + HALF + o]);
      }
    }
  } else {
    for (var idx = lid; idx < ROWS * NR; idx += WG) {
      let r = idx / NR;
      let o = idx % NR;
      let c = wgi * NR + o;
      if (c < p.n && r < p.m) {
        var v = inv * res[idx];
        if (HAS_BIAS) { v += bias[p.biasOff + c]; }
        y[p.yOff + r * p.yStride + c] = v;
      }
    }
  }
}
