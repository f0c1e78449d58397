// SampleAttention stage 2, selection, one workgroup per KV group: the smallest
// set I of columns whose group scores, added to the window mass W of the
// sampled rows, reach alpha * nSamp * group (the CRA goal summed over the
// group's heads); then I is compacted into a sorted id list, and the stats of
// this encode are written (|I|, stripe area, dense flag, CRA of each head).
//
// Dense fallback: when the stripe area of the selection reaches p.fallbackSel (the
// launcher's denseFallbackArea * causal area - window area: stripes plus window would
// cover at least that fraction of the causal area, so sparse cannot win), the group is
// flagged dense: its list holds every column [0, nCols) (the split path then computes
// dense attention) and the flag word tells the fused pass to run [0, i] without stripes.
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
// Workgroup: WG threads (override, default 256; SamplingOptions.selectThreads sets it for the
// per-group selection: more threads keep more column loads in flight in the 32 bisection rounds,
// the phase's cost at 128K; U4 unrolls each round's column loop by 4 for the same reason; the
// per-head pipeline of src/attention/index.ts keeps the defaults);
// the compaction gives each a contiguous run of columns.
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

override WG: u32 = 256u;
override U4: bool = false; // bisection rounds: 4 columns per loop step (SamplingOptions.selectUnroll)
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
  for (var g = 0u; g < p.group; g++) {
    let head = kvh * p.group + g;
    var part = 0.0;
    for (var k = lid; k < p.nSamp; k += WG) { part += rowStats[(head * p.nSamp + k) * 2u + 1u]; }
    wTotal += wg_sum(lid, part);
  }
  let goal = p.alpha * f32(p.nSamp * p.group) - wTotal;

  // Sums whose order does not matter read the columns interleaved (coalesced).
  var part = 0.0;
  var mx = 0.0;
  for (var j = lid; j < n; j += WG) { let x = groupScores[gBase + j]; part += x; mx = max(mx, x); }
  let total = wg_sum(lid, part);
  let maxScore = wg_max(lid, mx);

  var all = false;
  var tau = 0x7f800000u; // +inf: nothing selected
  if (goal > 0.0) {
    if (total <= goal) {
      all = true;
    } else {
      var lo = 0u;
      var hi = bitcast<u32>(maxScore) + 1u;
      for (var it = 0u; it < 32u; it++) {
        let mid = lo + (hi - lo) / 2u;
        let t = bitcast<f32>(mid);
        var s = 0.0;
        if (U4) {
          // 4 independent loads and sums per step (more loads in flight per thread).
          var s1 = 0.0;
          var s2 = 0.0;
          var s3 = 0.0;
          var j = lid;
          for (; j + 3u * WG < n; j += 4u * WG) {
            let x0 = groupScores[gBase + j];
            let x1 = groupScores[gBase + j + WG];
            let x2 = groupScores[gBase + j + 2u * WG];
            let x3 = groupScores[gBase + j + 3u * WG];
            s += select(0.0, x0, x0 >= t);
            s1 += select(0.0, x1, x1 >= t);
            s2 += select(0.0, x2, x2 >= t);
            s3 += select(0.0, x3, x3 >= t);
          }
          for (; j < n; j += WG) { let x = groupScores[gBase + j]; if (x >= t) { s += x; } }
          s += (s1 + s2) + s3;
        } else {
          for (var j = lid; j < n; j += WG) { let x = groupScores[gBase + j]; if (x >= t) { s += x; } }
        }
        let sum = wg_sum(lid, s);
        if (hi - lo > 1u) { if (sum >= goal) { lo = mid; } else { hi = mid; } }
      }
      tau = lo;
    }
  }
  let tauF = bitcast<f32>(tau);

  // Compaction: count per thread, exclusive scan, write ids in order.
  var cnt = 0u;
  var area = 0.0;
  let end = p.pos + p.rows;
  for (var j = c0; j < c1; j++) {
    if (all || groupScores[gBase + j] >= tauF) {
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
    if (all || groupScores[gBase + j] >= tauF) { sel[at] = j; at++; }
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
    var wpart = 0.0;
    for (var k = lid; k < p.nSamp; k += WG) { wpart += rowStats[(head * p.nSamp + k) * 2u + 1u]; }
    var cpart = 0.0;
    for (var j = c0; j < c1; j++) {
      if (all || groupScores[gBase + j] >= tauF) { cpart += colScores[head * p.capacity + j]; }
    }
    let cra = wg_sum(lid, wpart + cpart);
    if (lid == 0u) { stats[sBase + 3u + g] = cra / f32(max(p.nSamp, 1u)); }
  }
}
