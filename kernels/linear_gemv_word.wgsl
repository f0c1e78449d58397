// Linear layer for decode, word path for the packed integer formats (q8, q4):
// as linear_gemv.wgsl, but each thread streams single u32 words (EPW
// elements) instead of 16-byte chunks, so a row's TK threads read
// consecutive words and, above all, consecutive x: with 16-byte chunks of q4
// a lane's x slice is 128 bytes from its neighbour's (every x load of a
// warp touches 32 cache lines, 8x the ideal; measured ~1.5 TB/s ceiling on
// the H100), with words it is 32 bytes (2x) and 16 bytes for q8 (ideal).
// UNROLL words per row and thread are loaded before the math (bytes in
// flight per thread: 4 * UNROLL * RPT).
// Needs: EPW >= 4, K % EPW == 0, GROUP % EPW == 0, xOff % 4 == 0.
//
// Workgroup: TK * NG threads (see linear_gemv_common.wgsl), NR weight rows.
// Dispatch: as linear_gemv.wgsl. Precision: exact dequantization, f32 FMA
// accumulation; per word the raw dot product is scaled once.
//
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + ROWS * K) f32 as vec4
//   w0: weight rows of half 0, packed words; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<u32>;
@group(0) @binding(2) var<storage, read> w1: array<u32>;

const XV: u32 = EPW / 4u; // vec4 of x per word

fn load_w(h: u32, i: u32) -> u32 {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wgi = wg.x + wg.y * nwg.x;
  let lane = lid % TK;
  let grp = lid / TK;
  let nw = p.k / EPW;
  let k4 = p.k / 4u;
  let gpr = p.k / GROUP;

  // Rows past n read the last valid row (results dropped at the store).
  var hs: array<u32, RPT>;
  var base: array<u32, RPT>;   // word index of the row's start
  var gbase: array<u32, RPT>;  // scale index of the row's first group
  for (var i = 0u; i < RPT; i++) {
    var r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { r = weight_row(0u, 0u); }
    hs[i] = r.x;
    base[i] = r.y * nw;
    gbase[i] = r.y * gpr;
  }

  var acc: array<f32, ROWS * RPT>;
  for (var c0 = lane; c0 < nw; c0 += UNROLL * TK) {
    var wv: array<u32, UNROLL * RPT>;
    var sc: array<f32, UNROLL * RPT>;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(c0 + u * TK, nw - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * EPW) / GROUP);
      }
    }
    for (var u = 0u; u < UNROLL; u++) {
      let cu = c0 + u * TK;
      let c = min(cu, nw - 1u);
      let live = cu < nw;
      var xv: array<vec4<f32>, ROWS * XV>;
      for (var r = 0u; r < ROWS; r++) {
        let xb = p.xOff / 4u + r * k4 + c * XV;
        for (var v = 0u; v < XV; v++) { xv[r * XV + v] = x[xb + v]; }
      }
      for (var i = 0u; i < RPT; i++) {
        let d = dec_word(wv[u * RPT + i]);
        let scl = select(0.0, sc[u * RPT + i], live);
        for (var r = 0u; r < ROWS; r++) {
          var s = vec4<f32>(0.0); // four independent FMA chains
          for (var v = 0u; v < XV; v++) {
            s = fma(vec4<f32>(d[4u * v], d[4u * v + 1u], d[4u * v + 2u], d[4u * v + 3u]), xv[r * XV + v], s);
          }
          acc[r * RPT + i] = fma((s.x + s.y) + (s.z + s.w), scl, acc[r * RPT + i]);
        }
      }
    }
  }
  reduce_and_store(acc, lid, wgi);
}
