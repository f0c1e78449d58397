// SampleAttention stage 2, selection, one workgroup per KV group: the smallest
// set I of columns whose group scores, added to the window mass W of the
// sampled rows, reach alpha * nSamp * group (the CRA goal summed over the
// group's heads); then I is compacted into a sorted id list, and the stats of
// this encode are written (|I|, stripe area, dense flag, CRA of each head).
//
// Dense fallback: when the stripe area of the selection reaches p.fallbackSel (the
// launcher's denseFallbackArea * causal area - window area: stripes plus window would
// cover at least that fraction of the causal area, so sparse cannot win), the group is
// flagged dense: its list holds every column [0, nCols) and the flag word sends it to the dense
// fallback pass (kernels/sample_fallback.wgsl, kernels/attention_prefill.wgsl FALLBACK 1).
//
// Per-head selection (AttentionOptions.selection 'head') runs this kernel unchanged with
// "virtual" params (group 1, nKvHeads = nHeads: one workgroup per query head) and the per-head
// colScores bound as groupScores; stats are then (nHeads, 4). The flagged units' id list after
// the flags is written by kernels/sample_fallback.wgsl.
//
// Selection is a threshold search: the largest tau with
// sum_{g[j] >= tau} g[j] >= goal, by bisection over the bit patterns of
// non-negative f32 (monotonic in value), 32 rounds of a workgroup reduction.
// goal <= 0 selects nothing; goal above the total mass selects every
// column in [0, nCols) (alpha = 1 then equals dense).
// Workgroup: WG threads (override; the launcher sets 1024 where the device allows it: more
// threads keep more column loads in flight in the 32 bisection rounds, the phase's cost at 128K;
// each round's column loop takes 4 columns per step for the same reason); the compaction gives
// each thread a contiguous run of columns.
// Dispatch: (nKvHeads, 1, 1). Precision: f32 sums.
//
// Bindings (Params at 6 from the header):
//   sel:         (nKvHeads, capacity + 1) u32: [count, ids ascending...], then (nKvHeads) u32 dense flags
//   rowStats:    (nHeads, nSamp, 2) f32: lse, window mass
//   colScores:   (nHeads, capacity) f32
//   groupScores: (nKvHeads, capacity) f32
//   stats:       f32 at statsOffset: (nKvHeads, 3 + group): |I|, stripe area, dense flag, CRA per head

@group(0) @binding(0) var<storage, read_write> sel: array<u32>;
@group(0) @binding(3) var<storage, read> rowStats: array<f32>;
@group(0) @binding(4) var<storage, read> colScores: array<f32>;
@group(0) @binding(5) var<storage, read> groupScores: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<f32>;
// (nHeads, 2) u32: top-up threshold bits, 'every column' flag of each head (TAU_PASS writes, TOPUP reads)
@group(0) @binding(8) var<storage, read_write> tauBuf: array<u32>;

override WG: u32 = 256u;
// TOPUP (AttentionOptions.selection 'topup'): the group's summed-score set (as without it), then
// each head whose CRA on the sampled rows stays under alpha with that set gets its own smallest
// top-up (its largest remaining colScores until it reaches alpha), so every head reaches alpha,
// as with per-head selection, while the group still shares one K/V column set. Two dispatches:
// TAU_PASS first, with the per-head "virtual" params (group 1, kvDiv = the real group, one
// workgroup per query head, the real groupScores bound): each head's top-up threshold into
// tauBuf (the group threshold is found again by each of its heads, in parallel); then the TOPUP
// dispatch (one workgroup per KV group) lists the group set plus every head's top-up.
override TOPUP: bool = false;
override TAU_PASS: bool = false;
const MAXG: u32 = 64u; // group size bound of TOPUP (ChatGLM2-6B: 16)
var<workgroup> red: array<f32, WG>;
var<workgroup> scan: array<u32, WG>;

fn wg_sum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}

fn wg_max(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}

// Threshold search over x_j, j in [0, n): the largest tau (as f32 bits) with
// sum_{x_j >= tau} x_j >= goal; +inf bits when goal <= 0 (nothing), 0 when the total is at most
// the goal (every column: all = true). Without a head (head = NO_HEAD) x_j = groupScores[base + j];
// with one, the top-up's x_j = colScores[head * capacity + j] for the columns outside the group's
// set (groupScores[base + j] < tauG), else 0.
struct Tau { bits: u32, all: bool }
const NO_HEAD: u32 = 0xffffffffu;

fn xval(base: u32, j: u32, head: u32, tauG: f32) -> f32 {
  if (head == NO_HEAD) { return groupScores[base + j]; }
  return select(colScores[head * p.capacity + j], 0.0, groupScores[base + j] >= tauG);
}

fn threshold(lid: u32, base: u32, n: u32, goal: f32, head: u32, tauG: f32) -> Tau {
  var part = 0.0;
  var mx = 0.0;
  for (var j = lid; j < n; j += WG) { let x = xval(base, j, head, tauG); part += x; mx = max(mx, x); }
  let total = wg_sum(lid, part);
  let maxScore = wg_max(lid, mx);
  if (goal <= 0.0) { return Tau(0x7f800000u, false); }
  if (total <= goal) { return Tau(0u, true); }
  var lo = 0u;
  var hi = bitcast<u32>(maxScore) + 1u;
  for (var it = 0u; it < 32u; it++) {
    let mid = lo + (hi - lo) / 2u;
    let t = bitcast<f32>(mid);
    // 4 independent loads and sums per step (more loads in flight per thread).
    var s = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var j = lid;
    for (; j + 3u * WG < n; j += 4u * WG) {
      let x0 = xval(base, j, head, tauG);
      let x1 = xval(base, j + WG, head, tauG);
      let x2 = xval(base, j + 2u * WG, head, tauG);
      let x3 = xval(base, j + 3u * WG, head, tauG);
      s += select(0.0, x0, x0 >= t);
      s1 += select(0.0, x1, x1 >= t);
      s2 += select(0.0, x2, x2 >= t);
      s3 += select(0.0, x3, x3 >= t);
    }
    for (; j < n; j += WG) { let x = xval(base, j, head, tauG); if (x >= t) { s += x; } }
    s += (s1 + s2) + s3;
    let sum = wg_sum(lid, s);
    if (hi - lo > 1u) { if (sum >= goal) { lo = mid; } else { hi = mid; } }
  }
  return Tau(lo, false);
}

// Per-head top-up thresholds of TOPUP (+inf: the head adds nothing).
var<workgroup> taus: array<f32, MAXG>;

fn selected(j: u32, all: bool, gBase: u32, tauF: f32, kvh: u32) -> bool {
  if (all) { return true; }
  if (groupScores[gBase + j] >= tauF) { return true; }
  if (!TOPUP) { return false; }
  for (var g = 0u; g < min(p.group, MAXG); g++) {
    if (colScores[(kvh * p.group + g) * p.capacity + j] >= taus[g]) { return true; }
  }
  return false;
}

// This thread's share of a head's window mass over the sampled rows (rowStats column 1).
fn window_part(lid: u32, head: u32) -> f32 {
  var part = 0.0;
  for (var k = lid; k < p.nSamp; k += WG) { part += rowStats[(head * p.nSamp + k) * 2u + 1u]; }
  return part;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kvh = wg.x;
  let n = p.nCols;
  let per = (n + WG - 1u) / WG;
  let c0 = min(n, lid * per);
  let c1 = min(n, c0 + per);
  let gBase = kvh * p.capacity;

  // Window mass of the sampled rows, per head and for the group.
  var wTotal = 0.0;
  for (var g = 0u; g < p.group; g++) { wTotal += wg_sum(lid, window_part(lid, kvh * p.group + g)); }
  var all = false;
  if (TAU_PASS) {
    // Virtual params: kvh is a query head, wTotal its window mass; its KV group kvg has p.kvDiv heads.
    let G = p.kvDiv;
    let kvg = kvh / G;
    var wGroup = 0.0;
    for (var g = 0u; g < G; g++) { wGroup += wg_sum(lid, window_part(lid, kvg * G + g)); }
    let base = kvg * p.capacity;
    let tg = threshold(lid, base, n, p.alpha * f32(p.nSamp * G) - wGroup, NO_HEAD, 0.0);
    var t = Tau(0x7f800000u, false);
    if (!tg.all) {
      // The head's mass in the group's set, then its top-up over the other columns.
      let tauG = bitcast<f32>(tg.bits);
      var part = 0.0;
      for (var j = lid; j < n; j += WG) { if (groupScores[base + j] >= tauG) { part += colScores[kvh * p.capacity + j]; } }
      let inGroup = wg_sum(lid, part);
      t = threshold(lid, base, n, p.alpha * f32(p.nSamp) - wTotal - inGroup, kvh, tauG);
    }
    if (lid == 0u) {
      tauBuf[2u * kvh] = t.bits;
      tauBuf[2u * kvh + 1u] = select(0u, 1u, t.all);
    }
    return;
  }
  let t = threshold(lid, gBase, n, p.alpha * f32(p.nSamp * p.group) - wTotal, NO_HEAD, 0.0);
  let tauF = bitcast<f32>(t.bits);
  all = t.all;
  if (TOPUP) {
    if (lid < min(p.group, MAXG)) { taus[lid] = bitcast<f32>(tauBuf[2u * (kvh * p.group + lid)]); }
    var anyAll = 0u;
    for (var g = 0u; g < p.group; g++) { anyAll |= tauBuf[2u * (kvh * p.group + g) + 1u]; }
    all = all || anyAll != 0u;
    workgroupBarrier();
  }

  // Compaction: count per thread, exclusive scan, write ids in order.
  var cnt = 0u;
  var area = 0.0;
  let end = p.pos + p.rows;
  for (var j = c0; j < c1; j++) {
    if (selected(j, all, gBase, tauF, kvh)) {
      cnt++;
      area += f32(end - max(p.pos, min(end, j + p.window)));
    }
  }
  // Stripe area of the selection (rows j + w <= i of each column); at or above the
  // fallback bound the group runs dense and lists every column.
  let areaSel = wg_sum(lid, area);
  let flagged = areaSel >= p.fallbackSel;
  if (flagged) {
    all = true;
    cnt = c1 - c0;
  }
  scan[lid] = cnt;
  workgroupBarrier();
  for (var s = 1u; s < WG; s <<= 1u) {
    var add = 0u;
    if (lid >= s) { add = scan[lid - s]; }
    workgroupBarrier();
    scan[lid] += add;
    workgroupBarrier();
  }
  let count = scan[WG - 1u];
  var at = kvh * (p.capacity + 1u) + 1u + scan[lid] - cnt;
  for (var j = c0; j < c1; j++) {
    if (selected(j, all, gBase, tauF, kvh)) { sel[at] = j; at++; }
  }
  let sBase = p.statsOffset + kvh * (3u + p.group);
  if (lid == 0u) {
    sel[kvh * (p.capacity + 1u)] = count;
    sel[p.nKvHeads * (p.capacity + 1u) + kvh] = select(0u, 1u, flagged);
    stats[sBase] = f32(count);
    stats[sBase + 1u] = areaSel;
    stats[sBase + 2u] = select(0.0, 1.0, flagged);
  }
  // CRA on the sampled rows, per head: (window mass + selected column mass) / nSamp.
  for (var g = 0u; g < p.group; g++) {
    let head = kvh * p.group + g;
    let wpart = window_part(lid, head);
    var cpart = 0.0;
    for (var j = c0; j < c1; j++) {
      if (selected(j, all, gBase, tauF, kvh)) { cpart += colScores[head * p.capacity + j]; }
    }
    let cra = wg_sum(lid, wpart + cpart);
    if (lid == 0u) { stats[sBase + 3u + g] = cra / f32(max(p.nSamp, 1u)); }
  }
}
