// Greedy pick and top-k over a logits vector, so only the chosen ids come back.
//   argmax:       one workgroup; out[0] = index of the largest value (lowest index on ties).
//   topk_partial: workgroup c takes chunk [c * CHUNK, (c + 1) * CHUNK) into workgroup
//                 memory and extracts its k best (k argmax rounds, each clearing the winner).
//                 Dispatch: (ceil(n / CHUNK), 1, 1).
//   topk_merge:   one workgroup; k argmax rounds over the nChunks * k candidates.
// Workgroup: 256 threads; every reduction step is followed by a barrier.
// Precision: f32 comparisons; NaN never wins.
//
// Bindings (argmax): x (n) f32, out (1) u32, params n.
// Bindings (topk_partial): x (n) f32, candV (nChunks * k) f32, candI (nChunks * k) u32, params n, k.
// Bindings (topk_merge): candV, candI (read_write: winners are cleared), outV (k) f32, outI (k) u32, params.

struct Params { n: u32, k: u32, nChunks: u32, pad: u32 }

const WG: u32 = 256u;
const CHUNK: u32 = 1024u;
const NEG: f32 = -3.40282e38;

var<workgroup> bestV: array<f32, 256>;
var<workgroup> bestI: array<u32, 256>;
var<workgroup> chunk: array<f32, 1024>;

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

// Tree reduction of (bestV, bestI) to slot 0; callers seed every slot first.
fn reduce(lid: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s && better(bestV[lid + s], bestI[lid + s], bestV[lid], bestI[lid])) {
      bestV[lid] = bestV[lid + s];
      bestI[lid] = bestI[lid + s];
    }
    workgroupBarrier();
  }
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> outIndex: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn argmax(@builtin(local_invocation_index) lid: u32) {
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var i = lid; i < params.n; i += WG) {
    let v = x[i];
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
  }
  bestV[lid] = bv;
  bestI[lid] = bi;
  reduce(lid);
  if (lid == 0u) { outIndex[0] = select(bestI[0], 0u, bestI[0] == 0xffffffffu); }
}

@group(0) @binding(0) var<storage, read> px: array<f32>;
@group(0) @binding(1) var<storage, read_write> candV: array<f32>;
@group(0) @binding(2) var<storage, read_write> candI: array<u32>;
@group(0) @binding(3) var<uniform> pParams: Params;

@compute @workgroup_size(256)
fn topk_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c0 = wg.x * CHUNK;
  for (var i = lid; i < CHUNK; i += WG) {
    let g = c0 + i;
    var v = NEG;
    if (g < pParams.n) { v = px[g]; if (!(v == v)) { v = NEG; } }
    chunk[i] = v;
  }
  for (var r = 0u; r < pParams.k; r++) {
    workgroupBarrier();
    var bv = NEG;
    var bi = 0xffffffffu;
    for (var i = lid; i < CHUNK; i += WG) {
      if (better(chunk[i], c0 + i, bv, bi) && c0 + i < pParams.n) { bv = chunk[i]; bi = c0 + i; }
    }
    bestV[lid] = bv;
    bestI[lid] = bi;
    reduce(lid);
    if (lid == 0u) {
      candV[wg.x * pParams.k + r] = bestV[0];
      candI[wg.x * pParams.k + r] = bestI[0];
      // Cleared entries hold NaN, which never wins a comparison.
      if (bestI[0] != 0xffffffffu) { chunk[bestI[0] - c0] = bitcast<f32>(0x7fc00000u | pParams.pad); }
    }
  }
}

@group(0) @binding(0) var<storage, read_write> mV: array<f32>;
@group(0) @binding(1) var<storage, read_write> mI: array<u32>;
@group(0) @binding(2) var<storage, read_write> outV: array<f32>;
@group(0) @binding(3) var<storage, read_write> outI: array<u32>;
@group(0) @binding(4) var<uniform> mParams: Params;

@compute @workgroup_size(256)
fn topk_merge(@builtin(local_invocation_index) lid: u32) {
  let n = mParams.nChunks * mParams.k;
  for (var r = 0u; r < mParams.k; r++) {
    var bv = NEG;
    var bi = 0xffffffffu;
    var bslot = 0xffffffffu;
    for (var i = lid; i < n; i += WG) {
      if (mI[i] != 0xffffffffu && better(mV[i], mI[i], bv, bi)) { bv = mV[i]; bi = mI[i]; bslot = i; }
    }
    bestV[lid] = bv;
    bestI[lid] = bi;
    reduce(lid);
    if (lid == 0u) {
      outV[r] = bestV[0];
      outI[r] = bestI[0];
    }
    // Clear the winner: its candidate slot is found by the thread that held it.
    if (bi == bestI[0] && bi != 0xffffffffu) { mI[bslot] = 0xffffffffu; }
    workgroupBarrier();
    storageBarrier();
  }
}
