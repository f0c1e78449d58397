// Attention of a few query rows over the KV cache, split along the cache
// length (split-K, "flash decoding"), then merged. Row r sits at position
// pos + r and attends keys [0, pos + r] (causal); decode is rows = 1.
// GQA: query head h reads KV head h / (nHeads / nKvHeads); a workgroup takes
// qg query heads of one KV group (params.qg <= 16, qg * headDim <= 2048), so K/V are read once per group, never copied.
//
// split: workgroup of 64 threads for (KV head, query subgroup), split, row.
//   Keys are processed in tiles of 64 (one key per thread for the scores,
//   then every thread updates its share of the qg x headDim accumulators, kept
//   in workgroup memory) with an online softmax across tiles. Writes the unnormalized output, running
//   max m and sum l of its split.
//   Dispatch: (nKvHeads * ceil(group / qg), nSplits, rows).
// merge: workgroup of 64 threads per (query head, row), combines the splits.
//   Dispatch: (nHeads, rows, 1).
// split_tiled (the default where headDim fits): same grid and outputs as split,
// 64 threads, keys in tiles of 64 read as vec4<u32> chunks (8 f16 or 4 f32
// values). Scores: thread t takes key t of the tile, q of the QG heads in
// workgroup memory, QG running dot products in registers. P V: thread t takes
// chunk t % nc (nc = chunks per row) of keys t / nc, t / nc + 64 / nc, ...,
// QG x chunk accumulators in registers (rescaled per tile), summed over the
// 64 / nc key subsets in workgroup memory at the end.
// Generated header (src/gpu/wgsl-header.ts, from kernels/attention_decode.ts decodePlan): the
// tier's activation type act / act4 (q and out; converted on load / store, math in f32), const
// QG (query heads per workgroup), NC (vec4<u32> chunks per K/V row), CW (values per chunk: 8
// f16, 4 f32); they size function-scope arrays, which WGSL cannot size by an override. KV_F16
// is an override.
//   Bindings: tq (rows, nHeads * headDim / 4) act4; tk, tv the caches as
//   vec4<u32>; partO, partML, params, step as for split.
// Precision: f32 math; K/V f32 or f16 pairs (KV_F16); softmax in f32 with
// scale 1/sqrt(headDim) applied to the scores.
//
// Bindings (split):
//   q:       (rows, nHeads * headDim) act, roped
//   kCache:  (nKvHeads, capacity, headDim) f32 words or f16 pairs
//   vCache:  same
//   partO:   (rows, nHeads, nSplits, headDim) f32
//   partML:  (rows, nHeads, nSplits) vec2 (m, l)
//   params:  nHeads, nKvHeads, headDim, capacity, splitLen, nSplits, qg, scale
//   step:    pos
// Bindings (merge): partO, partML, out (rows, nHeads * headDim) act, params.

struct Params {
  nHeads: u32, nKvHeads: u32, headDim: u32, capacity: u32,
  splitLen: u32, nSplits: u32, qg: u32, scale: f32,
}
struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;

const TILE: u32 = 64u;

@group(0) @binding(0) var<storage, read> q: array<act>;
@group(0) @binding(1) var<storage, read> kCache: array<u32>;
@group(0) @binding(2) var<storage, read> vCache: array<u32>;
@group(0) @binding(3) var<storage, read_write> partO: array<f32>;
@group(0) @binding(4) var<storage, read_write> partML: array<vec2<f32>>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

var<workgroup> acc: array<f32, 2048>;     // [qg][headDim] unnormalized outputs; thread t owns t, t + 64, ...
var<workgroup> scores: array<f32, 1024>;  // [qg][TILE], qg <= 16
var<workgroup> alphas: array<f32, 16>;

fn k_at(e: u32) -> f32 {
  if (KV_F16) {
    let v = unpack2x16float(kCache[e >> 1u]);
    return select(v.x, v.y, (e & 1u) == 1u);
  }
  return bitcast<f32>(kCache[e]);
}

fn v_at(e: u32) -> f32 {
  if (KV_F16) {
    let v = unpack2x16float(vCache[e >> 1u]);
    return select(v.x, v.y, (e & 1u) == 1u);
  }
  return bitcast<f32>(vCache[e]);
}

@compute @workgroup_size(64)
fn split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let hd = params.headDim;
  let group = params.nHeads / params.nKvHeads;
  let qg = params.qg;
  let nSub = (group + qg - 1u) / qg;
  let kvh = wg.x / nSub;
  let h0 = kvh * group + (wg.x % nSub) * qg;   // first query head of this workgroup
  let nq = min(qg, kvh * group + group - h0);  // query heads here (the last subgroup may be short)
  let s = wg.y;
  let r = wg.z;
  let kvLen = step.pos + r + 1u;
  let start = s * params.splitLen;
  let end = min(start + params.splitLen, kvLen);
  let qBase = (r * params.nHeads + h0) * hd;
  let nOut = nq * hd;

  for (var i = t; i < nOut; i += 64u) { acc[i] = 0.0; }
  var m = -1e30;
  var l = 0.0;

  let kvBase = kvh * params.capacity * hd;
  for (var t0 = start; t0 < end; t0 += TILE) {
    let n = min(TILE, end - t0);
    // Scores: thread t takes key t0 + t for every query head of the workgroup.
    if (t < n) {
      let kRow = kvBase + (t0 + t) * hd;
      for (var g = 0u; g < nq; g++) {
        var d = 0.0;
        for (var c = 0u; c < hd; c++) { d = fma(f32(q[qBase + g * hd + c]), k_at(kRow + c), d); }
        scores[g * TILE + t] = d * params.scale;
      }
    }
    workgroupBarrier();
    // Online softmax: thread g < nq owns query head g's running max and sum.
    if (t < nq) {
      var mt = m;
      for (var i = 0u; i < n; i++) { mt = max(mt, scores[t * TILE + i]); }
      let alpha = exp(m - mt);
      var sum = 0.0;
      for (var i = 0u; i < n; i++) {
        let p = exp(scores[t * TILE + i] - mt);
        scores[t * TILE + i] = p;
        sum += p;
      }
      l = l * alpha + sum;
      m = mt;
      alphas[t] = alpha;
    }
    workgroupBarrier();
    // Accumulate P V into the outputs this thread owns.
    for (var idx = t; idx < nOut; idx += 64u) {
      let g = idx / hd;
      let c = idx % hd;
      var a = acc[idx] * alphas[g];
      for (var jj = 0u; jj < n; jj++) { a = fma(scores[g * TILE + jj], v_at(kvBase + (t0 + jj) * hd + c), a); }
      acc[idx] = a;
    }
    workgroupBarrier();
  }

  for (var idx = t; idx < nOut; idx += 64u) {
    let g = idx / hd;
    let c = idx % hd;
    partO[((r * params.nHeads + h0 + g) * params.nSplits + s) * hd + c] = acc[idx];
  }
  if (t < nq) { partML[(r * params.nHeads + h0 + t) * params.nSplits + s] = vec2<f32>(m, l); }
}

@group(0) @binding(0) var<storage, read> mO: array<f32>;
@group(0) @binding(1) var<storage, read> mML: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<act>;
@group(0) @binding(3) var<uniform> mParams: Params;
@group(0) @binding(4) var<uniform> mStep: Step;

@compute @workgroup_size(64)
fn merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let h = wg.x;
  let r = wg.y;
  let hd = mParams.headDim;
  let kvLen = mStep.pos + r + 1u;
  let nSplits = min(mParams.nSplits, (kvLen + mParams.splitLen - 1u) / mParams.splitLen);
  let base = (r * mParams.nHeads + h) * mParams.nSplits;
  var mMax = -1e30;
  for (var s = 0u; s < nSplits; s++) { mMax = max(mMax, mML[base + s].x); }
  var lSum = 0.0;
  for (var s = 0u; s < nSplits; s++) { let ml = mML[base + s]; lSum += ml.y * exp(ml.x - mMax); }
  for (var c = t; c < hd; c += 64u) {
    var o = 0.0;
    for (var s = 0u; s < nSplits; s++) { o = fma(mO[(base + s) * hd + c], exp(mML[base + s].x - mMax), o); }
    out[(r * mParams.nHeads + h) * hd + c] = act(o / lSum);
  }
}

// split_tiled / merge_tiled constants; QG, NC and CW come from the launcher's header.
const TK: u32 = 64u;    // keys per tile = threads
const HD4: u32 = NC * CW / 4u;   // vec4<f32> per head
const NPARTS: u32 = TK / NC;     // key subsets of the P V step (keys per subset per tile: NC)
const CV: u32 = CW / 4u;         // vec4<f32> per chunk

@group(0) @binding(0) var<storage, read> tq: array<act4>;
@group(0) @binding(1) var<storage, read> tk: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> tv: array<vec4<u32>>;

var<workgroup> qs: array<vec4<f32>, QG * HD4>;   // [QG][HD4] queries; at the end, the P V sums
var<workgroup> sc: array<f32, QG * TK>;          // [QG][TK] scores, then probabilities
var<workgroup> mNew: array<f32, QG>;
var<workgroup> tAlpha: array<f32, QG>;

// The 8 (f16) or 4 (f32, hi unused) values of one vec4<u32> chunk.
fn lo4(w: vec4<u32>) -> vec4<f32> {
  if (KV_F16) { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
  return bitcast<vec4<f32>>(w);
}
fn hi4(w: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
}

@compute @workgroup_size(64)
fn split_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let group = params.nHeads / params.nKvHeads;
  let nSub = (group + QG - 1u) / QG;
  let kvh = wg.x / nSub;
  let h0 = kvh * group + (wg.x % nSub) * QG;
  let nq = min(QG, kvh * group + group - h0);
  let s = wg.y;
  let r = wg.z;
  let kvLen = step.pos + r + 1u;
  let start = s * params.splitLen;
  let end = min(start + params.splitLen, kvLen);
  let part = t / NC;
  let jc = t % NC;

  let qBase4 = (r * params.nHeads + h0) * HD4;
  for (var i = t; i < QG * HD4; i += TK) {
    qs[i] = select(vec4<f32>(0.0), vec4<f32>(tq[qBase4 + i]), i < nq * HD4);
  }
  var acc: array<vec4<f32>, 2 * QG>;
  for (var g = 0u; g < 2u * QG; g++) { acc[g] = vec4<f32>(0.0); }
  var m = -1e30;
  var l = 0.0;
  let kvBaseC = kvh * params.capacity * NC;   // in chunks
  workgroupBarrier();

  for (var t0 = start; t0 < end; t0 += TK) {
    let n = min(TK, end - t0);
    // Scores of key t0 + t for the QG heads.
    if (t < n) {
      var d: array<f32, QG>;
      for (var g = 0u; g < QG; g++) { d[g] = 0.0; }
      let kRow = kvBaseC + (t0 + t) * NC;
      for (var j = 0u; j < NC; j++) {
        let w = tk[kRow + j];
        let a = lo4(w);
        if (KV_F16) {
          let b = hi4(w);
          for (var g = 0u; g < QG; g++) { d[g] += dot(qs[g * HD4 + 2u * j], a) + dot(qs[g * HD4 + 2u * j + 1u], b); }
        } else {
          for (var g = 0u; g < QG; g++) { d[g] += dot(qs[g * HD4 + j], a); }
        }
      }
      for (var g = 0u; g < QG; g++) { sc[g * TK + t] = d[g] * params.scale; }
    }
    workgroupBarrier();
    if (t < QG) {
      var mt = m;
      for (var i = 0u; i < TK; i++) { mt = max(mt, select(-1e30, sc[t * TK + i], i < n)); }
      tAlpha[t] = exp(m - mt);
      mNew[t] = mt;
      m = mt;
    }
    workgroupBarrier();
    for (var g = 0u; g < QG; g++) {
      sc[g * TK + t] = select(0.0, exp(sc[g * TK + t] - mNew[g]), t < n);
    }
    workgroupBarrier();
    if (t < QG) {
      var sum = 0.0;
      for (var i = 0u; i < TK; i++) { sum += sc[t * TK + i]; }
      l = l * tAlpha[t] + sum;
    }
    // P V for chunk jc of keys part, part + NPARTS, ... of the tile.
    for (var g = 0u; g < QG; g++) {
      let al = tAlpha[g];
      acc[2u * g] *= al;
      acc[2u * g + 1u] *= al;
    }
    let vBase = kvBaseC + t0 * NC + jc;
    for (var ii = 0u; ii < NC; ii++) {
      let i = part + ii * NPARTS;
      if (i < n) {
        let w = tv[vBase + i * NC];
        let a = lo4(w);
        if (KV_F16) {
          let b = hi4(w);
          for (var g = 0u; g < QG; g++) {
            let p = vec4<f32>(sc[g * TK + i]);
            acc[2u * g] = fma(p, a, acc[2u * g]);
            acc[2u * g + 1u] = fma(p, b, acc[2u * g + 1u]);
          }
        } else {
          for (var g = 0u; g < QG; g++) { acc[2u * g] = fma(vec4<f32>(sc[g * TK + i]), a, acc[2u * g]); }
        }
      }
    }
    workgroupBarrier();
  }

  // Sum the key subsets' accumulators into qs (no longer needed for q).
  for (var pp = 0u; pp < NPARTS; pp++) {
    if (part == pp) {
      for (var g = 0u; g < QG; g++) {
        for (var u = 0u; u < CV; u++) {
          let i = g * HD4 + jc * CV + u;
          if (pp == 0u) { qs[i] = acc[2u * g + u]; } else { qs[i] += acc[2u * g + u]; }
        }
      }
    }
    workgroupBarrier();
  }
  let outBase = (r * params.nHeads + h0) * params.nSplits + s;
  for (var i = t; i < nq * HD4; i += TK) {
    let g = i / HD4;
    let c = i % HD4;
    let o = qs[i];
    let b = (outBase + g * params.nSplits) * HD4 * 4u + c * 4u;
    partO[b] = o.x; partO[b + 1u] = o.y; partO[b + 2u] = o.z; partO[b + 3u] = o.w;
  }
  if (t < nq) { partML[outBase + t * params.nSplits] = vec2<f32>(m, l); }
}

// merge_tiled: 256 threads per (query head, row); split weights by tree
// reductions (nSplits <= 128), then thread t sums vec4 t % HD4 of the splits
// t / HD4, t / HD4 + 256 / HD4, ... and the 256 / HD4 groups are added up.
// Needs 256 % HD4 == 0. Bindings: fO (partO as vec4), mML, out4 (out as vec4), mParams, mStep.
const MT: u32 = 256u;
const NG: u32 = MT / HD4;
@group(0) @binding(0) var<storage, read> fO: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<act4>;
var<workgroup> wsh: array<f32, 128>;
var<workgroup> red: array<f32, MT>;
var<workgroup> osum: array<vec4<f32>, MT>;

@compute @workgroup_size(256)
fn merge_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let h = wg.x;
  let r = wg.y;
  let kvLen = mStep.pos + r + 1u;
  let nS = min(mParams.nSplits, (kvLen + mParams.splitLen - 1u) / mParams.splitLen);
  let base = (r * mParams.nHeads + h) * mParams.nSplits;
  var ml = vec2<f32>(-1e30, 0.0);
  if (t < nS) { ml = mML[base + t]; }
  red[t] = ml.x;
  workgroupBarrier();
  for (var k = MT / 2u; k > 0u; k = k >> 1u) {
    if (t < k) { red[t] = max(red[t], red[t + k]); }
    workgroupBarrier();
  }
  let mMax = red[0];
  workgroupBarrier();
  let w = select(0.0, exp(ml.x - mMax), t < nS);
  if (t < 128u) { wsh[t] = w; }
  red[t] = ml.y * w;
  workgroupBarrier();
  for (var k = MT / 2u; k > 0u; k = k >> 1u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  let lSum = red[0];
  let c = t % HD4;
  var o = vec4<f32>(0.0);
  // Constant trip count (unrolled: the loads go out together); nS <= 128.
  for (var k = 0u; k < (128u + NG - 1u) / NG; k++) {
    let sp = t / HD4 + k * NG;
    if (sp < nS) { o = fma(vec4<f32>(wsh[sp]), fO[(base + sp) * HD4 + c], o); }
  }
  osum[t] = o;
  workgroupBarrier();
  if (t < HD4) {
    var tot = vec4<f32>(0.0);
    for (var g = 0u; g < NG; g++) { tot += osum[g * HD4 + t]; }
    out4[(r * mParams.nHeads + h) * HD4 + t] = act4(tot / lSum);
  }
}
