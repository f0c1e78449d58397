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
// spread over (x, y); workgroup index = wg.x + wg.y * num_workgroups.x;
// split-K (linear_gemv_common.wgsl k_range): that many per K slice.
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wga = wg.x + wg.y * nwg.x;
  let wgi = wga % p.nWg;
  let lane = lid % TK;
  let grp = lid / TK;
  let nch = p.k / CH;
  let kr = k_range(wga, nch); // this workgroup's chunks [kr.x, kr.y)
  let k4 = p.k / 4u;
  let gpr = p.k / GROUP;

  // Rows past n read the last valid row (results dropped at the store), so
  // the streaming loop has no branches.
  var hs: array<u32, RPT>;
  var base: array<u32, RPT>;   // chunk index of the row's start
  var gbase: array<u32, RPT>;  // scale index of the row's first group
  for (var i = 0u; i < RPT; i++) {
    var r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { r = weight_row(0u, 0u); }
    hs[i] = r.x;
    base[i] = r.y * nch;
    gbase[i] = r.y * gpr;
  }

  var acc: array<f32, ROWS * RPT>;
  // UNROLL chunks per thread and step: all their loads issue before the math.
  for (var c0 = kr.x + lane; c0 < kr.y; c0 += UNROLL * TK) {
    var wv: array<vec4<u32>, UNROLL * RPT>;
    var sc: array<f32, UNROLL * RPT>;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(c0 + u * TK, kr.y - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * CH) / GROUP);
      }
    }
    for (var u = 0u; u < UNROLL; u++) {
      let cu = c0 + u * TK;
      let c = min(cu, kr.y - 1u);
      let live = cu < kr.y;
      for (var r = 0u; r < ROWS; r++) {
        var xs: array<vec4<f32>, EPW>;
        let xb = p.xOff / 4u + r * k4 + c * EPW;
        for (var v = 0u; v < EPW; v++) { xs[v] = x[xb + v]; }
        for (var i = 0u; i < RPT; i++) {
          let d = dot_chunk(wv[u * RPT + i], xs) * sc[u * RPT + i];
          acc[r * RPT + i] += select(0.0, d, live);
        }
      }
    }
  }
  reduce_and_store(acc, lid, select(wgi, wga, SPLIT_K));
}
