// SampleAttention stage 2, column scores: for every key column j outside the
// window of a sampled row i (j + w <= i), c_h[j] = sum over sampled rows of
// P_h[i, j] = exp2(s_ij - lse_i) (the rows' exact causal softmax; lse from the
// 'sample' flash pass). Also writes the KV group's sum over its heads.
//
// Workgroup: CT columns x TPR threads; each column's K row stays in registers
// (split over TPR lanes, reduced with subgroup shuffles); QT sampled q rows
// at a time are staged in workgroup memory. Rows whose position cannot reach
// the tile (i < j0 + w) are skipped a whole tile at a time (rows are sorted).
// Dispatch: (ceil(nCols / CT), nKvHeads, 1). Precision: f32.
//
// Bindings (kc at 1 and Params at 6 come from the header):
//   q:           (rows, nHeads * HEAD_DIM) f32
//   rowStats:    (nHeads, nSamp, 2) f32: lse (log2 units), window mass
//   colScores:   (nHeads, capacity) f32, columns [0, nCols) written
//   groupScores: (nKvHeads, capacity) f32, columns [0, nCols) written

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> rowStats: array<f32>;
@group(0) @binding(4) var<storage, read_write> colScores: array<f32>;
@group(0) @binding(5) var<storage, read_write> groupScores: array<f32>;

var<workgroup> qs: array<vec4<f32>, QT * DVP>; // [QT][DVP]
var<workgroup> rl: array<f32, QT>;             // lse of the staged rows
var<workgroup> ri: array<u32, QT>;             // absolute positions (0xffffffff past nSamp)

@compute @workgroup_size(CT * TPR)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kvh = wg.y;
  let lane = lid % TPR;
  let j0 = wg.x * CT;
  let j = j0 + lid / TPR;
  let validCol = j < p.nCols;
  let jc = min(j, p.nCols - 1u);
  var kv: array<vec4<f32>, NV>;
  for (var v = 0u; v < NV; v++) { kv[v] = load_k4(kvh * p.capacity + jc, lane + v * TPR); }

  var gsum = 0.0;
  for (var g = 0u; g < p.group; g++) {
    let head = kvh * p.group + g;
    var acc = 0.0;
    for (var r0 = 0u; r0 < p.nSamp; r0 += QT) {
      let lastK = min(r0 + QT, p.nSamp) - 1u;
      if (p.pos + sample_row(lastK) < j0 + p.window) { continue; }
      workgroupBarrier();
      for (var e = lid; e < QT * DVP; e += CT * TPR) {
        let rk = r0 + e / DVP;
        let d = (e % DVP) * 4u;
        var x = vec4<f32>(0.0);
        if (rk < p.nSamp) {
          let base = sample_row(rk) * p.nHeads * HEAD_DIM + head * HEAD_DIM;
          for (var c = 0u; c < 4u; c++) { if (d + c < HEAD_DIM) { x[c] = q[base + d + c]; } }
        }
        qs[e] = x * p.scale;
      }
      if (lid < QT) {
        let rk = r0 + lid;
        ri[lid] = select(0xffffffffu, p.pos + sample_row(rk), rk < p.nSamp);
        rl[lid] = rowStats[(head * p.nSamp + min(rk, p.nSamp - 1u)) * 2u];
      }
      workgroupBarrier();
      for (var r = 0u; r < QT; r++) {
        var part = 0.0;
        for (var v = 0u; v < NV; v++) { part += dot(qs[r * DVP + lane + v * TPR], kv[v]); }
        let s = row_sum(part);
        let i = ri[r];
        if (i != 0xffffffffu && jc + p.window <= i) { acc += exp2(s - rl[r]); }
      }
    }
    if (validCol && lane == 0u) { colScores[head * p.capacity + j] = acc; }
    gsum += acc;
  }
  if (validCol && lane == 0u) { groupScores[kvh * p.capacity + j] = gsum; }
}
