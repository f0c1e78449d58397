// Elementwise ops on f32 vectors.
//   add: a[i] += b[i] (the residual add, in place)
// Workgroup: 256 threads, one element each.
// Dispatch: (ceil(n / 256) split over x/y by dispatchDims, 1) ; threads past n return.
// Precision: f32.
//
// Bindings:
//   a:      (n) f32, read_write
//   b:      (n) f32
//   params: n, stride of the y dispatch dimension in workgroups

struct Params { n: u32, groupsX: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * params.groupsX + wg.x) * 256u + lid;
  if (i >= params.n) { return; }
  a[i] = a[i] + b[i];
}
