// Linear layer for decode (one row of x), x held in registers: y (1, n) =
// x W^T (+ bias), or the gate/up product, RoPE and residual epilogues of
// linear_gemv_common.wgsl. Written for q4 (32 weights per 16-byte chunk, so
// every chunk needs 128 bytes of x: the staged / cached x reads of
// linear_gemv*.wgsl cost as much as the weights), works for every format.
//
// Lane t of a team (TK threads) owns the chunks c_j = t + j * TK (j < XC,
// TK * XC >= chunks per row) for every row it ever computes, so it loads its
// XC chunks of x (XC * 4 * EPW f32) into registers once (X_STAGE: copied
// through workgroup memory with coalesced loads first). The workgroup is
// persistent: workgroup w computes the row blocks b = w, w + PWG, ... (MAXB
// at most), NR = NG * RPT rows each (team g: rows g * RPT .. + RPT), and
// with PREFETCH issues block b + PWG's weight and scale loads before the
// math of block b, so HBM streams while it computes. A lane's per-row sums
// are reduced over its subgroup with SGW-lane shuffles (RPT values halved
// to one per lane first: log2 exchanges of half the values each), and the
// subgroup sums (NB = TK / SGW per row) parked in workgroup memory per
// block: the streaming loop has no barrier. After the last block the
// workgroup sums them and runs the epilogue block by block
// (store(lid, b), the epilogue's workgroup index = the block); with
// STORE_EACH it does so after each block instead (two barriers per block in
// the loop, no tail; the prefetched loads stay in flight across them).
// Needs ROWS == 1 and what linear_gemv.wgsl needs (K % (4 * EPW) == 0,
// GROUP % (4 * EPW) == 0, xOff % 4 == 0); kernels/linear.ts also checks the
// registers (XC * 4 * EPW <= 64 f32) and workgroup memory (MAXB * NR * NB f32).
//
// Prepended by kernels/linear.ts (besides linear_gemv_common.wgsl's):
//   XC, PWG (workgroups launched), MAXB (= ceil(blocks / PWG)), PREFETCH, STORE_EACH, X_STAGE, HALVE
//   (exchanges before the butterfly: min(log2 RPT, log2 SGW), 0 where RPT is not a power of two).
// Workgroup: TK * NG threads. Dispatch: PWG workgroups over (x, y) (extra ones return).
// Precision: exact dequantization, f32 FMA (four chains per chunk), each
// chunk's raw dot product scaled once; sums in a fixed order.
//
// Bindings (plus those of linear_gemv_common.wgsl):
//   x:  (xOff + K) f32 as vec4
//   w0: weight rows of half 0, vec4<u32> chunks; w1: half 1 (GATE_UP) or = w0

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;

const CH: u32 = 4u * EPW;        // elements per chunk
const NB: u32 = TK / SGW;        // subgroup sums per row
const NV: u32 = RPT * XC;        // chunks per lane and block
const NF: u32 = RPT >> HALVE;    // row sums a lane holds after the halving
const XCS: u32 = EPW + select(1u, 0u, EPW == 1u); // vec4 per staged x chunk (padded: a quarter-warp's reads hit every bank)
var<workgroup> xst: array<vec4<f32>, select(1u, TK * XCS, X_STAGE)>; // [TK][XCS] one pass of x (X_STAGE)
const SLOTS: u32 = select(MAXB, 1u, STORE_EACH);
var<workgroup> part: array<f32, SLOTS * NR * NB>; // [block of this workgroup (STORE_EACH: the current)][NR][NB]

fn load_w(h: u32, i: u32) -> vec4<u32> {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

struct Blk {
  w: array<vec4<u32>, NV>, // [RPT][XC]
  s: array<f32, NV>,
}

// The lane's chunks of block b (rows past n read row 0 of block 0: results dropped at the store).
fn load_block(b: u32, grp: u32, lane: u32, nch: u32, gpr: u32) -> Blk {
  var k: Blk;
  for (var i = 0u; i < RPT; i++) {
    var r = weight_row(b, grp * RPT + i);
    if (r.z == 0u) { r = weight_row(0u, 0u); }
    for (var j = 0u; j < XC; j++) {
      let c = min(lane + j * TK, nch - 1u);
      k.w[i * XC + j] = load_w(r.x, r.y * nch + c);
      k.s[i * XC + j] = load_scale(r.x, r.y * gpr + (c * CH) / GROUP);
    }
  }
  return k;
}

// Sums block b's subgroup sums (slot) into res and runs the epilogue; uniform control flow.
fn finish_block(slot: u32, b: u32, lid: u32) {
  if (lid < NR) {
    var s = 0.0;
    for (var t = 0u; t < NB; t++) { s += part[(slot * NR + lid) * NB + t]; }
    res[lid] = s;
  }
  workgroupBarrier();
  store(lid, b);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= PWG) { return; } // grid padding (uniform per workgroup)
  let lane = lid % TK;
  let grp = lid / TK;
  let nch = p.k / CH;
  let gpr = p.k / GROUP;
  let per = select(NR, HALF, GATE_UP || ROPE_ROWS);
  let nBlocks = (p.n + per - 1u) / per;

  var cur = load_block(min(w, nBlocks - 1u), grp, lane, nch, gpr);
  // x: the lane's chunks (zero past K), loaded while the first block streams in.
  // X_STAGE: through workgroup memory, TK chunks a pass, so the global loads are coalesced
  // (a lane's own chunk is 16 * EPW bytes past its neighbour's: 32 cache lines per warp load).
  var xv: array<vec4<f32>, XC * EPW>;
  var live: array<bool, XC>;
  for (var j = 0u; j < XC; j++) {
    let c = lane + j * TK;
    live[j] = c < nch;
    let cc = min(c, nch - 1u);
    if (X_STAGE) {
      workgroupBarrier(); // the previous pass's reads are done
      let nv = min(TK, nch - min(nch, j * TK)) * EPW; // vec4 of x in this pass
      for (var t = lid; t < nv; t += WG) { xst[(t / EPW) * XCS + t % EPW] = x[p.xOff / 4u + j * TK * EPW + t]; }
      workgroupBarrier();
      for (var v = 0u; v < EPW; v++) { xv[j * EPW + v] = select(vec4<f32>(0.0), xst[lane * XCS + v], live[j]); }
    } else {
      for (var v = 0u; v < EPW; v++) { xv[j * EPW + v] = select(vec4<f32>(0.0), x[p.xOff / 4u + cc * EPW + v], live[j]); }
    }
  }

  for (var bl = 0u; bl < MAXB; bl++) {
    let b = w + bl * PWG;
    if (b >= nBlocks) { break; }
    var nxt: Blk;
    let more = b + PWG < nBlocks;
    if (PREFETCH && more) { nxt = load_block(b + PWG, grp, lane, nch, gpr); }
    var acc: array<f32, RPT>;
    for (var i = 0u; i < RPT; i++) {
      var a = 0.0;
      for (var j = 0u; j < XC; j++) {
        let wv = cur.w[i * XC + j];
        var d = vec4<f32>(0.0);
        for (var wj = 0u; wj < 4u; wj++) {
          let dv = dec_word(wv[wj]);
          for (var e = 0u; e < EPW; e++) {
            let el = wj * EPW + e;
            d[el % 4u] = fma(dv[e], xv[j * EPW + el / 4u][el % 4u], d[el % 4u]);
          }
        }
        a += select(0.0, ((d.x + d.y) + (d.z + d.w)) * cur.s[i * XC + j], live[j]);
      }
      acc[i] = a;
    }
    // Halve: after exchange h (offset 2^h) a lane keeps half its values, the rows with bit
    // (log2 RPT - 1 - h) equal to lane bit h; then a butterfly over the remaining lane bits.
    var rowOff = 0u;
    for (var h = 0u; h < HALVE; h++) {
      let o = 1u << h;
      let up = (lane & o) != 0u;
      let n = RPT >> (h + 1u);
      for (var i = 0u; i < n; i++) {
        let keep = select(acc[i], acc[i + n], up);
        let send = select(acc[i + n], acc[i], up);
        acc[i] = keep + sg_xor(send, o);
      }
      rowOff += select(0u, n, up);
    }
    for (var o = 1u << HALVE; o < SGW; o = o << 1u) {
      for (var i = 0u; i < NF; i++) { acc[i] += sg_xor(acc[i], o); }
    }
    if (lane % SGW < (1u << HALVE)) {
      for (var i = 0u; i < NF; i++) {
        part[(select(bl, 0u, STORE_EACH) * NR + grp * RPT + rowOff + i) * NB + lane / SGW] = acc[i];
      }
    }
    // (STORE_EACH: the next block's part / res writes come after this block's reads: barriers between.)
    if (STORE_EACH) {
      workgroupBarrier();
      finish_block(0u, b, lid);
    }
    if (PREFETCH) { cur = nxt; } else if (more) { cur = load_block(b + PWG, grp, lane, nch, gpr); }
  }

  if (STORE_EACH) { return; }
  workgroupBarrier();
  for (var bl = 0u; bl < MAXB; bl++) {
    let b = w + bl * PWG;
    if (b >= nBlocks) { break; }
    finish_block(bl, b, lid);
    workgroupBarrier();
  }
}
