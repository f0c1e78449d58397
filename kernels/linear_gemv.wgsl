// Linear layer for decode (one row of x per workgroup): y = x W^T (+ bias), or
// silu(x Wg^T) * (x Wu^T) with GATE_UP. Every thread streams whole vec4<u32>
// chunks (4 words = 4 * EPW elements) of RPT weight rows, so a row's TK threads
// read consecutive 16-byte words (coalesced), UNROLL chunks in flight, and each
// x chunk serves RPT rows. Scales: one per chunk (the chunk never crosses a group).
// x staged in workgroup memory: the workgroup walks K in blocks of
// BC = TK * UNROLL chunks and first copies the block's x into workgroup memory
// with coalesced loads (read from there padded with one vec4 per chunk, stride
// EPW + 1 vec4, which spreads a quarter-warp over all banks; a lane's x slice
// read from global memory would be 16 * EPW bytes from its neighbour's). The
// block's weight loads are issued before the x copy, so both overlap.
// Needs: K % (4 * EPW) == 0, GROUP % (4 * EPW) == 0, xOff % 4 == 0, weight
// rows starting on 16-byte boundaries (implied); else linear_gemv_any.wgsl.
//
// Workgroup: TK * NG threads (see linear_gemv_common.wgsl), NR weight rows.
// Dispatch: nWg = ceil(n / NR) (ceil(n / (NR / 2)) with GATE_UP) workgroups per
// row of x, spread over (x, y); workgroup index = wg.x + wg.y * num_workgroups.x.
// Precision: exact dequantization, f32 FMA accumulation (four chains per
// chunk); per chunk the raw dot product is scaled once.
//
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + rows * K) f32 as vec4
//   w0: weight rows of half 0, vec4<u32> chunks; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;

const BC: u32 = TK * UNROLL;                 // chunks per block
const PAD: u32 = select(1u, 0u, EPW == 1u);  // f32 chunks are one vec4: already conflict-free
const CS: u32 = EPW + PAD;                   // vec4 per staged chunk
const XROW: u32 = BC * CS;                   // vec4 per staged x row
var<workgroup> xs: array<vec4<f32>, XROW>; // [BC][CS]

fn load_w(h: u32, i: u32) -> vec4<u32> {
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
  let nch = p.k / (4u * EPW);
  let xb = p.xOff / 4u + xrow * (p.k / 4u); // this row of x, in vec4
  let gpr = p.k / GROUP;

  var hs: array<u32, RPT>;
  var base: array<u32, RPT>;
  var gbase: array<u32, RPT>;
  for (var i = 0u; i < RPT; i++) {
    var r = weight_row(wgi, grp * RPT + i);
    if (r.z == 0u) { r = weight_row(0u, 0u); }
    hs[i] = r.x;
    base[i] = r.y * nch;
    gbase[i] = r.y * gpr;
  }

  var acc: array<f32, RPT>;
  for (var cb = 0u; cb < nch; cb += BC) {
    // This block's weights (lane's UNROLL chunks) first, then x: both in flight together.
    var wv: array<vec4<u32>, UNROLL * RPT>;
    var sc: array<f32, UNROLL * RPT>;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(cb + lane + u * TK, nch - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * 4u * EPW) / GROUP);
      }
    }
    workgroupBarrier(); // the previous block's readers are done with xs
    let nv = min(BC, nch - cb) * EPW; // vec4 of x in this block
    for (var v = lid; v < nv; v += WG) { xs[(v / EPW) * CS + v % EPW] = x[xb + cb * EPW + v]; }
    workgroupBarrier();
    for (var u = 0u; u < UNROLL; u++) {
      let cl = lane + u * TK; // chunk within the block
      let live = cb + cl < nch;
      let cs = min(cl, nv / EPW - 1u);
      var xv: array<vec4<f32>, EPW>;
      for (var v = 0u; v < EPW; v++) { xv[v] = xs[cs * CS + v]; }
      for (var i = 0u; i < RPT; i++) {
        acc[i] += select(0.0, dot_chunk(wv[u * RPT + i], xv) * sc[u * RPT + i], live);
      }
    }
  }
  reduce_and_store(acc, lid, wgi);
}
