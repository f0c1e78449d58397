// Causal flash attention for prefill (tiled, online softmax, f32 math), GQA-aware.
//
// One source, five modes (const MODE, set by the launcher's header):
//   0 dense:   query i attends keys [0, i]
//   1 window:  (split path) keys (i - w, i], then merges (log-sum-exp) with the stripe
//              pass's result already in `out`/`lse` (SampleAttention step 4)
//   2 stripes: (split path) keys sel ids (sorted, of the KV group) with j <= i - w;
//              writes the normalized output and its lse (log2 units)
//   3 sample:  no V; for the sampled query rows: lse over [0, i] and the mass
//              inside the window (i - w, i]; writes (lse, windowMass) pairs
//   4 sparse:  (fused path) the stripe ids j <= i - w, then the window (i - w, i], in ONE
//              online softmax; writes the normalized output (no lse, no read of out).
//              A KV group the selection flagged dense returns at once: the launcher then
//              runs MODE 0 with FALLBACK = 1 over the flagged groups (dispatchWorkgroupsIndirect,
//              y = number of flagged groups, kvh = the flag list in sel; see sample_fallback.wgsl),
//              so the fallback runs the dense kernel's code at its rate.
//              FUSED_V (fused variant): 0 'a' one loop over stripe then contiguous tiles (a per-tile
//              `stripe` branch); 1 'b' the stripe tiles in their own loop (stripe_tiles: tiles
//              whose last id is <= iMin - w skip the per-row mask), then the contiguous tiles in
//              the main loop with `stripe` const false (the dense body).
//
// Tile schedule, shared by every mode: a workgroup runs nS "stripe tiles" (BC selected ids
// each, read from sel) and then nC "contiguous tiles" (keys k0 .. k0 + BC - 1 of the range
// [cBegin, cEnd)). Every mode's mask is one per-row range of tile slots [a, b), computed
// once per tile and held as a bit mask (one u32 per row, BC <= 32): contiguous tiles keep
// the keys [lo_i, i] (lo_i = 0, or i + 1 - w in the window modes); stripe tiles keep the
// ids <= i - w (a prefix: ids are sorted, the padding 0xffffffff is last). The inner loop
// (scores, online softmax, P V) and its per-row state are the same in every mode, so the
// fused pass should run at the dense rate per key (the old split window pass, with its own
// per-key window test and a read-merge epilogue, ran 2.5x slower than dense on the wide tile).
// Each K/V column is used once per row: a stripe inside a row's window fails its bound.
//
// Workgroup: QR query rows, TPR threads per row, each thread holding RPT rows
// (THREADS = QR / RPT * TPR invocations; RPT > 1 reuses every K/V vec4 read from
// workgroup memory for RPT rows, trading registers for shared-memory traffic). A "query row" is
// one (position, head) pair of one KV group: t = tile * QR + r, position t / group,
// head kvHead * group + t % group (group = nHeads / nKvHeads), so the group's query heads sharing a KV head
// share every K/V tile load (no K/V duplication). Each thread holds NV vec4s of
// the row's q and o (threads of a row split headDim, interleaved by vec4) and
// reduces partial dot products with subgroup shuffles (TPR = 1 without subgroups).
// K/V tiles of BC keys are staged in workgroup memory (2 * BC * DVP vec4s); two barriers per tile.
// KV_PREFETCH = 1 (opt-in, tile.pf): each thread loads its KV_NE vec4s of the next K/V tile into registers
// while the current tile is computed (register double buffering), then stores them after the barrier.
// RS = 1 (opt-in, rs_tile below): the row's lanes reduce-scatter the partial scores so each
// lane masks/exponentiates BC / TPR keys, and the probabilities reach every lane through
// workgroup memory (ps, QR * BC f32); slower than RS = 0 on the H100 (11.2 vs 22.5 TFLOP/s).
// Default tiles (tilePlan): 64 rows x 4 lanes x 32 keys, RPT 1; with subgroups of >= 8 lanes
// and headDim > 92: 128 rows x 8 lanes x 8 keys, RPT 4 (H100 D=128 S=16K dense: 23.6 TFLOP/s
// vs 22.5 for 64x8x16x2), except the split window pass (narrow tile).
// Dispatch: (ceil(rowsInPass * group / QR), nKvHeads, 1); FALLBACK = 1: indirect (x, nFlagged, 1).
// Per-head selection runs modes 4 and 0/FALLBACK with "virtual" params: group 1, nKvHeads = nHeads
// (one unit per query head), K/V rows of unit u from KV head u / p.kvDiv (kvDiv = real group).
// Precision: f32 loads (f16 KV unpacked in the loader), f32 accumulation;
// exp2 with q pre-scaled by log2(e) / sqrt(headDim).
//
// Bindings (header declares kc/vc at 1/2 and the Params struct at 6):
//   q:   (rows, nHeads * HEAD_DIM) f32, RoPE applied
//   kc:  (nKvHeads, capacity, HEAD_DIM) f32 or f16 pairs (u32)
//   vc:  (nKvHeads, capacity, HEAD_DIM)
//   out: (rows, nHeads * HEAD_DIM) f32
//   lse: modes 1/2: (rows, nHeads) f32 log2-sum-exp; mode 3: (nHeads, nSamp, 2)
//   sel: (nKvHeads, capacity + 1) u32: [count, col ids ascending...], then (nKvHeads) u32
//        dense flags (1: the group runs dense; its list then holds every column), then
//        (nKvHeads) u32 the flagged groups' ids (first nFlagged valid; FALLBACK = 1 reads it)

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read> sel: array<u32>;

var<workgroup> ks: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> vs: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> kidx: array<u32, BC>;            // key ids of a stripe tile (sorted, PAD last)
var<workgroup> wsched: u32;
var<workgroup> ps: array<vec4<f32>, PSV>;       // RS: probabilities [RPT][QR / RPT][BC] of the tile

const NEG_INF: f32 = -3.0e38;
const PAD: u32 = 0xffffffffu;

// Bits [0, n) set, n <= 32.
fn low_bits(n: u32) -> u32 { return select((1u << n) - 1u, 0xffffffffu, n >= 32u); }

// Entries of the stripe tile's ids kidx[0..BC) that are <= bound (ids ascending, PAD last).
fn count_le(bound: u32) -> u32 {
  var lo = 0u;
  var hi = BC;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (kidx[mid] <= bound) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var kvh = wg.y;
  if (FALLBACK == 1u) { kvh = sel[p.nKvHeads * (p.capacity + 2u) + wg.y]; }
  let slot = lid / TPR;
  let lane = lid % TPR;
  let nRowsPass = select(p.rows, p.nSamp, MODE == 3u);
  let nAll = nRowsPass * p.group;
  // Heaviest (latest) tiles first, so the causal imbalance does not leave a tail.
  let nTiles = (nAll + QR - 1u) / QR;
  let t0 = (nTiles - 1u - wg.x) * QR;
  // Absolute positions spanned by the workgroup (rows are sorted ascending).
  var firstLocal = t0 / p.group;
  var lastLocal = min(nAll - 1u, t0 + QR - 1u) / p.group;
  if (MODE == 3u) { firstLocal = sample_row(firstLocal); lastLocal = sample_row(lastLocal); }
  let iMin = p.pos + firstLocal;
  let iMax = p.pos + lastLocal;

  // Schedule: nUse stripe ids (modes 2 and 4), then the contiguous keys [cBegin, cEnd).
  // A group flagged dense returns here (MODE 4), before loading its q rows.
  let selBase = kvh * (p.capacity + 1u);
  // Contiguous tiles keep [0, i] (dense rows), else (i - w, i]: a const per MODE (a flagged
  // group returns in MODE 4, and MODE 2 never reads the flags).
  let denseRows = MODE == 0u || MODE == 3u;
  var nUse = 0u;
  if (MODE == 2u || MODE == 4u) {
    if (lid == 0u) {
      var n = 0u;
      let flagged = MODE == 4u && sel[p.nKvHeads * (p.capacity + 1u) + kvh] != 0u;
      if (!flagged && iMax >= p.window) {
        // Ids are sorted: count those any row here can use (<= iMax - w).
        let bound = iMax - p.window;
        var hi = sel[selBase];
        while (n < hi) {
          let mid = (n + hi) / 2u;
          if (sel[selBase + 1u + mid] <= bound) { n = mid + 1u; } else { hi = mid; }
        }
      }
      wsched = select(n, PAD, flagged);
    }
    let v = workgroupUniformLoad(&wsched);
    // Flagged dense: the fallback dispatch (MODE 0, FALLBACK 1) computes this group.
    if (v == PAD) { return; }
    nUse = v;
  }

  // This thread's RPT query rows (slot + k * QR / RPT): position, head, q slice
  // in registers pre-scaled so scores are in log2 units, running max/sum.
  var ipos: array<u32, RPT>;
  var qbase: array<u32, RPT>;
  var qv: array<vec4<f32>, RPT * NV>;
  var o: array<vec4<f32>, RPT * NV>;
  var m: array<f32, RPT>;
  var l: array<f32, RPT>;
  var lw: array<f32, RPT>; // mode 3: mass inside the window
  for (var k = 0u; k < RPT; k++) {
    let tc = min(t0 + slot + k * (QR / RPT), nAll - 1u);
    let head = kvh * p.group + tc % p.group;
    var loc = tc / p.group;
    if (MODE == 3u) { loc = sample_row(loc); }
    ipos[k] = p.pos + loc;
    qbase[k] = loc * p.nHeads * HEAD_DIM + head * HEAD_DIM;
    for (var v = 0u; v < NV; v++) {
      let d = (lane + v * TPR) * 4u;
      var x = vec4<f32>(0.0);
      for (var c = 0u; c < 4u; c++) { if (d + c < HEAD_DIM) { x[c] = q[qbase[k] + d + c]; } }
      qv[k * NV + v] = x * p.scale;
      o[k * NV + v] = vec4<f32>(0.0);
    }
    m[k] = NEG_INF;
    l[k] = 0.0;
    lw[k] = 0.0;
  }

  var cBegin = 0u;
  var cEnd = iMax + 1u;
  if (MODE == 2u) { cEnd = 0u; }
  if ((MODE == 1u || MODE == 4u) && !denseRows) { cBegin = select(0u, iMin + 1u - p.window, iMin + 1u > p.window); }
  let nS = (nUse + BC - 1u) / BC;
  let nC = select(0u, (cEnd - cBegin + BC - 1u) / BC, cEnd > cBegin);
  let kvBase = (kvh / p.kvDiv) * p.capacity;
  // RS: after the reduce-scatter this lane holds the scores of keys rsBase + [0, KPL) of the tile.
  var rsBase = 0u;
  var hb = BC;
  for (var o = TPR / 2u; o > 0u; o >>= 1u) { hb >>= 1u; if ((lane & o) != 0u) { rsBase += hb; } }

  // Variant 'b' (FUSED_V 1) runs the stripe tiles in their own loop; the main loop then has only
  // contiguous tiles (`stripe` const false, as in MODE 0).
  let stripesInMain = MODE == 2u || (MODE == 4u && FUSED_V == 0u);
  let nSm = select(0u, nS, stripesInMain);
  if (MODE == 4u && FUSED_V == 1u) {
    stripe_tiles(lid, slot, lane, rsBase, nS, nUse, selBase, kvBase, iMin, &qv, &ipos, &o, &m, &l, &lw);
  }
  // KV_PREFETCH = 1: the next tile's K/V (and ids) are loaded into registers while this one is computed.
  var pk: array<vec4<f32>, KV_NE>;
  var pvv: array<vec4<f32>, KV_NE>;
  var pj: array<u32, KV_NE>;
  let nMain = nSm + nC;
  for (var it = 0u; it < nMain; it++) {
    let stripe = stripesInMain && it < nSm;
    // Stripe tile: list slots k0 + [0, BC); contiguous tile: keys k0 + [0, BC).
    let k0 = select(cBegin + (it - nSm) * BC, it * BC, stripe);
    if (KV_PREFETCH == 1u && it == 0u) { fetch_tile(lid, stripe, k0, nUse, selBase, cEnd, kvBase, &pk, &pvv, &pj); }
    workgroupBarrier();
    if (KV_PREFETCH == 1u) {
      store_tile(lid, stripe, &pk, &pvv, &pj);
    } else {
    for (var e = lid; e < BC * DVP; e += THREADS) {
      let c = e / DVP;
      let d4 = e % DVP;
      var j = k0 + c;
      if (stripe) {
        j = select(PAD, sel[selBase + 1u + min(k0 + c, nUse - 1u)], k0 + c < nUse);
        if (d4 == 0u) { kidx[c] = j; }
      } else if (j >= cEnd) {
        j = PAD;
      }
      let jj = select(0u, j, j != PAD);
      ks[e] = load_k4(kvBase + jj, d4);
      if (MODE != 3u) { vs[e] = load_v4(kvBase + jj, d4); }
    }
    }
    workgroupBarrier();
    if (KV_PREFETCH == 1u && it + 1u < nMain) {
      let st = stripesInMain && it + 1u < nSm;
      fetch_tile(lid, st, select(cBegin + (it + 1u - nSm) * BC, (it + 1u) * BC, st), nUse, selBase, cEnd, kvBase, &pk, &pvv, &pj);
    }
    // Each row's tile slots [a, b) as bits: the only mask of the inner loop.
    var okBits: array<u32, RPT>;
    for (var k = 0u; k < RPT; k++) {
      let i = ipos[k];
      if (stripe) {
        okBits[k] = low_bits(select(0u, count_le(i - p.window), i >= p.window));
      } else {
        // Keys [lo, i]: lo = 0 (dense rows) or i + 1 - w.
        let lo = select(0u, i + 1u - p.window, !denseRows && i + 1u > p.window);
        let a = select(0u, min(lo - k0, BC), lo > k0);
        let b = select(0u, min(i + 1u - k0, BC), i + 1u > k0);
        okBits[k] = low_bits(b) & ~low_bits(a);
      }
    }

    if (RS == 1u) {
      rs_tile(slot, lane, rsBase, k0, &qv, &ipos, &okBits, &o, &m, &l, &lw);
      continue;
    }
    // Scores: each K vec4 read from workgroup memory serves the thread's RPT rows.
    var s: array<f32, RPT * BC>;
    for (var c = 0u; c < BC; c++) {
      var part: array<f32, RPT>;
      for (var k = 0u; k < RPT; k++) { part[k] = 0.0; }
      for (var v = 0u; v < NV; v++) {
        let kk = ks[c * DVP + lane + v * TPR];
        for (var k = 0u; k < RPT; k++) { part[k] += dot(qv[k * NV + v], kk); }
      }
      for (var k = 0u; k < RPT; k++) {
        let sc = row_sum(part[k]);
        s[k * BC + c] = select(NEG_INF, sc, ((okBits[k] >> c) & 1u) != 0u);
      }
    }
    for (var k = 0u; k < RPT; k++) {
      var tileMax = NEG_INF;
      for (var c = 0u; c < BC; c++) { tileMax = max(tileMax, s[k * BC + c]); }
      let mNew = max(m[k], tileMax);
      let corr = select(1.0, exp2(m[k] - mNew), tileMax > NEG_INF);
      l[k] *= corr;
      lw[k] *= corr;
      for (var v = 0u; v < NV; v++) { o[k * NV + v] *= corr; }
      for (var c = 0u; c < BC; c++) {
        let pc = select(0.0, exp2(s[k * BC + c] - mNew), s[k * BC + c] > NEG_INF);
        s[k * BC + c] = pc;
        l[k] += pc;
        if (MODE == 3u && k0 + c + p.window > ipos[k]) { lw[k] += pc; }
      }
      if (tileMax > NEG_INF) { m[k] = mNew; }
    }
    if (MODE != 3u) {
      // P V: each V vec4 read from workgroup memory serves the thread's RPT rows.
      for (var c = 0u; c < BC; c++) {
        for (var v = 0u; v < NV; v++) {
          let vv = vs[c * DVP + lane + v * TPR];
          for (var k = 0u; k < RPT; k++) { o[k * NV + v] += s[k * BC + c] * vv; }
        }
      }
    }
  }

  if (RS == 1u) {
    // Each lane summed its own keys' probabilities.
    for (var k = 0u; k < RPT; k++) { l[k] = row_sum(l[k]); lw[k] = row_sum(lw[k]); }
  }
  for (var k = 0u; k < RPT; k++) {
    let t = t0 + slot + k * (QR / RPT);
    if (t >= nAll) { continue; }
    let head = kvh * p.group + t % p.group;
    if (MODE == 3u) {
      if (lane == 0u) {
        let at = (head * p.nSamp + t / p.group) * 2u;
        lse[at] = m[k] + log2(l[k]);
        lse[at + 1u] = lw[k] / l[k];
      }
      continue;
    }
    let lseIdx = (ipos[k] - p.pos) * p.nHeads + head;
    var wOwn = 1.0 / max(l[k], 1e-30);
    var wPrev = 0.0;
    if (MODE == 1u) {
      // out/lse hold the stripe pass's normalized result (lse = NEG_INF when it had no keys).
      let lsePrev = lse[lseIdx];
      let lseOwn = m[k] + log2(l[k]);
      let mm = max(lsePrev, lseOwn);
      let a = select(0.0, exp2(lsePrev - mm), lsePrev > NEG_INF);
      let b = exp2(lseOwn - mm);
      wPrev = a / (a + b);
      wOwn = b / (a + b) / l[k];
    }
    if (MODE == 2u && lane == 0u) { lse[lseIdx] = select(NEG_INF, m[k] + log2(l[k]), l[k] > 0.0); }
    for (var v = 0u; v < NV; v++) {
      let d = (lane + v * TPR) * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (d + c < HEAD_DIM) {
          let at = qbase[k] + d + c;
          var y = o[k * NV + v][c] * wOwn;
          if (MODE == 1u) { y += wPrev * out[at]; }
          out[at] = y;
        }
      }
    }
  }
}

// RS = 1: one K/V tile with the scores reduce-scattered over the row's TPR lanes: each lane
// gets the full scores of KPL = BC / TPR keys (log2(TPR) butterfly steps, BC - KPL shuffles
// per row instead of log2(TPR) per key), so the masks, max and exp2 run once per (row, key)
// instead of once per lane; the probabilities go through workgroup memory (ps) to every
// lane of the row for P V. l and lw stay per-lane partial sums (reduced after the last tile).
fn rs_tile(slot: u32, lane: u32, rsBase: u32, k0: u32,
           qv: ptr<function, array<vec4<f32>, RPT * NV>>, ipos: ptr<function, array<u32, RPT>>,
           okBits: ptr<function, array<u32, RPT>>,
           o: ptr<function, array<vec4<f32>, RPT * NV>>, m: ptr<function, array<f32, RPT>>,
           l: ptr<function, array<f32, RPT>>, lw: ptr<function, array<f32, RPT>>) {
  var part: array<f32, RPT * BC>;
  for (var c = 0u; c < BC; c++) {
    var acc: array<f32, RPT>;
    for (var k = 0u; k < RPT; k++) { acc[k] = 0.0; }
    for (var v = 0u; v < NV; v++) {
      let kk = ks[c * DVP + lane + v * TPR];
      for (var k = 0u; k < RPT; k++) { acc[k] += dot((*qv)[k * NV + v], kk); }
    }
    for (var k = 0u; k < RPT; k++) { part[k * BC + c] = acc[k]; }
  }
  var n = BC;
  for (var off = TPR / 2u; off > 0u; off >>= 1u) {
    n >>= 1u;
    let up = (lane & off) != 0u;
    for (var k = 0u; k < RPT; k++) {
      for (var i = 0u; i < n; i++) {
        let lo = part[k * BC + i];
        let hi = part[k * BC + i + n];
        part[k * BC + i] = select(lo, hi, up) + shuffle_xor(select(hi, lo, up), off);
      }
    }
  }
  for (var k = 0u; k < RPT; k++) {
    let i = (*ipos)[k];
    var tileMax = NEG_INF;
    for (var e = 0u; e < KPL; e++) {
      let ok = (((*okBits)[k] >> (rsBase + e)) & 1u) != 0u; // the row's tile slots, as in main
      let sc = select(NEG_INF, part[k * BC + e], ok);
      part[k * BC + e] = sc;
      tileMax = max(tileMax, sc);
    }
    tileMax = row_max(tileMax);
    let mNew = max((*m)[k], tileMax);
    let corr = select(1.0, exp2((*m)[k] - mNew), tileMax > NEG_INF);
    (*l)[k] *= corr;
    (*lw)[k] *= corr;
    for (var v = 0u; v < NV; v++) { (*o)[k * NV + v] *= corr; }
    let pBase = (k * (QR / RPT) + slot) * BC + rsBase;
    for (var e = 0u; e < KPL; e++) {
      let sc = part[k * BC + e];
      let pc = select(0.0, exp2(sc - mNew), sc > NEG_INF);
      (*l)[k] += pc;
      if (MODE == 3u && k0 + rsBase + e + p.window > i) { (*lw)[k] += pc; }
      if (MODE != 3u) { ps[(pBase + e) / 4u][(pBase + e) % 4u] = pc; }
    }
    if (tileMax > NEG_INF) { (*m)[k] = mNew; }
  }
  if (MODE != 3u) {
    workgroupBarrier();
    // P V: each V vec4 read from workgroup memory serves the thread's RPT rows.
    for (var c4 = 0u; c4 < BC / 4u; c4++) {
      var pv: array<vec4<f32>, RPT>;
      for (var k = 0u; k < RPT; k++) { pv[k] = ps[(k * (QR / RPT) + slot) * (BC / 4u) + c4]; }
      for (var cc = 0u; cc < 4u; cc++) {
        for (var v = 0u; v < NV; v++) {
          let vv = vs[(c4 * 4u + cc) * DVP + lane + v * TPR];
          for (var k = 0u; k < RPT; k++) { (*o)[k * NV + v] += pv[k][cc] * vv; }
        }
      }
    }
  }
}

// FUSED_V = 1, MODE 4: the stripe tiles (list slots [0, nUse), BC per tile) in their own loop, the
// body of main's loop with `stripe` fixed. Ids are sorted: when the tile's last id is <= iMin - w
// every row keeps the whole tile (no per-row search); only the last few tiles need count_le.
fn stripe_tiles(lid: u32, slot: u32, lane: u32, rsBase: u32, nS: u32, nUse: u32, selBase: u32, kvBase: u32, iMin: u32,
                qv: ptr<function, array<vec4<f32>, RPT * NV>>, ipos: ptr<function, array<u32, RPT>>,
                o: ptr<function, array<vec4<f32>, RPT * NV>>, m: ptr<function, array<f32, RPT>>,
                l: ptr<function, array<f32, RPT>>, lw: ptr<function, array<f32, RPT>>) {
  var pk: array<vec4<f32>, KV_NE>;
  var pvv: array<vec4<f32>, KV_NE>;
  var pj: array<u32, KV_NE>;
  for (var it = 0u; it < nS; it++) {
    let k0 = it * BC;
    if (KV_PREFETCH == 1u && it == 0u) { fetch_tile(lid, true, k0, nUse, selBase, 0u, kvBase, &pk, &pvv, &pj); }
    workgroupBarrier();
    if (KV_PREFETCH == 1u) {
      store_tile(lid, true, &pk, &pvv, &pj);
    } else {
      for (var e = lid; e < BC * DVP; e += THREADS) {
        let c = e / DVP;
        let d4 = e % DVP;
        let j = select(PAD, sel[selBase + 1u + min(k0 + c, nUse - 1u)], k0 + c < nUse);
        if (d4 == 0u) { kidx[c] = j; }
        let jj = select(0u, j, j != PAD);
        ks[e] = load_k4(kvBase + jj, d4);
        vs[e] = load_v4(kvBase + jj, d4);
      }
    }
    workgroupBarrier();
    if (KV_PREFETCH == 1u && it + 1u < nS) { fetch_tile(lid, true, k0 + BC, nUse, selBase, 0u, kvBase, &pk, &pvv, &pj); }
    let last = kidx[BC - 1u];
    let full = last != PAD && last + p.window <= iMin;
    var okBits: array<u32, RPT>;
    if (full) {
      for (var k = 0u; k < RPT; k++) { okBits[k] = low_bits(BC); }
    } else {
      for (var k = 0u; k < RPT; k++) {
        let i = (*ipos)[k];
        okBits[k] = low_bits(select(0u, count_le(i - p.window), i >= p.window));
      }
    }
    if (RS == 1u) {
      rs_tile(slot, lane, rsBase, k0, qv, ipos, &okBits, o, m, l, lw);
      continue;
    }
    var s: array<f32, RPT * BC>;
    for (var c = 0u; c < BC; c++) {
      var part: array<f32, RPT>;
      for (var k = 0u; k < RPT; k++) { part[k] = 0.0; }
      for (var v = 0u; v < NV; v++) {
        let kk = ks[c * DVP + lane + v * TPR];
        for (var k = 0u; k < RPT; k++) { part[k] += dot((*qv)[k * NV + v], kk); }
      }
      for (var k = 0u; k < RPT; k++) {
        let sc = row_sum(part[k]);
        s[k * BC + c] = select(NEG_INF, sc, ((okBits[k] >> c) & 1u) != 0u);
      }
    }
    for (var k = 0u; k < RPT; k++) {
      var tileMax = NEG_INF;
      for (var c = 0u; c < BC; c++) { tileMax = max(tileMax, s[k * BC + c]); }
      let mNew = max((*m)[k], tileMax);
      let corr = select(1.0, exp2((*m)[k] - mNew), tileMax > NEG_INF);
      (*l)[k] *= corr;
      for (var v = 0u; v < NV; v++) { (*o)[k * NV + v] *= corr; }
      for (var c = 0u; c < BC; c++) {
        let pc = select(0.0, exp2(s[k * BC + c] - mNew), s[k * BC + c] > NEG_INF);
        s[k * BC + c] = pc;
        (*l)[k] += pc;
      }
      if (tileMax > NEG_INF) { (*m)[k] = mNew; }
    }
    for (var c = 0u; c < BC; c++) {
      for (var v = 0u; v < NV; v++) {
        let vv = vs[c * DVP + lane + v * TPR];
        for (var k = 0u; k < RPT; k++) { (*o)[k * NV + v] += s[k * BC + c] * vv; }
      }
    }
  }
}

// KV_PREFETCH = 1: this thread's KV_NE elements (e = lid + r * THREADS of the tile's BC x DVP vec4s) of the tile
// at slots k0 + [0, BC) (stripe: list slots of sel, else keys < cEnd) into registers.
fn fetch_tile(lid: u32, stripe: bool, k0: u32, nUse: u32, selBase: u32, cEnd: u32, kvBase: u32,
              pk: ptr<function, array<vec4<f32>, KV_NE>>, pv: ptr<function, array<vec4<f32>, KV_NE>>,
              pj: ptr<function, array<u32, KV_NE>>) {
  for (var r = 0u; r < KV_NE; r++) {
    let e = lid + r * THREADS;
    if (e < BC * DVP) {
      let c = e / DVP;
      let d4 = e % DVP;
      var j = k0 + c;
      if (stripe) {
        j = select(PAD, sel[selBase + 1u + min(k0 + c, nUse - 1u)], k0 + c < nUse);
      } else if (j >= cEnd) {
        j = PAD;
      }
      (*pj)[r] = j;
      let jj = select(0u, j, j != PAD);
      (*pk)[r] = load_k4(kvBase + jj, d4);
      if (MODE != 3u) { (*pv)[r] = load_v4(kvBase + jj, d4); }
    }
  }
}

// KV_PREFETCH = 1: the prefetched registers into the workgroup tiles (and the stripe tile's ids).
fn store_tile(lid: u32, stripe: bool, pk: ptr<function, array<vec4<f32>, KV_NE>>,
              pv: ptr<function, array<vec4<f32>, KV_NE>>, pj: ptr<function, array<u32, KV_NE>>) {
  for (var r = 0u; r < KV_NE; r++) {
    let e = lid + r * THREADS;
    if (e < BC * DVP) {
      ks[e] = (*pk)[r];
      if (MODE != 3u) { vs[e] = (*pv)[r]; }
      if (stripe && e % DVP == 0u) { kidx[e / DVP] = (*pj)[r]; }
    }
  }
}
