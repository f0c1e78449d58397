// Decode projection of the attention output with the attention merge in its
// prologue (the 'merged' decode plan: the wo projection; ROWS = 1): every
// workgroup first merges the split-K partials of the decode attention
// (kernels/attention_decode*.wgsl: unnormalized outputs O and (m, l) per query
// head and split, read from L2) into the whole attention row
//   att[h, :] = sum_s exp(m_hs - M_h) O_hs / sum_s exp(m_hs - M_h) l_hs,  M_h = max_s m_hs
// held in workgroup memory, then streams its weight rows as linear_gemv.wgsl
// does with x read from there (no attention-merge dispatch, no att buffer).
// The first block's weight loads are issued before the merge, so they overlap.
// Needs what linear_gemv.wgsl needs (K % (4 * EPW) == 0, GROUP % (4 * EPW) == 0),
// K = nHeads * headDim, headDim % 4 == 0, at most MS splits, and the merged row
// in workgroup memory. Prepended by the launcher: XM_K (= K), XM_NH (nHeads),
// MS (most splits), XM_VEC4 (K / (4 EPW) chunks of EPW + 1 vec4: the padding
// spreads a quarter-warp's reads over the banks).
//
// Workgroup: TK * NG threads (linear_gemv_common.wgsl), NR weight rows. Dispatch: ceil(n / NR) over (x, y).
// Precision: as the merge kernel (f32; exp of max-shifted maxima) and linear_gemv.wgsl.
//
// Bindings (plus those of linear_gemv_common.wgsl and the epilogue's 8-10):
//   partO:  (nHeads, nSplits, headDim / 4) vec4 f32 (row 0 of the attention's partials)
//   w0, w1: weight rows, vec4<u32> chunks (w1 = w0)
//   partML: (nHeads, nSplits) vec2 (m, l)
//   ap:     the attention's params (nHeads, nKvHeads, headDim, capacity, splitLen, nSplits, qg, scale)
//   mstep:  pos (kvLen = pos + 1)

struct AttnParams {
  nHeads: u32, nKvHeads: u32, headDim: u32, capacity: u32,
  splitLen: u32, nSplits: u32, qg: u32, scale: f32,
}
struct MStep { pos: u32, rows: u32, kvLen: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> partO: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w1: array<vec4<u32>>;
@group(0) @binding(11) var<storage, read> partML: array<vec2<f32>>;
@group(0) @binding(12) var<uniform> ap: AttnParams;
@group(0) @binding(13) var<uniform> mstep: MStep;

const CH: u32 = 4u * EPW;                    // elements per chunk
const PAD: u32 = select(1u, 0u, EPW == 1u);
const CS: u32 = EPW + PAD;                   // vec4 per staged chunk
const K4: u32 = XM_K / 4u;                   // vec4 of the attention row
const EPT: u32 = (K4 + WG - 1u) / WG;        // vec4 per thread in the merge
var<workgroup> xm: array<vec4<f32>, XM_VEC4>; // [K / CH][CS] merged attention row
var<workgroup> wts: array<f32, XM_NH * MS>;   // [nHeads][MS] split weights exp(m - M) / L

fn load_w(h: u32, i: u32) -> vec4<u32> {
  if (h == 0u) { return w0[i]; }
  return w1[i];
}

// The merged attention row into xm (uniform control flow: barriers). The
// split loops have the constant trip count MS (the launcher caps the
// attention's splits at MS), so their loads go out together.
fn merge_x(lid: u32) {
  let kvLen = mstep.pos + 1u;
  let nS = min(ap.nSplits, (kvLen + ap.splitLen - 1u) / ap.splitLen);
  let stride = ap.nSplits;
  for (var h = lid; h < XM_NH; h += WG) {
    var ml: array<vec2<f32>, MS>;
    var mx = -1e30;
    for (var s = 0u; s < MS; s++) {
      ml[s] = select(vec2<f32>(-1e30, 0.0), partML[h * stride + min(s, nS - 1u)], s < nS);
      mx = max(mx, ml[s].x);
    }
    var l = 0.0;
    for (var s = 0u; s < MS; s++) { l += ml[s].y * exp(ml[s].x - mx); }
    let inv = 1.0 / l;
    for (var s = 0u; s < MS; s++) { wts[h * MS + s] = select(0.0, exp(ml[s].x - mx) * inv, s < nS); }
  }
  workgroupBarrier();
  let hd4 = ap.headDim / 4u;
  for (var j = 0u; j < EPT; j++) {
    let i = min(lid + j * WG, K4 - 1u); // (threads past the row compute its last vec4 and store nothing)
    let h = i / hd4;
    let c = i % hd4;
    var o = vec4<f32>(0.0);
    for (var s = 0u; s < MS; s++) {
      if (s < nS) { o = fma(vec4<f32>(wts[h * MS + s]), partO[(h * stride + s) * hd4 + c], o); }
    }
    if (lid + j * WG < K4) { xm[(i / EPW) * CS + i % EPW] = o; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wgi = wg.x + wg.y * nwg.x;
  let lane = lid % TK;
  let grp = lid / TK;
  let nch = p.k / CH;
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
  var wv: array<vec4<u32>, UNROLL * RPT>;
  var sc: array<f32, UNROLL * RPT>;
  let step = UNROLL * TK;
  let nIt = (nch + step - 1u) / step; // uniform
  for (var it = 0u; it < nIt; it++) {
    let c0 = it * step + lane;
    for (var u = 0u; u < UNROLL; u++) {
      let c = min(c0 + u * TK, nch - 1u);
      for (var i = 0u; i < RPT; i++) {
        wv[u * RPT + i] = load_w(hs[i], base[i] + c);
        sc[u * RPT + i] = load_scale(hs[i], gbase[i] + (c * CH) / GROUP);
      }
    }
    if (it == 0u) { merge_x(lid); } // the first weights are in flight meanwhile
    for (var u = 0u; u < UNROLL; u++) {
      let cu = c0 + u * TK;
      let c = min(cu, nch - 1u);
      var xs: array<vec4<f32>, EPW>;
      for (var v = 0u; v < EPW; v++) { xs[v] = xm[c * CS + v]; }
      for (var i = 0u; i < RPT; i++) {
        let d = dot_chunk(wv[u * RPT + i], xs) * sc[u * RPT + i];
        acc[i] += select(0.0, d, cu < nch);
      }
    }
  }
  var acc1: array<f32, ROWS * RPT>;
  for (var i = 0u; i < RPT; i++) { acc1[i] = acc[i]; }
  reduce_and_store(acc1, lid, wgi);
}
