// Tier 'tensor': causal flash attention for prefill on the tensor cores, GQA-aware.
//   out[i] = softmax_j<=pos(i) (q_i . k_j / sqrt(D)) v_j
// q and out are f32 (the engine's activations, (rows, nHeads * D)); the KV cache is f16
// pairs ((nKvHeads, capacity, D) as u32 words). Q K^T and P V are f16 16x16x16 subgroup
// matrix products with f32 accumulation; the softmax is f32.
//
// A workgroup (4 subgroups of 32) owns 64 "query rows" of one KV head: row t of the
// tile is position t / GROUP, head kvHead * GROUP + t % GROUP (GROUP = nHeads / nKvHeads),
// so the heads sharing a KV head share every K/V tile load. Each subgroup owns 16 rows:
// its Q as 8 left matrices in registers, its O as 8 result matrices.
// Keys go in blocks of 32: stage K and V (f16), S = Q K^T (2 result tiles) -> workgroup
// memory -> row max / exp2 / row sum by the subgroup's lanes (two lanes per row) -> P (f16)
// -> O += P V. The running max is lazy: a row's O and sum are rescaled only when its block
// max exceeds the running max by more than 8 (log2 units), so P <= 256 in f16 and most
// blocks skip the rescale (which goes through workgroup memory).
// Requires: subgroup size 32, D = 128.
// Dispatch: (ceil(rows * GROUP / 64), nKvHeads).
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

override GROUP: u32 = 4u;

struct Params {
  rows: u32,     // query positions in this pass
  step: u32,     // position of the first query row (keys 0 .. step + rows - 1 are in the cache)
  n_heads: u32,
  capacity: u32, // cache positions per KV head
  scale: f32,    // log2(e) / sqrt(D)
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> kc: array<u32>;
@group(0) @binding(2) var<storage, read> vc: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

const D = 128u;
const BR = 64u;       // query rows per workgroup
const BC = 32u;       // keys per block
const LDK = 136u;     // row stride (halves) of staged Q / K / V rows
const LDP = 40u;      // row stride (halves) of P
const NEG_INF = -3.0e38;
const LAZY = 8.0;     // log2 headroom of the lazy max

// Q staging at start, then K (rows 0..31) and V (rows 32..63).
var<workgroup> kv: array<f16, 8704>;          // 64 x LDK
var<workgroup> s_tile: array<f32, 2048>;      // 4 subgroups x 16 x 32
var<workgroup> p_tile: array<f16, 2560>;      // 4 subgroups x 16 x LDP
var<workgroup> alpha: array<f32, 64>;         // per row rescale factor of this block
var<workgroup> need_rescale: u32;

fn row_pos(t: u32) -> u32 {
  return t / GROUP;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let kvh = wg.y;
  let t0 = wg.x * BR;
  let total = p.rows * GROUP;
  let qstride4 = p.n_heads * D / 4u;

  // Stage Q (64 rows x 128) as f16: 2048 vec4, 16 per invocation.
  for (var i = 0u; i < 16u; i++) {
    let idx = lid + i * 128u;
    let r = idx / 32u;
    let c = idx % 32u;
    let t = t0 + r;
    var v = vec4<f32>(0.0);
    if (t < total) {
      let head = kvh * GROUP + t % GROUP;
      v = q[row_pos(t) * qstride4 + head * (D / 4u) + c] * p.scale;
    }
    let h = vec4<f16>(v);
    let o = r * LDK + c * 4u;
    kv[o] = h.x;
    kv[o + 1u] = h.y;
    kv[o + 2u] = h.z;
    kv[o + 3u] = h.w;
  }
  workgroupBarrier();
  let qrow = sg * 16u;
  let q0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 0u, false, LDK);
  let q1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 16u, false, LDK);
  let q2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 32u, false, LDK);
  let q3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 48u, false, LDK);
  let q4 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 64u, false, LDK);
  let q5 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 80u, false, LDK);
  let q6 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 96u, false, LDK);
  let q7 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 112u, false, LDK);

  var o0 = subgroup_matrix_result<f32, 16, 16>();
  var o1 = subgroup_matrix_result<f32, 16, 16>();
  var o2 = subgroup_matrix_result<f32, 16, 16>();
  var o3 = subgroup_matrix_result<f32, 16, 16>();
  var o4 = subgroup_matrix_result<f32, 16, 16>();
  var o5 = subgroup_matrix_result<f32, 16, 16>();
  var o6 = subgroup_matrix_result<f32, 16, 16>();
  var o7 = subgroup_matrix_result<f32, 16, 16>();

  // Softmax state: lane owns row r (of the subgroup's 16) and half h of each block's 32 keys.
  let r = lane / 2u;
  let half = lane % 2u;
  let t = t0 + qrow + r;
  let pos = p.step + row_pos(min(t, total - 1u));
  var m = NEG_INF;
  var l = 0.0;

  let last = p.step + row_pos(min(t0 + BR, total) - 1u); // last position in the tile
  let nblocks = last / BC + 1u;
  let kvbase = kvh * p.capacity * D;
  let sbase = sg * 512u;
  let pbase = sg * 16u * LDP;
  for (var b = 0u; b < nblocks; b++) {
    let k0 = b * BC;
    workgroupBarrier();
    // K and V rows k0 .. k0 + 31: 2 x 32 x 64 words, 32 per invocation.
    for (var i = 0u; i < 32u; i++) {
      let idx = lid + i * 128u;          // 0 .. 4095
      let isv = idx / 2048u;
      let rr = (idx / 64u) % 32u;
      let w = idx % 64u;
      var h = vec2<f16>(0.0h);
      if (k0 + rr <= last) {
        let word = (kvbase + (k0 + rr) * D) / 2u + w;
        h = bitcast<vec2<f16>>(select(kc[word], vc[word], isv == 1u));
      }
      let o = (isv * 32u + rr) * LDK + w * 2u;
      kv[o] = h.x;
      kv[o + 1u] = h.y;
    }
    workgroupBarrier();
    // S = Q K^T for keys k0 .. k0 + 15 (s0) and k0 + 16 .. k0 + 31 (s1).
    var s0 = subgroup_matrix_result<f32, 16, 16>();
    var s1 = subgroup_matrix_result<f32, 16, 16>();
    s0 = subgroupMatrixMultiplyAccumulate(q0, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 0u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q0, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q1, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q1, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 16u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q2, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 32u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q2, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 32u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q3, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 48u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q3, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 48u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q4, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 64u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q4, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 64u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q5, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 80u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q5, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 80u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q6, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 96u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q6, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 96u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q7, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 112u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q7, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 112u, true, LDK), s1);
    subgroupMatrixStore(&s_tile, sbase, s0, false, 32u);
    subgroupMatrixStore(&s_tile, sbase + 16u, s1, false, 32u);
    if (lid == 0u) {
      need_rescale = 0u;
    }
    workgroupBarrier();
    // Softmax of this lane's 16 keys.
    var sv: array<f32, 16>;
    var bm = NEG_INF;
    for (var c = 0u; c < 16u; c++) {
      let key = k0 + half * 16u + c;
      var s = s_tile[sbase + r * 32u + half * 16u + c];
      if (key > pos) {
        s = NEG_INF;
      }
      sv[c] = s;
      bm = max(bm, s);
    }
    bm = max(bm, subgroupShuffleXor(bm, 1u));
    var a = 1.0;
    if (bm > m + LAZY || m == NEG_INF) {
      let nm = max(bm, m);
      if (m != NEG_INF) {
        a = exp2(m - nm);
      }
      m = nm;
    }
    l *= a;
    var rs = 0.0;
    for (var c = 0u; c < 16u; c++) {
      var e = 0.0;
      if (sv[c] > NEG_INF) {
        e = exp2(sv[c] - m);
      }
      let eh = f16(e);
      rs += f32(eh);
      p_tile[pbase + r * LDP + half * 16u + c] = eh;
    }
    l += rs;
    if (half == 0u) {
      alpha[qrow + r] = a;
    }
    if (a != 1.0) {
      need_rescale = 1u;
    }
    let rescale = workgroupUniformLoad(&need_rescale);
    if (rescale != 0u) {
      // O rows *= alpha, one 16 x 16 tile at a time through s_tile.
      for (var d = 0u; d < 8u; d++) {
        var ot: subgroup_matrix_result<f32, 16, 16>;
        switch (d) {
          case 0u: { ot = o0; }
          case 1u: { ot = o1; }
          case 2u: { ot = o2; }
          case 3u: { ot = o3; }
          case 4u: { ot = o4; }
          case 5u: { ot = o5; }
          case 6u: { ot = o6; }
          default: { ot = o7; }
        }
        subgroupMatrixStore(&s_tile, sbase, ot, false, 16u);
        workgroupBarrier();
        for (var e = lane; e < 256u; e += 32u) {
          s_tile[sbase + e] *= alpha[qrow + e / 16u];
        }
        workgroupBarrier();
        ot = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&s_tile, sbase, false, 16u);
        switch (d) {
          case 0u: { o0 = ot; }
          case 1u: { o1 = ot; }
          case 2u: { o2 = ot; }
          case 3u: { o3 = ot; }
          case 4u: { o4 = ot; }
          case 5u: { o5 = ot; }
          case 6u: { o6 = ot; }
          default: { o7 = ot; }
        }
        workgroupBarrier();
      }
    }
    // O += P V over the block's two 16-key halves.
    for (var kt = 0u; kt < 2u; kt++) {
      let pm = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&p_tile, pbase + kt * 16u, false, LDP);
      let vrow = (32u + kt * 16u) * LDK;
      o0 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 0u, false, LDK), o0);
      o1 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 16u, false, LDK), o1);
      o2 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 32u, false, LDK), o2);
      o3 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 48u, false, LDK), o3);
      o4 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 64u, false, LDK), o4);
      o5 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 80u, false, LDK), o5);
      o6 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 96u, false, LDK), o6);
      o7 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 112u, false, LDK), o7);
    }
  }

  // out = O / l, one 16 x 16 tile at a time through s_tile.
  l += subgroupShuffleXor(l, 1u);
  if (half == 0u) {
    alpha[qrow + r] = 1.0 / l;
  }
  for (var d = 0u; d < 8u; d++) {
    var ot: subgroup_matrix_result<f32, 16, 16>;
    switch (d) {
      case 0u: { ot = o0; }
      case 1u: { ot = o1; }
      case 2u: { ot = o2; }
      case 3u: { ot = o3; }
      case 4u: { ot = o4; }
      case 5u: { ot = o5; }
      case 6u: { ot = o6; }
      default: { ot = o7; }
    }
    workgroupBarrier();
    subgroupMatrixStore(&s_tile, sbase, ot, false, 16u);
    workgroupBarrier();
    // 16 rows x 4 vec4: 64 vec4, 2 per lane.
    for (var e = lane; e < 64u; e += 32u) {
      let rr = e / 4u;
      let tt = t0 + qrow + rr;
      if (tt < total) {
        let head = kvh * GROUP + tt % GROUP;
        let src = sbase + rr * 16u + (e % 4u) * 4u;
        let v = vec4<f32>(s_tile[src], s_tile[src + 1u], s_tile[src + 2u], s_tile[src + 3u]) * alpha[qrow + rr];
        out[row_pos(tt) * qstride4 + head * (D / 4u) + d * 4u + e % 4u] = v;
      }
    }
  }
}

// ---- Entry point `sparse`: SampleAttention's fused sparse pass on the tensor cores ----
// The tier's version of kernels/attention_prefill.wgsl MODE 1 (../shared/SAMPLE_ATTENTION.md
// step 4), same inputs and output: query i attends to the selected ids j <= i - w of its unit
// (sel's sorted list) and to the window (i - w, i], each key once (a selected id inside the
// window fails j + w <= i), in one online softmax. A unit the selection flagged dense runs its
// whole causal range [0, i] here (no fallback dispatch): it reads no ids.
// Tiles as `main`: 64 query rows of one unit (t = tile * 64 + r: position t / group, head
// unit * group + t % group), 4 subgroups of 16 rows, keys in blocks of 32: first the
// "stripe tiles" (32 list slots each; K/V rows gathered by id from the cache), then the
// "contiguous tiles" of [cBegin, iMax] (the rows' windows; [0, iMax] when flagged). Each
// block's slot ids go to kidx, and a row's mask is: id valid, and j + w <= i (stripe tile) or
// i - w < j <= i (contiguous; j <= i when flagged). Same lazy-max softmax and matrix
// products as `main`.
// Uses the prefill's Params (kernels/attention_prefill.ts paramsWords, 64 bytes) and sel layout:
//   sel: (units, capacity + 1) u32 [count, ids ascending...], then (units) u32 dense flags.
// Group size and the K/V head (unit / kvDiv) are uniforms, so one pipeline serves every GQA
// group and per-head selection's virtual units (group 1, units = nHeads, kvDiv = real group).
// Dispatch: (ceil(rows * group / 64), units).

struct SparseParams {
  rows: u32, pos: u32, nHeads: u32, nKvHeads: u32,
  capacity: u32, window: u32, nSamp: u32, sampBlock: u32,
  nBlocks: u32, nCols: u32, statsOffset: u32, group: u32,
  scale: f32, alpha: f32, fallbackSel: f32, kvDiv: u32,
}

@group(0) @binding(5) var<storage, read> sel: array<u32>;
@group(0) @binding(6) var<uniform> sp: SparseParams;

const PAD = 0xffffffffu;

var<workgroup> kidx: array<u32, 32>;          // key ids of the current block's 32 slots (PAD: none)
var<workgroup> wsched: u32;                   // selected ids in use, or PAD for a unit flagged dense

// Key id of slot c of tile `it`: stripe tiles (it < nS) read list slots, then contiguous keys from cBegin.
fn sparse_key(it: u32, c: u32, nS: u32, nUse: u32, selBase: u32, cBegin: u32, cEnd: u32) -> u32 {
  if (it < nS) {
    let s = it * BC + c;
    return select(PAD, sel[selBase + 1u + min(s, nUse - 1u)], s < nUse);
  }
  let j = cBegin + (it - nS) * BC + c;
  return select(PAD, j, j < cEnd);
}

@compute @workgroup_size(128)
fn sparse(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let unit = wg.y;
  let group = sp.group;
  let total = sp.rows * group;
  // Heaviest (latest) tiles first, so the causal imbalance leaves no tail.
  let ntiles = (total + BR - 1u) / BR;
  let t0 = (ntiles - 1u - wg.x) * BR;
  let qstride4 = sp.nHeads * D / 4u;
  let w = sp.window;
  // Absolute positions spanned by the tile (rows ascend).
  let iMin = sp.pos + t0 / group;
  let iMax = sp.pos + (min(t0 + BR, total) - 1u) / group;
  let selBase = unit * (sp.capacity + 1u);

  // Ids any row here can use (<= iMax - w; the list is sorted), or PAD when flagged dense.
  if (lid == 0u) {
    var n = 0u;
    let flagged = sel[sp.nKvHeads * (sp.capacity + 1u) + unit] != 0u;
    if (!flagged && iMax >= w) {
      let bound = iMax - w;
      var hi = sel[selBase];
      while (n < hi) {
        let mid = (n + hi) / 2u;
        if (sel[selBase + 1u + mid] <= bound) {
          n = mid + 1u;
        } else {
          hi = mid;
        }
      }
    }
    wsched = select(n, PAD, flagged);
  }
  let sched = workgroupUniformLoad(&wsched);
  let dense = sched == PAD;
  let nUse = select(sched, 0u, dense);
  let nS = (nUse + BC - 1u) / BC;
  var cBegin = 0u;
  if (!dense && iMin + 1u > w) {
    cBegin = iMin + 1u - w;
  }
  let cEnd = iMax + 1u;
  let nC = (cEnd - cBegin + BC - 1u) / BC;

  // Stage Q (64 rows x 128) as f16: 2048 vec4, 16 per invocation.
  for (var i = 0u; i < 16u; i++) {
    let idx = lid + i * 128u;
    let r = idx / 32u;
    let c = idx % 32u;
    let t = t0 + r;
    var v = vec4<f32>(0.0);
    if (t < total) {
      let head = unit * group + t % group;
      v = q[(t / group) * qstride4 + head * (D / 4u) + c] * sp.scale;
    }
    let h = vec4<f16>(v);
    let o = r * LDK + c * 4u;
    kv[o] = h.x;
    kv[o + 1u] = h.y;
    kv[o + 2u] = h.z;
    kv[o + 3u] = h.w;
  }
  workgroupBarrier();
  let qrow = sg * 16u;
  let q0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 0u, false, LDK);
  let q1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 16u, false, LDK);
  let q2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 32u, false, LDK);
  let q3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 48u, false, LDK);
  let q4 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 64u, false, LDK);
  let q5 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 80u, false, LDK);
  let q6 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 96u, false, LDK);
  let q7 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, qrow * LDK + 112u, false, LDK);

  var o0 = subgroup_matrix_result<f32, 16, 16>();
  var o1 = subgroup_matrix_result<f32, 16, 16>();
  var o2 = subgroup_matrix_result<f32, 16, 16>();
  var o3 = subgroup_matrix_result<f32, 16, 16>();
  var o4 = subgroup_matrix_result<f32, 16, 16>();
  var o5 = subgroup_matrix_result<f32, 16, 16>();
  var o6 = subgroup_matrix_result<f32, 16, 16>();
  var o7 = subgroup_matrix_result<f32, 16, 16>();

  // Softmax state: lane owns row r (of the subgroup's 16) and half h of each block's 32 keys.
  let r = lane / 2u;
  let half = lane % 2u;
  let t = t0 + qrow + r;
  let pos = sp.pos + min(t, total - 1u) / group;
  var m = NEG_INF;
  var l = 0.0;

  let kvbase = (unit / sp.kvDiv) * sp.capacity * D;
  let sbase = sg * 512u;
  let pbase = sg * 16u * LDP;
  let rowK = lid / 64u; // this invocation's first staged key row (then every second)
  let wordK = lid % 64u; // and its u32 word of each row
  for (var it = 0u; it < nS + nC; it++) {
    let stripe = it < nS;
    workgroupBarrier();
    if (lid < BC) {
      kidx[lid] = sparse_key(it, lid, nS, nUse, selBase, cBegin, cEnd);
    }
    // K rows 0..31 and V rows 32..63 of the block's keys, gathered by id: 16 rows x 2 words per invocation.
    for (var i = 0u; i < 16u; i++) {
      let rr = rowK + 2u * i;
      let j = sparse_key(it, rr, nS, nUse, selBase, cBegin, cEnd);
      var hk = vec2<f16>(0.0h);
      var hv = vec2<f16>(0.0h);
      if (j != PAD) {
        let word = (kvbase + j * D) / 2u + wordK;
        hk = bitcast<vec2<f16>>(kc[word]);
        hv = bitcast<vec2<f16>>(vc[word]);
      }
      let ok = rr * LDK + wordK * 2u;
      kv[ok] = hk.x;
      kv[ok + 1u] = hk.y;
      let ov = (32u + rr) * LDK + wordK * 2u;
      kv[ov] = hv.x;
      kv[ov + 1u] = hv.y;
    }
    workgroupBarrier();
    // S = Q K^T for slots 0 .. 15 (s0) and 16 .. 31 (s1).
    var s0 = subgroup_matrix_result<f32, 16, 16>();
    var s1 = subgroup_matrix_result<f32, 16, 16>();
    s0 = subgroupMatrixMultiplyAccumulate(q0, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 0u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q0, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q1, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q1, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 16u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q2, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 32u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q2, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 32u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q3, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 48u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q3, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 48u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q4, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 64u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q4, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 64u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q5, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 80u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q5, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 80u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q6, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 96u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q6, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 96u, true, LDK), s1);
    s0 = subgroupMatrixMultiplyAccumulate(q7, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 112u, true, LDK), s0);
    s1 = subgroupMatrixMultiplyAccumulate(q7, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 112u, true, LDK), s1);
    subgroupMatrixStore(&s_tile, sbase, s0, false, 32u);
    subgroupMatrixStore(&s_tile, sbase + 16u, s1, false, 32u);
    if (lid == 0u) {
      need_rescale = 0u;
    }
    workgroupBarrier();
    // Softmax of this lane's 16 slots, masked by the row's rule for this tile.
    var sv: array<f32, 16>;
    var bm = NEG_INF;
    for (var c = 0u; c < 16u; c++) {
      let j = kidx[half * 16u + c];
      var keep = j != PAD && j <= pos;
      if (stripe) {
        keep = keep && j + w <= pos;
      } else if (!dense) {
        keep = keep && j + w > pos;
      }
      var s = s_tile[sbase + r * 32u + half * 16u + c];
      if (!keep) {
        s = NEG_INF;
      }
      sv[c] = s;
      bm = max(bm, s);
    }
    bm = max(bm, subgroupShuffleXor(bm, 1u));
    var a = 1.0;
    if (bm > m + LAZY || m == NEG_INF) {
      let nm = max(bm, m);
      if (m != NEG_INF) {
        a = exp2(m - nm);
      }
      m = nm;
    }
    l *= a;
    var rs = 0.0;
    for (var c = 0u; c < 16u; c++) {
      var e = 0.0;
      if (sv[c] > NEG_INF) {
        e = exp2(sv[c] - m);
      }
      let eh = f16(e);
      rs += f32(eh);
      p_tile[pbase + r * LDP + half * 16u + c] = eh;
    }
    l += rs;
    if (half == 0u) {
      alpha[qrow + r] = a;
    }
    if (a != 1.0) {
      need_rescale = 1u;
    }
    let rescale = workgroupUniformLoad(&need_rescale);
    if (rescale != 0u) {
      // O rows *= alpha, one 16 x 16 tile at a time through s_tile.
      for (var d = 0u; d < 8u; d++) {
        var ot: subgroup_matrix_result<f32, 16, 16>;
        switch (d) {
          case 0u: { ot = o0; }
          case 1u: { ot = o1; }
          case 2u: { ot = o2; }
          case 3u: { ot = o3; }
          case 4u: { ot = o4; }
          case 5u: { ot = o5; }
          case 6u: { ot = o6; }
          default: { ot = o7; }
        }
        subgroupMatrixStore(&s_tile, sbase, ot, false, 16u);
        workgroupBarrier();
        for (var e = lane; e < 256u; e += 32u) {
          s_tile[sbase + e] *= alpha[qrow + e / 16u];
        }
        workgroupBarrier();
        ot = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&s_tile, sbase, false, 16u);
        switch (d) {
          case 0u: { o0 = ot; }
          case 1u: { o1 = ot; }
          case 2u: { o2 = ot; }
          case 3u: { o3 = ot; }
          case 4u: { o4 = ot; }
          case 5u: { o5 = ot; }
          case 6u: { o6 = ot; }
          default: { o7 = ot; }
        }
        workgroupBarrier();
      }
    }
    // O += P V over the block's two 16-slot halves.
    for (var kt = 0u; kt < 2u; kt++) {
      let pm = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&p_tile, pbase + kt * 16u, false, LDP);
      let vrow = (32u + kt * 16u) * LDK;
      o0 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 0u, false, LDK), o0);
      o1 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 16u, false, LDK), o1);
      o2 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 32u, false, LDK), o2);
      o3 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 48u, false, LDK), o3);
      o4 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 64u, false, LDK), o4);
      o5 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 80u, false, LDK), o5);
      o6 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 96u, false, LDK), o6);
      o7 = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, vrow + 112u, false, LDK), o7);
    }
  }

  // out = O / l, one 16 x 16 tile at a time through s_tile (a row with no key at all writes 0).
  l += subgroupShuffleXor(l, 1u);
  if (half == 0u) {
    alpha[qrow + r] = 1.0 / max(l, 1e-30);
  }
  for (var d = 0u; d < 8u; d++) {
    var ot: subgroup_matrix_result<f32, 16, 16>;
    switch (d) {
      case 0u: { ot = o0; }
      case 1u: { ot = o1; }
      case 2u: { ot = o2; }
      case 3u: { ot = o3; }
      case 4u: { ot = o4; }
      case 5u: { ot = o5; }
      case 6u: { ot = o6; }
      default: { ot = o7; }
    }
    workgroupBarrier();
    subgroupMatrixStore(&s_tile, sbase, ot, false, 16u);
    workgroupBarrier();
    for (var e = lane; e < 64u; e += 32u) {
      let rr = e / 4u;
      let tt = t0 + qrow + rr;
      if (tt < total) {
        let head = unit * group + tt % group;
        let src = sbase + rr * 16u + (e % 4u) * 4u;
        let v = vec4<f32>(s_tile[src], s_tile[src + 1u], s_tile[src + 2u], s_tile[src + 3u]) * alpha[qrow + rr];
        out[(tt / group) * qstride4 + head * (D / 4u) + d * 4u + e % 4u] = v;
      }
    }
  }
}
