// RMSNorm over rows, alone or fused with the residual add that precedes it.
//   rmsnorm:     y[r] = x[r + xRowOffset] / sqrt(mean(x^2) + eps) * w
//   add_rmsnorm: x[r] += res[r] (x updated in place), then y[r] = rmsnorm(x[r]) * w
// Workgroup: 256 threads per row, each striding over dim; tree reduction of
// the sum of squares in workgroup memory with a barrier at every step.
// Dispatch: (rows, 1, 1).
// rmsnorm4 / add_rmsnorm4: the same with vec4 loads and stores (dim % 4 == 0;
// the launcher picks them then): a quarter of the loop trips.
// Precision: f32 loads, f32 accumulation (per-thread partial sums, then the tree).
// Tier (generated header, src/gpu/wgsl-header.ts): y and res are `act` (f16 in tier 'f16'),
// converted on load / store; x is the residual stream, f32 in every tier.
//
// Bindings:
//   x:      (rows, dim) f32  (read_write: add_rmsnorm writes the sum back)
//   w:      (dim) f32
//   y:      (rows, dim) act
//   params: rows, dim, eps, xRowOffset
//   res:    (rows, dim) act  (add_rmsnorm only)

struct Params { rows: u32, dim: u32, eps: f32, xRowOffset: u32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> res: array<act>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn reduce_scale(lid: u32, local: f32) -> f32 {
  partial[lid] = local;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  return inverseSqrt(partial[0] / f32(params.dim) + params.eps);
}

@compute @workgroup_size(256)
fn rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let xBase = (r + params.xRowOffset) * params.dim;
  let yBase = r * params.dim;
  var ss = 0.0;
  for (var c = lid; c < params.dim; c += WG) { let v = x[xBase + c]; ss = fma(v, v, ss); }
  let inv = reduce_scale(lid, ss);
  for (var c = lid; c < params.dim; c += WG) { y[yBase + c] = act(x[xBase + c] * inv * w[c]); }
}

@compute @workgroup_size(256)
fn add_rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wg.x * params.dim;
  var ss = 0.0;
  for (var c = lid; c < params.dim; c += WG) {
    let v = x[base + c] + f32(res[base + c]);
    x[base + c] = v;
    ss = fma(v, v, ss);
  }
  let inv = reduce_scale(lid, ss);
  for (var c = lid; c < params.dim; c += WG) { y[base + c] = act(x[base + c] * inv * w[c]); }
}

@group(0) @binding(0) var<storage, read_write> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<act4>;
@group(0) @binding(4) var<storage, read> res4: array<act4>;

@compute @workgroup_size(256)
fn rmsnorm4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let dim4 = params.dim / 4u;
  let xBase = (wg.x + params.xRowOffset) * dim4;
  let yBase = wg.x * dim4;
  var ss = 0.0;
  for (var c = lid; c < dim4; c += WG) { let v = x4[xBase + c]; ss += dot(v, v); }
  let inv = reduce_scale(lid, ss);
  for (var c = lid; c < dim4; c += WG) { y4[yBase + c] = act4(x4[xBase + c] * inv * w4[c]); }
}

@compute @workgroup_size(256)
fn add_rmsnorm4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let dim4 = params.dim / 4u;
  let base = wg.x * dim4;
  var ss = 0.0;
  for (var c = lid; c < dim4; c += WG) {
    let v = x4[base + c] + vec4<f32>(res4[base + c]);
    x4[base + c] = v;
    ss += dot(v, v);
  }
  let inv = reduce_scale(lid, ss);
  for (var c = lid; c < dim4; c += WG) { y4[base + c] = act4(x4[base + c] * inv * w4[c]); }
}
