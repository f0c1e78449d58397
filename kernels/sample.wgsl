// Token sampling on the GPU: repetition penalty, greedy (argmax), temperature,
// top-k, top-p; writes only the chosen token id (4 bytes to read back).
//
// Workgroup: 256 threads, ONE workgroup does everything (the vocabulary is at
// most ~150k: a few hundred elements per thread per pass).
// Dispatch: (1, 1, 1).
// Precision: f32 logits, f32 sums (fixed reduction order: deterministic).
//
// Semantics (kernels/sample.ts sampleRef is the CPU reference):
//   v_i = logits_i, or for ids in the history: v/penalty if v > 0 else v*penalty;
//   greedy: the smallest index of max v;
//   otherwise p_i ~ exp((v_i - max v) / temperature) over the kept set:
//     top-k keeps v_i >= (k-th largest v, counting repeats) (topK 0 = all);
//     top-p keeps, within that set, v_i >= the largest threshold t whose set
//       {v >= t} holds at least topP of the top-k set's mass;
//   the pick is the first index (in vocabulary order) whose running mass
//   exceeds r * (kept mass), r uniform in [0, 1) from a seeded CPU PRNG.
// Thresholds are found by bisection over the order-preserving u32 key of f32,
// so ties and repeated values follow the rule above exactly.
//
// Bindings:
//   logits:  (vocab) f32, read
//   history: (capacity) u32 token ids, the first nHistory are used
//   scratch: (vocab) f32, penalized logits (written only when penalty != 1)
//   result:  (4) u32, [0] = chosen id
//   params:  Params

struct Params {
  vocab: u32,
  nHistory: u32,
  topK: u32,
  greedy: u32,
  temperature: f32,
  topP: f32,
  penalty: f32,
  r: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> history: array<u32>;
@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

const WG: u32 = 256u;

var<workgroup> redF: array<f32, WG>;
var<workgroup> redU: array<u32, WG>;
var<workgroup> prefix: array<f32, WG>;

// Monotone map f32 -> u32: a < b  <=>  key(a) < key(b).
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

fn val(i: u32) -> f32 {
  if (params.penalty != 1.0) { return scratch[i]; }
  return logits[i];
}

fn sumU(tid: u32, x: u32) -> u32 {
  redU[tid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (tid < s) { redU[tid] = redU[tid] + redU[tid + s]; }
    workgroupBarrier();
  }
  let total = workgroupUniformLoad(&redU[0]);
  return total;
}

fn sumF(tid: u32, x: f32) -> f32 {
  redF[tid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (tid < s) { redF[tid] = redF[tid] + redF[tid + s]; }
    workgroupBarrier();
  }
  let total = workgroupUniformLoad(&redF[0]);
  return total;
}

// Number of tokens with key >= t.
fn countAtLeast(tid: u32, t: u32) -> u32 {
  var c = 0u;
  for (var i = tid; i < params.vocab; i += WG) {
    if (key(val(i)) >= t) { c += 1u; }
  }
  return sumU(tid, c);
}

// Unnormalized mass exp((v - vmax) / T) of the tokens with key >= t.
fn massAtLeast(tid: u32, t: u32, vmax: f32) -> f32 {
  var m = 0.0;
  for (var i = tid; i < params.vocab; i += WG) {
    let v = val(i);
    if (key(v) >= t) { m += exp((v - vmax) / params.temperature); }
  }
  return sumF(tid, m);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
  let vocab = params.vocab;

  // 1. Repetition penalty into scratch (a copy; the engine's logits stay intact).
  if (params.penalty != 1.0) {
    for (var i = tid; i < vocab; i += WG) { scratch[i] = logits[i]; }
    storageBarrier();
    for (var j = tid; j < params.nHistory; j += WG) {
      let id = history[j];
      if (id < vocab) {
        let x = logits[id];
        scratch[id] = select(x * params.penalty, x / params.penalty, x > 0.0);
      }
    }
    storageBarrier();
  }

  // 2. Max and its smallest index.
  var bestV = -3.40282e38;
  var bestI = 0xffffffffu;
  for (var i = tid; i < vocab; i += WG) {
    let v = val(i);
    if (v > bestV || bestI == 0xffffffffu) { bestV = v; bestI = i; }
  }
  redF[tid] = bestV;
  redU[tid] = bestI;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (tid < s) {
      let ov = redF[tid + s];
      let oi = redU[tid + s];
      let mine = redU[tid];
      if (oi != 0xffffffffu && (mine == 0xffffffffu || ov > redF[tid] || (ov == redF[tid] && oi < mine))) {
        redF[tid] = ov;
        redU[tid] = oi;
      }
    }
    workgroupBarrier();
  }
  let vmax = workgroupUniformLoad(&redF[0]);
  let argmax = workgroupUniformLoad(&redU[0]);
  if (tid == 0u) { result[0] = argmax; }
  if (params.greedy != 0u) { return; }
  storageBarrier(); // result[0] above is written before any pick in step 5

  // 3. Top-k threshold: the largest t with count(key >= t) >= topK.
  let kmax = key(vmax);
  var thresh = 0u;
  if (params.topK > 0u && params.topK < vocab) {
    var lo = 0u;
    var hi = kmax; // count(>= kmax) >= 1; the answer is in [lo, kmax]
    while (lo < hi) {
      let mid = lo + (hi - lo + 1u) / 2u;
      let c = countAtLeast(tid, mid);
      if (c >= params.topK) { lo = mid; } else { hi = mid - 1u; }
      // exactly topK at or above mid: that set is the top-k set (v_k >= mid > v_k+1), stop early
      if (c == params.topK) { break; }
    }
    thresh = lo;
  }

  // 4. Top-p threshold within the top-k set: the largest t with mass(>= t) >= topP * mass(top-k).
  if (params.topP < 1.0) {
    let need = params.topP * massAtLeast(tid, thresh, vmax);
    var lo = thresh;
    var hi = kmax; // the answer is in [lo, kmax]
    while (lo < hi) {
      let mid = lo + (hi - lo + 1u) / 2u;
      if (massAtLeast(tid, mid, vmax) >= need) { lo = mid; } else { hi = mid - 1u; }
    }
    thresh = lo;
  }

  // 5. Inverse CDF in vocabulary order: contiguous chunks per thread, prefix over threads.
  let chunk = (vocab + WG - 1u) / WG;
  let begin = min(tid * chunk, vocab);
  let end = min(begin + chunk, vocab);
  var local = 0.0;
  for (var i = begin; i < end; i++) {
    let v = val(i);
    if (key(v) >= thresh) { local += exp((v - vmax) / params.temperature); }
  }
  prefix[tid] = local;
  workgroupBarrier();
  if (tid == 0u) {
    var run = 0.0;
    for (var t = 0u; t < WG; t++) {
      let x = prefix[t];
      prefix[t] = run;
      run += x;
    }
    redF[0] = run;
  }
  workgroupBarrier();
  let goal = params.r * redF[0];
  let start = prefix[tid];
  if (local > 0.0 && start <= goal && goal < start + local) {
    var run = start;
    var last = 0xffffffffu;
    for (var i = begin; i < end; i++) {
      let v = val(i);
      if (key(v) >= thresh) {
        run += exp((v - vmax) / params.temperature);
        last = i;
        if (run > goal) { break; }
      }
    }
    result[0] = last;
  }
}
