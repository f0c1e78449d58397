// Decode attention split, wide workgroups (kernels/attention_decode.ts,
// DecodeAttentionShape.sub > 1): split_tiled of attention_decode.wgsl with
// NSUB groups of 64 threads per workgroup. Group u takes tiles u, u + NSUB,
// ... of the workgroup's split with its own online softmax (as split_tiled's
// 64 threads do), and the NSUB (m, l, O) results are combined in workgroup
// memory before the one partial per (query head, split) is written. So a
// split can be NSUB times longer at the same parallelism: NSUB times fewer
// partials for the merge (the 'merged' decode plan merges them inside the wo
// projection, kernels/linear_gemv_merge.wgsl, where every workgroup reads all
// of them).
//
// Workgroup: 64 * NSUB threads. Dispatch: (nKvHeads * ceil(group / QG), nSplits, rows).
// Constants written into the source by the launcher: QG (query heads per
// workgroup), NC (vec4<u32> chunks per K/V row), CW (values per chunk: 8 f16,
// 4 f32), NSUB, PREFETCH_V.
// Precision: f32 math; K/V f32 or f16 pairs (KV_F16); softmax in f32 with
// scale 1/sqrt(headDim) on the scores.
//
// Bindings (as split_tiled):
//   tq:      (rows, nHeads * headDim / 4) vec4 f32, roped queries
//   tk, tv:  (nKvHeads, capacity, headDim) caches as vec4<u32> chunks
//   partO:   (rows, nHeads, nSplits, headDim / 4) vec4 f32, unnormalized outputs
//   partML:  (rows, nHeads, nSplits) vec2 (running max m, sum l)
//   params:  nHeads, nKvHeads, headDim, capacity, splitLen, nSplits, qg, scale
//   step:    pos

struct Params {
  nHeads: u32, nKvHeads: u32, headDim: u32, capacity: u32,
  splitLen: u32, nSplits: u32, qg: u32, scale: f32,
}
struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;

const QG: u32 = 4u;
const NC: u32 = 16u;
const CW: u32 = 8u;
const NSUB: u32 = 4u;
const PREFETCH_V: bool = false; // load the tile's V chunks with its K (4 * NC registers), so they arrive during the softmax
const TK: u32 = 64u;             // keys per tile = threads per group
const WGS: u32 = TK * NSUB;
const HD4: u32 = NC * CW / 4u;   // vec4<f32> per head
const NPARTS: u32 = TK / NC;     // key subsets of a group's P V step
const CV: u32 = CW / 4u;         // vec4<f32> per chunk

@group(0) @binding(0) var<storage, read> tq: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> tk: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> tv: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> partO: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partML: array<vec2<f32>>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

var<workgroup> qs: array<vec4<f32>, QG * HD4>;          // [QG][HD4] queries
var<workgroup> sc: array<f32, NSUB * QG * TK>;          // [NSUB][QG][TK] scores, then probabilities
var<workgroup> mNew: array<f32, NSUB * QG>;
var<workgroup> tAlpha: array<f32, NSUB * QG>;
var<workgroup> osum: array<vec4<f32>, NSUB * QG * HD4>; // [NSUB][QG][HD4] each group's P V sums
var<workgroup> subML: array<vec2<f32>, NSUB * QG>;      // [NSUB][QG] each group's (m, l)

fn lo4(w: vec4<u32>) -> vec4<f32> {
  if (KV_F16) { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
  return bitcast<vec4<f32>>(w);
}
fn hi4(w: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
}

@compute @workgroup_size(WGS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lt: u32) {
  let u = lt / TK;
  let t = lt % TK;
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
  let nTiles = select(0u, (end - start + TK - 1u) / TK, end > start);
  let part = t / NC;
  let jc = t % NC;
  let sb = u * QG * TK; // this group's rows of sc
  let ub = u * QG;      // this group's entries of mNew / tAlpha / subML

  let qBase4 = (r * params.nHeads + h0) * HD4;
  for (var i = lt; i < QG * HD4; i += WGS) {
    qs[i] = select(vec4<f32>(0.0), tq[qBase4 + i], i < nq * HD4);
  }
  var acc: array<vec4<f32>, 2 * QG>;
  for (var g = 0u; g < 2u * QG; g++) { acc[g] = vec4<f32>(0.0); }
  var m = -1e30;
  var l = 0.0;
  let kvBaseC = kvh * params.capacity * NC; // in chunks
  workgroupBarrier();

  // Uniform trip count: a group past the split's last tile runs with n = 0 (no change to its state).
  for (var it = 0u; it < nTiles; it += NSUB) {
    let t0 = start + (it + u) * TK;
    let n = select(0u, min(TK, end - t0), t0 < end);
    let vBase = kvBaseC + select(start, t0, n > 0u) * NC + jc;
    var vpre: array<vec4<u32>, NC>;
    if (PREFETCH_V) {
      for (var ii = 0u; ii < NC; ii++) { vpre[ii] = tv[vBase + min(part + ii * NPARTS, max(n, 1u) - 1u) * NC]; }
    }
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
      for (var g = 0u; g < QG; g++) { sc[sb + g * TK + t] = d[g] * params.scale; }
    }
    workgroupBarrier();
    if (t < QG) {
      var mt = m;
      for (var i = 0u; i < TK; i++) { mt = max(mt, select(-1e30, sc[sb + t * TK + i], i < n)); }
      tAlpha[ub + t] = exp(m - mt);
      mNew[ub + t] = mt;
      m = mt;
    }
    workgroupBarrier();
    for (var g = 0u; g < QG; g++) {
      sc[sb + g * TK + t] = select(0.0, exp(sc[sb + g * TK + t] - mNew[ub + g]), t < n);
    }
    workgroupBarrier();
    if (t < QG) {
      var sum = 0.0;
      for (var i = 0u; i < TK; i++) { sum += sc[sb + t * TK + i]; }
      l = l * tAlpha[ub + t] + sum;
    }
    for (var g = 0u; g < QG; g++) {
      let al = tAlpha[ub + g];
      acc[2u * g] *= al;
      acc[2u * g + 1u] *= al;
    }
    for (var ii = 0u; ii < NC; ii++) {
      let i = part + ii * NPARTS;
      if (i < n) {
        var w: vec4<u32>;
        if (PREFETCH_V) { w = vpre[ii]; } else { w = tv[vBase + i * NC]; }
        let a = lo4(w);
        if (KV_F16) {
          let b = hi4(w);
          for (var g = 0u; g < QG; g++) {
            let p = vec4<f32>(sc[sb + g * TK + i]);
            acc[2u * g] = fma(p, a, acc[2u * g]);
            acc[2u * g + 1u] = fma(p, b, acc[2u * g + 1u]);
          }
        } else {
          for (var g = 0u; g < QG; g++) { acc[2u * g] = fma(vec4<f32>(sc[sb + g * TK + i]), a, acc[2u * g]); }
        }
      }
    }
    workgroupBarrier();
  }

  // Each group's key subsets summed into its osum rows.
  for (var pp = 0u; pp < NPARTS; pp++) {
    if (part == pp) {
      for (var g = 0u; g < QG; g++) {
        for (var c = 0u; c < CV; c++) {
          let i = (ub + g) * HD4 + jc * CV + c;
          if (pp == 0u) { osum[i] = acc[2u * g + c]; } else { osum[i] += acc[2u * g + c]; }
        }
      }
    }
    workgroupBarrier();
  }
  if (t < QG) { subML[ub + t] = vec2<f32>(m, l); }
  workgroupBarrier();

  // The NSUB groups combined: weights exp(m_u - M) (0 for a group that saw no key).
  let outBase = (r * params.nHeads + h0) * params.nSplits + s;
  for (var i = lt; i < nq * HD4; i += WGS) {
    let g = i / HD4;
    var mx = -1e30;
    for (var v = 0u; v < NSUB; v++) { mx = max(mx, subML[v * QG + g].x); }
    var o = vec4<f32>(0.0);
    for (var v = 0u; v < NSUB; v++) { o = fma(vec4<f32>(exp(subML[v * QG + g].x - mx)), osum[(v * QG + g) * HD4 + i % HD4], o); }
    partO[(outBase + g * params.nSplits) * HD4 + i % HD4] = o;
  }
  if (lt < nq) {
    var mx = -1e30;
    for (var v = 0u; v < NSUB; v++) { mx = max(mx, subML[v * QG + lt].x); }
    var sum = 0.0;
    for (var v = 0u; v < NSUB; v++) { let ml = subML[v * QG + lt]; sum += ml.y * exp(ml.x - mx); }
    partML[outBase + lt * params.nSplits] = vec2<f32>(mx, sum);
  }
}
