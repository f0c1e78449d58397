// Linear layer for decode, any shape: the element-wise fallback of
// linear_gemv.wgsl for K or groups that do not split into 16-byte chunks
// (odd K with f16, q8 with odd groups, unaligned x offsets). Each of a row's
// TK threads walks k = lane, lane + TK, ...; element e of a row is decoded
// from its word (e / EPW) and scaled by its group's scale.
//
// Workgroup, dispatch, precision: as linear_gemv.wgsl.
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + rows * K) f32
//   w0: weight rows of half 0, packed words; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w0: array<u32>;
@group(0) @binding(2) var<storage, read> w1: array<u32>;

fn load_w(h: u32, i: u32) -> u32 {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wga = wg.x + wg.y * nwg.x;
  let wgi = wga % p.nWg;
  xrow = wga / p.nWg;
  let lane = lid % TK;
  let grp = lid / TK;
  let gpr = p.k / GROUP;

  var acc: array<f32, RPT>;
  for (var i = 0u; i < RPT; i++) {
    let r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { continue; }
    for (var k = lane; k < p.k; k += TK) {
      let e = r.y * p.k + k;
      let w = dec_elem(load_w(r.x, e / EPW), e % EPW) * load_scale(r.x, r.y * gpr + k / GROUP);
      acc[i] = fma(w, x[p.xOff + xrow * p.k + k], acc[i]);
    }
  }
  reduce_and_store(acc, lid, wgi);
}
