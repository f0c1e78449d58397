// Causal flash attention for prefill (tiled, online softmax, f32 math), GQA-aware.
//
// One source, two modes (override MODE) and the dense fallback (override FALLBACK):
//   0 dense:  query i attends keys [0, i].
//   1 sparse: SampleAttention's sparse pass (../shared/SAMPLE_ATTENTION.md step 4): the selected
//             stripe ids j <= i - w (sorted, of the KV group, from sel), then the window
//             (i - w, i], in ONE online softmax; writes the normalized output. The stripe tiles
//             run in their own loop (stripe_tiles: a tile whose last id is <= iMin - w needs no
//             per-row mask), then the window's contiguous tiles in the main loop (the dense body).
//             A KV group the selection flagged dense returns at once: the launcher then runs
//             MODE 0 with FALLBACK = 1 over the flagged groups (dispatchWorkgroupsIndirect,
//             y = number of flagged groups, kvh = the flag list in sel; see sample_fallback.wgsl),
//             so the fallback runs the dense kernel's code at its rate.
//
// Tile schedule: a workgroup runs nS "stripe tiles" (BC selected ids each, read from sel; MODE 1)
// and then nC "contiguous tiles" (keys k0 .. k0 + BC - 1 of the range [cBegin, cEnd)). Each row's
// mask is one range of tile slots [a, b), held as a bit mask (one u32 per row, BC <= 32):
// contiguous tiles keep the keys [lo_i, i] (lo_i = 0 dense, i + 1 - w in the window); stripe
// tiles keep the ids <= i - w (a prefix: ids are sorted, the padding 0xffffffff is last). Each
// K/V column is used once per row: a stripe inside a row's window fails its bound.
//
// Workgroup: QR query rows, TPR threads per row, each thread holding RPT rows
// (THREADS = QR / RPT * TPR invocations; RPT > 1 reuses every K/V vec4 read from
// workgroup memory for RPT rows). A "query row" is one (position, head) pair of one KV group:
// t = tile * QR + r, position t / group, head kvHead * group + t % group (group = nHeads /
// nKvHeads), so the group's query heads share every K/V tile load. Each thread holds NV vec4s of
// the row's q and o (threads of a row split headDim, interleaved by vec4) and reduces partial
// dot products with subgroup shuffles (TPR = 1 without subgroups).
// K/V tiles of BC keys are staged in workgroup memory (2 * BC * DVP vec4s); two barriers per tile.
// KV_PREFETCH = 1: each thread loads its KV_NE vec4s of the next K/V tile into registers while
// the current tile is computed, then stores them after the barrier.
// Tiles (kernels/attention_prefill.ts tilePlan): 64 rows x 4 lanes x 32 keys, RPT 1; with
// subgroups of >= 8 lanes and headDim > 92: 128 rows x 8 lanes x 8 keys, RPT 4, KV_PREFETCH 1.
// Dispatch: (ceil(rows * group / QR), nKvHeads, 1); FALLBACK = 1: indirect (x, nFlagged, 1).
// Per-head selection runs MODE 1 and the fallback with "virtual" params: group 1, nKvHeads =
// nHeads (one unit per query head), K/V rows of unit u from KV head u / p.kvDiv (the real group).
// Precision: f32 loads (f16 KV unpacked in the loader), f32 accumulation;
// exp2 with q pre-scaled by log2(e) / sqrt(headDim). Tier (header): q and out are `act`,
// converted on load / store.
//
// Bindings (the header declares kc/vc at 1/2 and the Params struct at 6):
//   q:   (rows, nHeads * HEAD_DIM) act, RoPE applied
//   kc:  (nKvHeads, capacity, HEAD_DIM) f32 or f16 pairs (u32)
//   vc:  (nKvHeads, capacity, HEAD_DIM)
//   out: (rows, nHeads * HEAD_DIM) act
//   sel: (MODE 1, FALLBACK 1) (nKvHeads, capacity + 1) u32: [count, col ids ascending...], then
//        (nKvHeads) u32 dense flags (1: the group runs dense), then (nKvHeads) u32 the flagged
//        groups' ids (first nFlagged valid; FALLBACK = 1 reads it)

override MODE: u32 = 0u;
override FALLBACK: u32 = 0u;

@group(0) @binding(0) var<storage, read> q: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;
@group(0) @binding(5) var<storage, read> sel: array<u32>;

var<workgroup> ks: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> vs: array<vec4<f32>, BC * DVP>; // [BC][DVP]
var<workgroup> kidx: array<u32, BC>;            // key ids of a stripe tile (sorted, PAD last)
var<workgroup> wsched: u32;

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
  let nAll = p.rows * p.group;
  // Heaviest (latest) tiles first, so the causal imbalance does not leave a tail.
  let nTiles = (nAll + QR - 1u) / QR;
  let t0 = (nTiles - 1u - wg.x) * QR;
  // Absolute positions spanned by the workgroup (rows are sorted ascending).
  let iMin = p.pos + t0 / p.group;
  let iMax = p.pos + min(nAll - 1u, t0 + QR - 1u) / p.group;

  // MODE 1: nUse stripe ids, then the window's keys. A group flagged dense returns here,
  // before loading its q rows.
  let selBase = kvh * (p.capacity + 1u);
  var nUse = 0u;
  if (MODE == 1u) {
    if (lid == 0u) {
      var n = 0u;
      let flagged = sel[p.nKvHeads * (p.capacity + 1u) + kvh] != 0u;
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
  for (var k = 0u; k < RPT; k++) {
    let tc = min(t0 + slot + k * (QR / RPT), nAll - 1u);
    let head = kvh * p.group + tc % p.group;
    let loc = tc / p.group;
    ipos[k] = p.pos + loc;
    qbase[k] = loc * p.nHeads * HEAD_DIM + head * HEAD_DIM;
    for (var v = 0u; v < NV; v++) {
      let d = (lane + v * TPR) * 4u;
      var x = vec4<f32>(0.0);
      for (var c = 0u; c < 4u; c++) { if (d + c < HEAD_DIM) { x[c] = f32(q[qbase[k] + d + c]); } }
      qv[k * NV + v] = x * p.scale;
      o[k * NV + v] = vec4<f32>(0.0);
    }
    m[k] = NEG_INF;
    l[k] = 0.0;
  }

  let kvBase = (kvh / p.kvDiv) * p.capacity;
  // Contiguous keys [cBegin, cEnd): [0, iMax] (dense), else the rows' windows.
  var cBegin = 0u;
  let cEnd = iMax + 1u;
  if (MODE == 1u) {
    cBegin = select(0u, iMin + 1u - p.window, iMin + 1u > p.window);
    stripe_tiles(lid, lane, (nUse + BC - 1u) / BC, nUse, selBase, kvBase, iMin, &qv, &ipos, &o, &m, &l);
  }
  let nC = select(0u, (cEnd - cBegin + BC - 1u) / BC, cEnd > cBegin);
  var pk: array<vec4<f32>, KV_NE>;
  var pvv: array<vec4<f32>, KV_NE>;
  var pj: array<u32, KV_NE>;
  for (var it = 0u; it < nC; it++) {
    let k0 = cBegin + it * BC;
    if (KV_PREFETCH == 1u && it == 0u) { fetch_tile(lid, false, k0, 0u, 0u, cEnd, kvBase, &pk, &pvv, &pj); }
    workgroupBarrier();
    if (KV_PREFETCH == 1u) {
      store_tile(lid, false, &pk, &pvv, &pj);
    } else {
      for (var e = lid; e < BC * DVP; e += THREADS) {
        let c = e / DVP;
        let d4 = e % DVP;
        let jj = select(0u, k0 + c, k0 + c < cEnd);
        ks[e] = load_k4(kvBase + jj, d4);
        vs[e] = load_v4(kvBase + jj, d4);
      }
    }
    workgroupBarrier();
    if (KV_PREFETCH == 1u && it + 1u < nC) { fetch_tile(lid, false, k0 + BC, 0u, 0u, cEnd, kvBase, &pk, &pvv, &pj); }
    // Each row's keys [lo, i] (lo = 0 dense, i + 1 - w in the window) as tile-slot bits.
    var okBits: array<u32, RPT>;
    for (var k = 0u; k < RPT; k++) {
      let i = ipos[k];
      let lo = select(0u, i + 1u - p.window, MODE == 1u && i + 1u > p.window);
      let a = select(0u, min(lo - k0, BC), lo > k0);
      let b = select(0u, min(i + 1u - k0, BC), i + 1u > k0);
      okBits[k] = low_bits(b) & ~low_bits(a);
    }
    tile_update(lane, &okBits, &qv, &o, &m, &l);
  }

  for (var k = 0u; k < RPT; k++) {
    let t = t0 + slot + k * (QR / RPT);
    if (t >= nAll) { continue; }
    let w = 1.0 / max(l[k], 1e-30);
    for (var v = 0u; v < NV; v++) {
      let d = (lane + v * TPR) * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (d + c < HEAD_DIM) { out[qbase[k] + d + c] = act(o[k * NV + v][c] * w); }
      }
    }
  }
}

// One staged K/V tile (ks, vs) for the thread's RPT rows, keys masked by okBits: scores (each
// K vec4 read from workgroup memory serves the RPT rows), online softmax, P V.
fn tile_update(lane: u32, okBits: ptr<function, array<u32, RPT>>,
               qv: ptr<function, array<vec4<f32>, RPT * NV>>, o: ptr<function, array<vec4<f32>, RPT * NV>>,
               m: ptr<function, array<f32, RPT>>, l: ptr<function, array<f32, RPT>>) {
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
      s[k * BC + c] = select(NEG_INF, sc, (((*okBits)[k] >> c) & 1u) != 0u);
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

// MODE 1: the stripe tiles (list slots [0, nUse), BC per tile). Ids are sorted: when the tile's
// last id is <= iMin - w every row keeps the whole tile (no per-row search); only the last few
// tiles need count_le.
fn stripe_tiles(lid: u32, lane: u32, nS: u32, nUse: u32, selBase: u32, kvBase: u32, iMin: u32,
                qv: ptr<function, array<vec4<f32>, RPT * NV>>, ipos: ptr<function, array<u32, RPT>>,
                o: ptr<function, array<vec4<f32>, RPT * NV>>, m: ptr<function, array<f32, RPT>>,
                l: ptr<function, array<f32, RPT>>) {
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
    for (var k = 0u; k < RPT; k++) {
      if (full) {
        okBits[k] = low_bits(BC);
      } else {
        let i = (*ipos)[k];
        okBits[k] = low_bits(select(0u, count_le(i - p.window), i >= p.window));
      }
    }
    tile_update(lane, &okBits, qv, o, m, l);
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
      (*pv)[r] = load_v4(kvBase + jj, d4);
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
      vs[e] = (*pv)[r];
      if (stripe && e % DVP == 0u) { kidx[e / DVP] = (*pj)[r]; }
    }
  }
}
