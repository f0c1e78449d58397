// Linear layer for decode, x staged in workgroup memory: as linear_gemv.wgsl
// (16-byte weight chunks, RPT rows per thread, UNROLL chunks in flight), but
// the workgroup walks K in blocks of BC = TK * UNROLL chunks and first copies
// the block's x (ROWS rows) into workgroup memory with coalesced loads. In
// linear_gemv.wgsl a lane's x slice is 16 * EPW bytes from its neighbour's
// (q4: 128 bytes, so every vec4 x load of a warp touches 32 cache lines, 8x
// the ideal); here it is read from workgroup memory padded with one vec4 per
// chunk (stride EPW + 1 vec4), which spreads a quarter-warp over all banks.
// The block's weight loads are issued before the x copy, so both overlap.
// Needs what linear_gemv.wgsl needs; kernels/linear.ts uses it only when
// ROWS * BC * (EPW + 1) vec4 fit XS_VEC4 (prepended).
//
// Workgroup: TK * NG threads (see linear_gemv_common.wgsl), NR weight rows.
// Dispatch: as linear_gemv.wgsl. Precision: exact dequantization, f32 FMA
// accumulation (four chains per chunk); per chunk the raw dot product is scaled once.
//
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + ROWS * K) f32 as vec4
//   w0: weight rows of half 0, vec4<u32> chunks; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;

const BC: u32 = TK * UNROLL;                 // chunks per block
const PAD: u32 = select(1u, 0u, EPW == 1u);  // f32 chunks are one vec4: already conflict-free
const CS: u32 = EPW + PAD;                   // vec4 per staged chunk
const XROW: u32 = BC * CS;                   // vec4 per staged x row
var<workgroup> xs: array<vec4<f32>, ROWS * XROW>; // [ROWS][BC][CS]

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
  let nch = p.k / (4u * EPW);
  let kr = k_range(wga, nch); // this workgroup's chunks [kr.x, kr.y) (split-K)
  let k4 = p.k / 4u;
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

  var acc: array<f32, ROWS * RPT>;
  for (var cb = kr.x; cb < kr.y; cb += BC) {
    // This block's weights (lane's UNROLL chunks) first, then x: both in flight together.
    var wv: array<vec4<u32>, UNROLL * RPT>;
    var sc: array<f32, UNROLL * RPT>;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(cb + lane + u * TK, kr.y - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * 4u * EPW) / GROUP);
      }
    }
    workgroupBarrier(); // the previous block's readers are done with xs
    let nv = min(BC, kr.y - cb) * EPW; // vec4 of x per row in this block
    for (var t = lid; t < ROWS * BC * EPW; t += WG) {
      let r = t / (BC * EPW);
      let v = t % (BC * EPW);
      if (v < nv) { xs[r * XROW + (v / EPW) * CS + v % EPW] = x[p.xOff / 4u + r * k4 + cb * EPW + v]; }
    }
    workgroupBarrier();
    for (var u = 0u; u < UNROLL; u++) {
      let cl = lane + u * TK; // chunk within the block
      let live = cb + cl < kr.y;
      let cs = min(cl, nv / EPW - 1u);
      for (var r = 0u; r < ROWS; r++) {
        var xv: array<vec4<f32>, EPW>;
        for (var v = 0u; v < EPW; v++) { xv[v] = xs[r * XROW + cs * CS + v]; }
        for (var i = 0u; i < RPT; i++) {
          var d = vec4<f32>(0.0);
          for (var wj = 0u; wj < 4u; wj++) {
            let dw = dec_word(wv[u * RPT + i][wj]);
            for (var j = 0u; j < EPW; j++) {
              let e = wj * EPW + j;
              d[e % 4u] = fma(dw[j], xv[e / 4u][e % 4u], d[e % 4u]);
            }
          }
          acc[r * RPT + i] += select(0.0, ((d.x + d.y) + (d.z + d.w)) * sc[u * RPT + i], live);
        }
      }
    }
  }
  reduce_and_store(acc, lid, select(wgi, wga, SPLIT_K));
}
