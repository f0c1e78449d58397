// RoPE on the Q and K heads of a fused QKV projection, fused with writing K
// (roped) and V into the KV cache at positions [pos, pos + rows).
// Variants (VARIANT override):
//   0 interleaved-half (ChatGLM2): dims [0, rotaryDim) in pairs (2i, 2i+1):
//       x'[2i] = a cos_i - b sin_i, x'[2i+1] = b cos_i + a sin_i; the rest passes.
//   1 neox (InternLM2): rotate_half over rotaryDim = headDim, half = headDim / 2:
//       x'[j] = x[j] cos_j - x[j+half] sin_j, x'[j+half] = x[j+half] cos_j + x[j] sin_j.
// cos/sin come from a table the engine computes on the CPU per chunk (f32
// tables as the reference implementations use; dynamic NTK changes the base).
// Workgroup: 64 threads, each producing two adjacent elements (one f16 word).
// Dispatch: (ceil((nHeads + 2 nKvHeads) * headDim / 2 / 64), rows, 1).
// Precision: f32 math; the cache stores f32 (KV_F16 = false) or f16 pairs.
// Tier (generated header, src/gpu/wgsl-header.ts): qkv and q are `act`, converted on load / store.
//
// Bindings:
//   qkv:    (rows, (nHeads + 2 nKvHeads) * headDim) act: all Q heads, then K, then V
//   table:  (rows, rotaryDim / 2) vec2<f32> (cos, sin) for positions pos + r
//   q:      (rows, nHeads * headDim) act, roped
//   kCache: (nKvHeads, capacity, headDim) f32 words or f16 pairs (u32)
//   vCache: same as kCache
//   params: rows, nHeads, nKvHeads, headDim, rotaryDim, capacity
//   step:   pos (first position of the chunk)

struct Params { rows: u32, nHeads: u32, nKvHeads: u32, headDim: u32, rotaryDim: u32, capacity: u32, pad0: u32, pad1: u32 }
struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override VARIANT: u32 = 0u;
override KV_F16: bool = false;

@group(0) @binding(0) var<storage, read> qkv: array<act>;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> q: array<act>;
@group(0) @binding(3) var<storage, read_write> kCache: array<u32>;
@group(0) @binding(4) var<storage, read_write> vCache: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

// Element j of the roped head whose first element is qkv[base]; row r selects the table row.
fn roped(base: u32, j: u32, r: u32) -> f32 {
  let x = f32(qkv[base + j]);
  if (j >= params.rotaryDim) { return x; }
  let half = params.rotaryDim / 2u;
  if (VARIANT == 0u) {
    let i = j / 2u;
    let cs = table[r * half + i];
    if ((j & 1u) == 0u) { return x * cs.x - f32(qkv[base + j + 1u]) * cs.y; }
    return x * cs.x + f32(qkv[base + j - 1u]) * cs.y;
  }
  if (j < half) {
    let cs = table[r * half + j];
    return x * cs.x - f32(qkv[base + j + half]) * cs.y;
  }
  let cs = table[r * half + j - half];
  return x * cs.x + f32(qkv[base + j - half]) * cs.y;
}

fn store_kv(isK: bool, word: u32, a: f32, b: f32) {
  if (KV_F16) {
    let v = pack2x16float(vec2<f32>(a, b));
    if (isK) { kCache[word] = v; } else { vCache[word] = v; }
  } else {
    if (isK) { kCache[2u * word] = bitcast<u32>(a); kCache[2u * word + 1u] = bitcast<u32>(b); }
    else { vCache[2u * word] = bitcast<u32>(a); vCache[2u * word + 1u] = bitcast<u32>(b); }
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hd = params.headDim;
  let pairsPerHead = hd / 2u;
  let nTotal = params.nHeads + 2u * params.nKvHeads;
  let p = gid.x;
  let r = gid.y;
  if (p >= nTotal * pairsPerHead || r >= params.rows) { return; }
  let head = p / pairsPerHead;
  let j = 2u * (p % pairsPerHead);
  let base = (r * nTotal + head) * hd;
  if (head < params.nHeads) {
    let o = (r * params.nHeads + head) * hd + j;
    q[o] = act(roped(base, j, r));
    q[o + 1u] = act(roped(base, j + 1u, r));
    return;
  }
  let isK = head < params.nHeads + params.nKvHeads;
  let kvh = select(head - params.nHeads - params.nKvHeads, head - params.nHeads, isK);
  let pos = step.pos + r;
  if (pos >= params.capacity) { return; }
  // Word index of element pair (j, j+1) in the f16 layout; the f32 layout doubles it.
  let word = ((kvh * params.capacity + pos) * hd + j) / 2u;
  if (isK) { store_kv(true, word, roped(base, j, r), roped(base, j + 1u, r)); }
  else { store_kv(false, word, f32(qkv[base + j]), f32(qkv[base + j + 1u])); }
}
