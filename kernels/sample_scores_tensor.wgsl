// Tier 'tensor': SampleAttention's sampling phase (../shared/SAMPLE_ATTENTION.md stages 1 + 2) on
// the tensor cores. Same inputs and outputs as kernels/sample_scores.wgsl (SMODE 0 rows, 1 cols),
// so kernels/sample_select.wgsl and everything after is unchanged:
//   entry `rows` (stage 1): for each sampled (row, head) pair, lse (log2 units) of the causal
//     scores q_i . k_j / sqrt(D), j <= i, and the mass of the window (i - w, i];
//   entry `cols` (stage 2): for each key column j < nCols, per query head the sum over sampled
//     rows i with j + w <= i of exp2(s_ij - lse_i), and the KV group's sum of those.
// Q K^T (K Q^T for `cols`) are f16 16x16x16 subgroup matrix products with f32 accumulation: q rows
// (scaled by log2(e) / sqrt(D), so scores are in log2 units) and K rows are staged in workgroup
// memory as f16 from the f32 q buffer and the f16 cache; each subgroup's 16 x 32 score tile goes
// through its own f32 scratch (s_tile) for the exp2 / max / sum epilogue, in f32.
// The lse that `cols` reads was computed by `rows` from the same f16 operands, so the
// probabilities of a row sum to 1 up to f32 rounding.
//
// `rows`: a workgroup (4 subgroups of 32) owns 64 (row, head) pairs of one KV group (pair t:
// sampled row t / group, head kvh * group + t % group; heaviest tiles first) and loops over keys
// in blocks of 32 up to its last row: subgroup sg's 16 pairs as 8 left matrices in registers,
// S = Q K^T (2 result tiles) -> s_tile -> lane (r, half): pair r, 16 keys of the block -> running
// (max, sum, window sum) per lane, merged with the other half at the end.
// `cols`: a workgroup owns 64 key columns of one KV group (subgroup sg: columns 16 sg ..
// 16 sg + 15 as 8 left matrices in registers) and, per head of the group, loops over the sampled
// rows that reach its columns (from kStart, the first with pos + w >= j0) in blocks of 32:
// S^T = K Q^T -> s_tile -> lane (c, half): column c, 16 rows of the block; the head's column sum
// is written after its last block, the group sum after the last head.
// Requires: subgroup size 32, D = 128, f16 KV cache. Group size is the uniform p.group: one
// pipeline per entry serves every GQA shape.
// Dispatch: `rows` (ceil(nSamp * group / 64), nKvHeads); `cols` (ceil(nCols / 64), nKvHeads).
// Bindings (the 64-byte Params of kernels/attention_prefill.ts paramsWords at 6):
//   q:           (rows, nHeads * 128) f32, RoPE applied
//   kc:          (nKvHeads, capacity, 128) f16 pairs
//   rowStats:    (nHeads, nSamp, 2) f32: lse (log2 units), window mass (`rows` writes, `cols` reads)
//   colScores:   (nHeads, capacity) f32, columns [0, nCols) written (`cols`)
//   groupScores: (nKvHeads, capacity) f32, columns [0, nCols) written (`cols`)
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  rows: u32, pos: u32, nHeads: u32, nKvHeads: u32,
  capacity: u32, window: u32, nSamp: u32, sampBlock: u32,
  nBlocks: u32, nCols: u32, statsOffset: u32, group: u32,
  scale: f32, alpha: f32, fallbackSel: f32, kvDiv: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>;
@group(0) @binding(4) var<storage, read_write> colScores: array<f32>;
@group(0) @binding(5) var<storage, read_write> groupScores: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const D = 128u;
const BR = 64u;       // pairs (`rows`) / columns (`cols`) per workgroup
const BC = 32u;       // keys (`rows`) / sampled rows (`cols`) per block
const LDK = 136u;     // row stride (halves) of staged rows
const NEG_INF = -3.0e38;

// The stationary operand (64 rows) at start, then the streamed blocks (32 rows).
var<workgroup> kv: array<f16, 8704>;          // 64 x LDK
var<workgroup> s_tile: array<f32, 2048>;      // 4 subgroups x 16 x 32
// `cols`: the block's sampled rows: absolute position, lse, whether in the stream
var<workgroup> mpos: array<u32, 32>;
var<workgroup> mlse: array<f32, 32>;
var<workgroup> mok: array<u32, 32>;

// Chunk-local row of sampled row k (kernels/attention_prefill.ts attentionHeader's sample_row).
fn sample_row(k: u32) -> u32 {
  if (p.nSamp >= p.rows) { return k; }
  let b = k / p.sampBlock;
  return ((b + 1u) * p.rows) / p.nBlocks - p.sampBlock + k % p.sampBlock;
}

// First sampled row k with pos + sample_row(k) >= j (sample_row ascends); nSamp if none.
fn first_row_from(j: u32) -> u32 {
  var lo = 0u;
  var hi = p.nSamp;
  loop {
    if (lo >= hi) { break; }
    let mid = (lo + hi) / 2u;
    if (p.pos + sample_row(mid) >= j) { hi = mid; } else { lo = mid + 1u; }
  }
  return lo;
}

// vec4 c (of 32) of sampled row k's q at `head`, scaled to log2 units.
fn q_scaled(k: u32, head: u32, c: u32) -> vec4<f32> {
  return q[sample_row(k) * p.nHeads * (D / 4u) + head * (D / 4u) + c] * p.scale;
}

fn put4(o: u32, v: vec4<f32>) {
  let h = vec4<f16>(v);
  kv[o] = h.x;
  kv[o + 1u] = h.y;
  kv[o + 2u] = h.z;
  kv[o + 3u] = h.w;
}

@compute @workgroup_size(128)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let kvh = wg.y;
  let group = p.group;
  let total = p.nSamp * group;
  let t0 = (nwg.x - 1u - wg.x) * BR; // heaviest (latest rows) first

  // Stage the 64 pairs' q (f16, scaled): 2048 vec4, 16 per invocation.
  for (var i = 0u; i < 16u; i++) {
    let idx = lid + i * 128u;
    let r = idx / 32u;
    let c = idx % 32u;
    let t = t0 + r;
    var v = vec4<f32>(0.0);
    if (t < total) {
      v = q_scaled(t / group, kvh * group + t % group, c);
    }
    put4(r * LDK + c * 4u, v);
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

  // Lane: pair r of the subgroup's 16, half h of each block's 32 keys.
  let r = lane / 2u;
  let half = lane % 2u;
  let t = t0 + qrow + r;
  let pos = p.pos + sample_row(min(t, total - 1u) / group);
  let w = p.window;
  var m = NEG_INF;
  var l = 0.0;
  var lw = 0.0;

  let last = p.pos + sample_row((min(t0 + BR, total) - 1u) / group); // last position in the tile
  let nblocks = last / BC + 1u;
  let kbase = kvh * p.capacity * D;
  let sbase = sg * 512u;
  for (var b = 0u; b < nblocks; b++) {
    let k0 = b * BC;
    workgroupBarrier();
    // K rows k0 .. k0 + 31: 32 x 64 words, 16 per invocation.
    for (var i = 0u; i < 16u; i++) {
      let idx = lid + i * 128u;
      let rr = idx / 64u;
      let wd = idx % 64u;
      var h = vec2<f16>(0.0h);
      if (k0 + rr <= last) {
        h = bitcast<vec2<f16>>(kc[(kbase + (k0 + rr) * D) / 2u + wd]);
      }
      let o = rr * LDK + wd * 2u;
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
    workgroupBarrier();
    // Online (max, sum, window sum) of this lane's 16 keys j <= pos.
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
    if (bm > m) {
      let corr = exp2(m - bm);
      l *= corr;
      lw *= corr;
      m = bm;
    }
    for (var c = 0u; c < 16u; c++) {
      let key = k0 + half * 16u + c;
      if (sv[c] > NEG_INF) {
        let e = exp2(sv[c] - m);
        l += e;
        if (key + w > pos) {
          lw += e;
        }
      }
    }
  }

  // Merge the two halves of the row (a half that saw no key has l = 0).
  let m2 = subgroupShuffleXor(m, 1u);
  let mm = max(m, m2);
  let a = select(0.0, exp2(m - mm), l > 0.0);
  let ll = pair_sum(l * a);
  let lwin = pair_sum(lw * a);
  if (half == 0u && t < total) {
    let row = (kvh * group + t % group) * p.nSamp + t / group;
    rowStats[row * 2u] = mm + log2(ll);
    rowStats[row * 2u + 1u] = lwin / ll;
  }
}

// Sum of x over the lane pair (lane, lane ^ 1).
fn pair_sum(x: f32) -> f32 {
  return x + subgroupShuffleXor(x, 1u);
}

@compute @workgroup_size(128)
fn cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let kvh = wg.y;
  let group = p.group;
  let j0 = wg.x * BR;
  let w = p.window;
  let kbase = kvh * p.capacity * D;

  // Stage K rows j0 .. j0 + 63 (zero past nCols): 64 x 64 words, 32 per invocation.
  for (var i = 0u; i < 32u; i++) {
    let idx = lid + i * 128u;
    let rr = idx / 64u;
    let wd = idx % 64u;
    var h = vec2<f16>(0.0h);
    if (j0 + rr < p.nCols) {
      h = bitcast<vec2<f16>>(kc[(kbase + (j0 + rr) * D) / 2u + wd]);
    }
    let o = rr * LDK + wd * 2u;
    kv[o] = h.x;
    kv[o + 1u] = h.y;
  }
  workgroupBarrier();
  let krow = sg * 16u;
  let k0m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 0u, false, LDK);
  let k1m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 16u, false, LDK);
  let k2m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 32u, false, LDK);
  let k3m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 48u, false, LDK);
  let k4m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 64u, false, LDK);
  let k5m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 80u, false, LDK);
  let k6m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 96u, false, LDK);
  let k7m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&kv, krow * LDK + 112u, false, LDK);

  // Lane: column c of the subgroup's 16, half h of each block's 32 sampled rows.
  let c = lane / 2u;
  let half = lane % 2u;
  let j = j0 + krow + c;
  let kStart = first_row_from(j0 + w);
  let nblocks = (p.nSamp - kStart + BC - 1u) / BC;
  let sbase = sg * 512u;
  var gsum = 0.0;
  for (var g = 0u; g < group; g++) {
    let head = kvh * group + g;
    var acc = 0.0;
    for (var b = 0u; b < nblocks; b++) {
      let kb = kStart + b * BC;
      workgroupBarrier();
      // The block's q rows (f16, scaled): 32 x 32 vec4, 8 per invocation; their metadata.
      for (var i = 0u; i < 8u; i++) {
        let idx = lid + i * 128u;
        let rr = idx / 32u;
        let cc = idx % 32u;
        var v = vec4<f32>(0.0);
        if (kb + rr < p.nSamp) {
          v = q_scaled(kb + rr, head, cc);
        }
        put4(rr * LDK + cc * 4u, v);
      }
      if (lid < BC) {
        let k = kb + lid;
        let ok = k < p.nSamp;
        let kk = min(k, p.nSamp - 1u);
        mok[lid] = select(0u, 1u, ok);
        mpos[lid] = p.pos + sample_row(kk);
        mlse[lid] = rowStats[(head * p.nSamp + kk) * 2u];
      }
      workgroupBarrier();
      // S^T = K Q^T for the block's rows 0 .. 15 (s0) and 16 .. 31 (s1).
      var s0 = subgroup_matrix_result<f32, 16, 16>();
      var s1 = subgroup_matrix_result<f32, 16, 16>();
      s0 = subgroupMatrixMultiplyAccumulate(k0m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 0u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k0m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k1m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k1m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 16u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k2m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 32u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k2m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 32u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k3m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 48u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k3m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 48u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k4m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 64u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k4m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 64u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k5m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 80u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k5m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 80u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k6m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 96u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k6m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 96u, true, LDK), s1);
      s0 = subgroupMatrixMultiplyAccumulate(k7m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 112u, true, LDK), s0);
      s1 = subgroupMatrixMultiplyAccumulate(k7m, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, 16u * LDK + 112u, true, LDK), s1);
      subgroupMatrixStore(&s_tile, sbase, s0, false, 32u);
      subgroupMatrixStore(&s_tile, sbase + 16u, s1, false, 32u);
      workgroupBarrier();
      // P of this lane's 16 rows at column j, for the rows whose window leaves j out.
      for (var e = 0u; e < 16u; e++) {
        let slot = half * 16u + e;
        if (mok[slot] != 0u && j + w <= mpos[slot]) {
          acc += exp2(s_tile[sbase + c * 32u + slot] - mlse[slot]);
        }
      }
    }
    let sum = pair_sum(acc);
    if (half == 0u && j < p.nCols) {
      colScores[head * p.capacity + j] = sum;
    }
    gsum += sum;
  }
  if (half == 0u && j < p.nCols) {
    groupScores[kvh * p.capacity + j] = gsum;
  }
}
