// Causal flash attention for prefill (tiled, online softmax, f32 math), GQA-aware.
//
// One source, four modes (const MODE, set by the launcher's header):
//   0 dense:   query i attends keys [0, i]
//   1 window:  keys (i - w, i], then merges (log-sum-exp) with the stripe pass's
//              result already in `out`/`lse` (SampleAttention step 4)
//   2 stripes: keys sel[0..count) (sorted column ids of the KV group) with
//              j <= i - w; writes the normalized output and its lse (log2 units)
//   3 sample:  no V; for the sampled query rows: lse over [0, i] and the mass
//              inside the window (i - w, i]; writes (lse, windowMass) pairs
//
// Workgroup: QR query rows x TPR threads (QR * TPR invocations). A "query row" is
// one (position, head) pair of one KV group: t = tile * QR + r, position t / group,
// head kvHead * group + t % group (group = nHeads / nKvHeads), so the group's query heads sharing a KV head
// share every K/V tile load (no K/V duplication). Each thread holds NV vec4s of
// the row's q and o (threads of a row split headDim, interleaved by vec4) and
// reduces partial dot products with subgroup shuffles (TPR = 1 without subgroups).
// K/V tiles of BC keys are staged in workgroup memory (2 * BC * DVP vec4s).
// Dispatch: (ceil(rowsInPass * group / QR), nKvHeads, 1).
// Precision: f32 loads (f16 KV unpacked in the loader), f32 accumulation;
// exp2 with q pre-scaled by log2(e) / sqrt(headDim).
//
// Bindings (header declares kc/vc at 1/2 and the Params struct at 6):
//   q:   (rows, nHeads * HEAD_DIM) f32, RoPE applied
//   kc:  (nKvHeads, capacity, HEAD_DIM) f32 or f16 pairs (u32)
//   vc:  (nKvHeads, capacity, HEAD_DIM)
//   out: (rows, nHeads * HEAD_DIM) f32
//   lse: modes 1/2: (rows, nHeads) f32 log2-sum-exp; mode 3: (nHeads, nSamp, 2)
//   sel: (nKvHeads, capacity + 1) u32: [count, col ids ascending...]

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read> sel: array<u32>;

var<workgroup> ks: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> vs: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> kidx: array<u32, BC>;            // key positions of the tile
var<workgroup> wcount: u32;

const NEG_INF: f32 = -3.0e38;

@compute @workgroup_size(QR * TPR)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kvh = wg.y;
  let r = lid / TPR;
  let lane = lid % TPR;
  let nRowsPass = select(p.rows, p.nSamp, MODE == 3u);
  // Heaviest (latest) tiles first, so the causal imbalance does not leave a tail.
  let nTiles = (nRowsPass * p.group + QR - 1u) / QR;
  let t0 = (nTiles - 1u - wg.x) * QR;
  let t = t0 + r;
  let valid = t < nRowsPass * p.group;
  let tc = min(t, nRowsPass * p.group - 1u);
  let head = kvh * p.group + tc % p.group;
  var loc = tc / p.group;
  if (MODE == 3u) { loc = sample_row(loc); }
  let i = p.pos + loc; // absolute position of this query row
  // Absolute positions spanned by the workgroup (rows are sorted ascending).
  var firstLocal = t0 / p.group;
  var lastLocal = min(nRowsPass * p.group - 1u, t0 + QR - 1u) / p.group;
  if (MODE == 3u) { firstLocal = sample_row(firstLocal); lastLocal = sample_row(lastLocal); }
  let iMin = p.pos + firstLocal;
  let iMax = p.pos + lastLocal;

  // q slice in registers, pre-scaled so scores are in log2 units.
  var qv: array<vec4<f32>, NV>;
  var o: array<vec4<f32>, NV>;
  let qBase = loc * p.nHeads * HEAD_DIM + head * HEAD_DIM;
  for (var v = 0u; v < NV; v++) {
    let d = (lane + v * TPR) * 4u;
    var x = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) { if (d + c < HEAD_DIM) { x[c] = q[qBase + d + c]; } }
    qv[v] = x * p.scale;
    o[v] = vec4<f32>(0.0);
  }
  var m = NEG_INF;
  var l = 0.0;
  var lw = 0.0; // mode 3: mass inside the window

  // Key range [kBegin, kEnd) in tile coordinates (positions, or list slots in mode 2).
  var kBegin = 0u;
  var kEnd = iMax + 1u;
  var count = 0u;
  if (MODE == 1u) { kBegin = select(0u, iMin + 1u - p.window, iMin + 1u > p.window); }
  if (MODE == 2u) {
    if (lid == 0u) { wcount = sel[kvh * (p.capacity + 1u)]; }
    count = workgroupUniformLoad(&wcount);
    kEnd = count;
  }
  let selBase = kvh * (p.capacity + 1u) + 1u;
  let kvBase = kvh * p.capacity;

  for (var k0 = kBegin; k0 < kEnd; k0 += BC) {
    workgroupBarrier();
    if (lid < BC) {
      var j = k0 + lid;
      if (MODE == 2u) { j = select(0xffffffffu, sel[selBase + min(k0 + lid, count - 1u)], k0 + lid < kEnd); }
      else if (j >= kEnd) { j = 0xffffffffu; }
      kidx[lid] = j;
    }
    if (MODE == 2u) {
      // Sorted ids: stop once the tile starts past the last stripe any row here can use.
      let first = workgroupUniformLoad(&kidx[0]);
      if (first + p.window > iMax) { break; }
    }
    workgroupBarrier();
    for (var e = lid; e < BC * DVP; e += QR * TPR) {
      let c = e / DVP;
      let d4 = e % DVP;
      let j = kidx[c];
      let jj = select(0u, j, j != 0xffffffffu);
      ks[e] = load_k4(kvBase + jj, d4);
      if (MODE != 3u) { vs[e] = load_v4(kvBase + jj, d4); }
    }
    workgroupBarrier();

    var s: array<f32, BC>;
    var tileMax = NEG_INF;
    for (var c = 0u; c < BC; c++) {
      var part = 0.0;
      for (var v = 0u; v < NV; v++) { part += dot(qv[v], ks[c * DVP + lane + v * TPR]); }
      let sc = row_sum(part);
      let j = kidx[c];
      var ok = j <= i; // also false for the 0xffffffff padding
      if (MODE == 1u) { ok = ok && j + p.window > i; }
      if (MODE == 2u) { ok = j != 0xffffffffu && j + p.window <= i; }
      s[c] = select(NEG_INF, sc, ok);
      tileMax = max(tileMax, s[c]);
    }
    if (tileMax > NEG_INF) {
      let mNew = max(m, tileMax);
      let corr = exp2(m - mNew);
      l *= corr;
      lw *= corr;
      for (var v = 0u; v < NV; v++) { o[v] *= corr; }
      for (var c = 0u; c < BC; c++) {
        let pc = select(0.0, exp2(s[c] - mNew), s[c] > NEG_INF);
        l += pc;
        if (MODE == 3u) {
          if (kidx[c] + p.window > i) { lw += pc; }
        } else {
          for (var v = 0u; v < NV; v++) { o[v] += pc * vs[c * DVP + lane + v * TPR]; }
        }
      }
      m = mNew;
    }
  }

  if (!valid) { return; }
  if (MODE == 3u) {
    if (lane == 0u) {
      let k = tc / p.group;
      let at = (head * p.nSamp + k) * 2u;
      lse[at] = m + log2(l);
      lse[at + 1u] = lw / l;
    }
    return;
  }
  let lseIdx = loc * p.nHeads + head;
  var wOwn = 1.0 / max(l, 1e-30);
  var wPrev = 0.0;
  if (MODE == 1u) {
    // out/lse hold the stripe pass's normalized result (lse = NEG_INF when it had no keys).
    let lsePrev = lse[lseIdx];
    let lseOwn = m + log2(l);
    let mm = max(lsePrev, lseOwn);
    let a = select(0.0, exp2(lsePrev - mm), lsePrev > NEG_INF);
    let b = exp2(lseOwn - mm);
    wPrev = a / (a + b);
    wOwn = b / (a + b) / l;
  }
  if (MODE == 2u && lane == 0u) { lse[lseIdx] = select(NEG_INF, m + log2(l), l > 0.0); }
  for (var v = 0u; v < NV; v++) {
    let d = (lane + v * TPR) * 4u;
    for (var c = 0u; c < 4u; c++) {
      if (d + c < HEAD_DIM) {
        let at = qBase + d + c;
        var y = o[v][c] * wOwn;
        if (MODE == 1u) { y += wPrev * out[at]; }
        out[at] = y;
      }
    }
  }
}
