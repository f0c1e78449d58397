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
// Precision: f32 math; K/V f32 or f16 pairs (KV_F16); softmax in f32 with
// scale 1/sqrt(headDim) applied to the scores.
//
// Bindings (split):
//   q:       (rows, nHeads * headDim) f32, roped
//   kCache:  (nKvHeads, capacity, headDim) f32 words or f16 pairs
//   vCache:  same
//   partO:   (rows, nHeads, nSplits, headDim) f32
//   partML:  (rows, nHeads, nSplits) vec2 (m, l)
//   params:  nHeads, nKvHeads, headDim, capacity, splitLen, nSplits, qg, scale
//   step:    pos
// Bindings (merge): partO, partML, out (rows, nHeads * headDim) f32, params.

struct Params {
  nHeads: u32, nKvHeads: u32, headDim: u32, capacity: u32,
  splitLen: u32, nSplits: u32, qg: u32, scale: f32,
}
struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;

const TILE: u32 = 64u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
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
        for (var c = 0u; c < hd; c++) { d = fma(q[qBase + g * hd + c], k_at(kRow + c), d); }
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
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
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
    out[(r * mParams.nHeads + h) * hd + c] = o / lSum;
  }
}
