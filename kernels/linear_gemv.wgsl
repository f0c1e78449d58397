// Linear layer for decode (few rows of x): y (ROWS, out) = x W^T (+ bias), or
// silu(x Wg^T) * (x Wu^T) with GATE_UP. Vector path: every thread streams
// whole vec4<u32> chunks (4 words = 4 * EPW elements) of RPT weight rows, so
// a row's TK threads read consecutive 16-byte words (coalesced), and each x
// chunk loaded serves RPT rows. Scales: one per chunk (the chunk never
// crosses a group).
// Needs: K % (4 * EPW) == 0, GROUP % (4 * EPW) == 0, xOff % 4 == 0, weight
// rows starting on 16-byte boundaries (implied); else linear_gemv_any.wgsl.
//
// Workgroup: TK * NG threads (see linear_gemv_common.wgsl), NR weight rows.
// Dispatch: workgroups = ceil(n / NR) (ceil(n / (NR / 2)) with GATE_UP),
// spread over (x, y); workgroup index = wg.x + wg.y * num_workgroups.x.
// Precision: exact dequantization, f32 FMA accumulation; per chunk the raw
// dot product is scaled once.
//
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + ROWS * K) f32 as vec4
//   w0: weight rows of half 0, vec4<u32> chunks; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;

const CH: u32 = 4u * EPW; // elements per chunk

fn load_w(h: u32, i: u32) -> vec4<u32> {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

// Raw dot product of one chunk of weights with 4 * EPW values of x.
fn dot_chunk(w: vec4<u32>, xs: array<vec4<f32>, EPW>) -> f32 {
  var d = 0.0;
  for (var wj = 0u; wj < 4u; wj++) {
    let v = dec_word(w[wj]);
    for (var j = 0u; j < EPW; j++) {
      let e = wj * EPW + j;
      d = fma(v[j], xs[e / 4u][e % 4u], d);
    }
  }
  return d;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wgi = wg.x + wg.y * nwg.x;
  let lane = lid % TK;
  let grp = lid / TK;
  let nch = p.k / CH;
  let k4 = p.k / 4u;
  let gpr = p.k / GROUP;

  var hs: array<u32, RPT>;
  var base: array<u32, RPT>;   // chunk index of the row's start
  var gbase: array<u32, RPT>;  // scale index of the row's first group
  var ok: array<bool, RPT>;
  for (var i = 0u; i < RPT; i++) {
    let r = weight_row(wgi, grp * RPT + i);
    hs[i] = r.x;
    base[i] = r.y * nch;
    gbase[i] = r.y * gpr;
    ok[i] = r.z != 0u;
  }

  var acc: array<f32, ROWS * RPT>;
  for (var c = lane; c < nch; c += TK) {
    var wv: array<vec4<u32>, RPT>;
    var sc: array<f32, RPT>;
    for (var i = 0u; i < RPT; i++) {
      if (ok[i]) {
        wv[i] = load_w(hs[i], base[i] + c);
        sc[i] = load_scale(hs[i], gbase[i] + (c * CH) / GROUP);
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      var xs: array<vec4<f32>, EPW>;
      let xb = p.xOff / 4u + r * k4 + c * EPW;
      for (var v = 0u; v < EPW; v++) { xs[v] = x[xb + v]; }
      for (var i = 0u; i < RPT; i++) {
        acc[r * RPT + i] = fma(dot_chunk(wv[i], xs), sc[i], acc[r * RPT + i]);
      }
    }
  }
  reduce_and_store(acc, lid, wgi);
}
