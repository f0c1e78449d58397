// Combine of the split row-stats kernel (kernels/sample_scores.wgsl mode 0 with
// nSplit > 1): each sampled (head, row) pair's nSplit partial (max, sum, window
// sum) over disjoint key ranges -> lse (log2 units) and window mass.
// Workgroup: 64 threads, one (head, row) pair each.
// Dispatch: (ceil(nHeads * nSamp / 64), nSplit, 1); only y = 0 works (nSplit is
// read from num_workgroups, so no uniform beyond the shared Params is needed).
// Precision: f32.
//
// Bindings (the header declares the Params uniform at 6):
//   rowStats: (nHeads, nSamp, 2) f32 written: lse, window mass
//   partials: (nSplit, nHeads, nSamp) vec4 f32 (max, sum, window sum, 0)

@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<vec4<f32>>;

const NEG_INF: f32 = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = p.nHeads * p.nSamp;
  let row = gid.x;
  if (wg.y != 0u || row >= n) { return; }
  var mm = NEG_INF;
  for (var s = 0u; s < nwg.y; s++) { mm = max(mm, partials[s * n + row].x); }
  var ll = 0.0;
  var lwin = 0.0;
  for (var s = 0u; s < nwg.y; s++) {
    let st = partials[s * n + row];
    let w = select(0.0, exp2(st.x - mm), st.y > 0.0);
    ll += st.y * w;
    lwin += st.z * w;
  }
  rowStats[row * 2u] = mm + log2(ll);
  rowStats[row * 2u + 1u] = lwin / ll;
}
