// Attention of a few query rows over the KV cache, split along the cache
// length (split-K, "flash decoding"), then merged. Row r sits at position
// pos + r and attends keys [0, pos + r] (causal); decode is rows = 1.
// GQA: query head h reads KV head h / (nHeads / nKvHeads); a workgroup takes
// QG query heads of one KV group, so K/V are read once per group, never copied.
//
// split: workgroup of 64 threads for (KV head, query subgroup), split, row.
//   Keys are processed in tiles of 64 (one key per thread for the scores,
//   then every thread updates its share of the QG x headDim accumulators) with
//   an online softmax across tiles. Writes the unnormalized output, running
//   max m and sum l of its split.
//   Dispatch: (nKvHeads * ceil(group / QG), nSplits, rows).
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
//   params:  nHeads, nKvHeads, headDim, capacity, splitLen, nSplits, -, scale
//   step:    pos
// Bindings (merge): partO, partML, out (rows, nHeads * headDim) f32, params.

struct Params {
  nHeads: u32, nKvHeads: u32, headDim: u32, capacity: u32,
  splitLen: u32, nSplits: u32, pad0: u32, scale: f32,
}
struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;
/** Query heads per workgroup; QG * headDim <= 2048. */
override QG: u32 = 1u;

const TILE: u32 = 64u;
const MAX_ACC: u32 = 32u; // 2048 / 64 accumulators per thread

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kCache: array<u32>;
@group(0) @binding(2) var<storage, read> vCache: array<u32>;
@group(0) @binding(3) var<storage, read_write> partO: array<f32>;
@group(0) @binding(4) var<storage, read_write> partML: array<vec2<f32>>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

var<workgroup> qs: array<f32, 2048>;        // [QG][headDim]
var<workgroup> scores: array<f32, 1024>;    // [QG][TILE], max QG = 16
var<workgroup> alphas: array<f32, 16>;

fn kv_at(isK: bool, e: u32) -> f32 {
  if (KV_F16) {
    let w = select(vCache[e >> 1u], kCache[e >> 1u], isK);
    let v = unpack2x16float(w);
    return select(v.x, v.y, (e & 1u) == 1u);
  }
  return bitcast<f32>(select(vCache[e], kCache[e], isK));
}

@compute @workgroup_size(64)
fn split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let hd = params.headDim;
  let group = params.nHeads / params.nKvHeads;
  let nSub = (group + QG - 1u) / QG;
  let kvh = wg.x / nSub;
  let h0 = kvh * group + (wg.x % nSub) * QG;   // first query head of this workgroup
  let nq = min(QG, kvh * group + group - h0);  // query heads here (the last subgroup may be short)
  let s = wg.y;
  let r = wg.z;
  let kvLen = step.pos + r + 1u;
  let start = s * params.splitLen;
  let end = min(start + params.splitLen, kvLen);

  for (var i = t; i < nq * hd; i += 64u) { qs[i] = q[(r * params.nHeads + h0) * hd + i]; }
  var m = -1e30;
  var l = 0.0;
  var acc: array<f32, MAX_ACC>;
  for (var i = 0u; i < MAX_ACC; i++) { acc[i] = 0.0; }
  workgroupBarrier();

  let kvBase = kvh * params.capacity * hd;
  for (var t0 = start; t0 < end; t0 += TILE) {
    // Scores: thread t takes key t0 + t for every query head of the group.
    let j = t0 + t;
    for (var g = 0u; g < nq; g++) {
      var sc = -1e38;
      if (j < end) {
        var d = 0.0;
        for (var c = 0u; c < hd; c++) { d = fma(qs[g * hd + c], kv_at(true, kvBase + j * hd + c), d); }
        sc = d * params.scale;
      }
      scores[g * TILE + t] = sc;
    }
    workgroupBarrier();
    // Online softmax: thread g < nq owns query head g's running max and sum.
    let n = min(TILE, end - t0);
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
    // Accumulate P V: thread t owns outputs t, t + 64, ... of the nq x headDim block.
    for (var i = 0u; i < MAX_ACC; i++) {
      let idx = t + i * 64u;
      if (idx >= nq * hd) { break; }
      let g = idx / hd;
      let c = idx % hd;
      var a = acc[i] * alphas[g];
      for (var jj = 0u; jj < n; jj++) { a = fma(scores[g * TILE + jj], kv_at(false, kvBase + (t0 + jj) * hd + c), a); }
      acc[i] = a;
    }
    workgroupBarrier();
  }

  let slot = s;
  for (var i = 0u; i < MAX_ACC; i++) {
    let idx = t + i * 64u;
    if (idx >= nq * hd) { break; }
    let g = idx / hd;
    let c = idx % hd;
    partO[((r * params.nHeads + h0 + g) * params.nSplits + slot) * hd + c] = acc[i];
  }
  if (t < nq) { partML[(r * params.nHeads + h0 + t) * params.nSplits + slot] = vec2<f32>(m, l); }
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
