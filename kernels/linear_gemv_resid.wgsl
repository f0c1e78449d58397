// Residual epilogue of the matrix-vector linear kernels (decode, one row,
// not GATE_UP): y is the residual stream x (dim) and gets the product added
// in place, and the next RMSNorm's input is prepared without its own pass:
//   x[c] += dot (+ bias);  h[c] = x[c] * normW[c]   (c: column of the whole output, biasOff + local);  ssOut[ssOff + wgi] = sum over the workgroup's c of x[c]^2
// (linear_gemv_norm_in.wgsl finishes the norm in the next projection).
//
// Bindings: normW (n) f32 (the next norm's weight), hOut (n) f32, ssOut (ssOff + workgroups) f32.

@group(0) @binding(8) var<storage, read> normW: array<f32>;
@group(0) @binding(9) var<storage, read_write> hOut: array<f32>;
@group(0) @binding(10) var<storage, read_write> ssOut: array<f32>;

fn in_scale(lid: u32) -> f32 { return 1.0; }

fn store(lid: u32, wgi: u32) {
  var sq = 0.0;
  if (lid < NR) {
    let c = wgi * NR + lid;
    if (c < p.n) {
      var v = res[lid] + y[p.yOff + c];
      if (HAS_BIAS) { v += bias[p.biasOff + c]; }
      y[p.yOff + c] = v;
      hOut[p.biasOff + c] = v * normW[p.biasOff + c];
      sq = v * v;
    }
  }
  let s = wg_sum(lid, sq, NR);
  if (lid == 0u) { ssOut[p.ssOff + wgi] = s; }
}
