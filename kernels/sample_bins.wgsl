// SampleAttention column histogram (issue 8's heatmap): the selected column
// ids of each KV group, counted into COLUMN_BINS = 256 equal bins of key
// positions [0, binLen): bin b counts the ids c with floor(c * 256 / binLen) == b
// (c * 256 in u32: exact for c < 2^24). Runs only when the prefill asks for
// the report; every bin of the slot is written, so nothing needs clearing.
// Workgroup: 256 threads, one per bin (workgroup atomics, then one store each).
// Dispatch: (nKvHeads, 1, 1). Precision: u32 counts.
//
// Bindings:
//   sel:  (nKvHeads, stride) u32: [count, ids ascending...] (stride = capacity + 1)
//   bins: u32 at a.offset: (nKvHeads, 256)
//   a:    offset (words), binLen, stride

struct BinArgs { offset: u32, binLen: u32, stride: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> sel: array<u32>;
@group(0) @binding(1) var<storage, read_write> bins: array<u32>;
@group(0) @binding(2) var<uniform> a: BinArgs;

const NB: u32 = 256u;
var<workgroup> hist: array<atomic<u32>, NB>;

@compute @workgroup_size(NB)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  atomicStore(&hist[lid], 0u);
  workgroupBarrier();
  let base = wg.x * a.stride;
  let n = sel[base];
  let len = max(a.binLen, 1u);
  for (var i = lid; i < n; i += NB) {
    let c = sel[base + 1u + i];
    atomicAdd(&hist[min(NB - 1u, (c * NB) / len)], 1u);
  }
  workgroupBarrier();
  bins[a.offset + wg.x * NB + lid] = atomicLoad(&hist[lid]);
}
