// Input-norm epilogue piece of the matrix-vector linear kernels (decode, one row):
// x is h = x_res * normW (written by the previous projection's
// linear_gemv_resid.wgsl epilogue) and RMSNorm's scale
//   inv = 1 / sqrt(sum(x_res^2) / normDim + eps)
// is applied to the dot products: rmsnorm(x_res) W^T = inv * (h W^T).
// sum(x_res^2) arrives as nss partial sums (one per producing workgroup),
// summed here by every workgroup (a few hundred floats).
//
// Bindings: ssIn (nss) f32 partial sums of squares.

@group(0) @binding(8) var<storage, read> ssIn: array<f32>;

fn in_scale(lid: u32) -> f32 {
  var s = 0.0;
  for (var i = lid; i < p.nss; i += WG) { s += ssIn[i]; }
  return inverseSqrt(wg_sum(lid, s, WG) / f32(p.normDim) + p.eps);
}
