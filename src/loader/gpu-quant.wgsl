// Quantization at load, on the GPU: one block of rows of a weight, read in the
// checkpoint's own dtype, to q8 or q4 (src/loader/formats.ts). The same
// arithmetic as src/loader/quant.ts: the scale is rounded to f16 with
// round-to-nearest-even (integer code below, identical to f32ToF16), and
// q = floor(x / scale + 0.5) (Math.round); only the f32 division (the CPU
// divides in f64) can differ, at near-ties, by one step.
// Workgroup: 64 threads, one pair of groups each (a pair shares one scales word).
// Dispatch: ceil(nPairs / 64) workgroups, split over x/y (params.gridX threads per row).
// Precision: f32.
// SRC (override): 0 F32 (one per word), 1 F16, 2 BF16 (two per word, low half first).
// Q4 (override): 1 q4 (8 per word, offset 8), 0 q8 (4 per word, two's complement).
//
// Bindings:
//   src:    (nGroups * groupSize) elements in SRC, as u32 words
//   data:   (partRows * cols) packed, u32 words; this block starts at word params.dataWord
//   scales: (partRows * cols / groupSize) f16 pairs; this block starts at word params.scaleWord
//   params: nGroups, groupSize, dataWord, scaleWord, gridX

struct Params { nGroups: u32, groupSize: u32, dataWord: u32, scaleWord: u32, gridX: u32, pad0: u32, pad1: u32, pad2: u32 }

override SRC: u32 = 0u;
override Q4: u32 = 1u;

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

fn elem(e: u32) -> f32 {
  switch SRC {
    case 0u: { return bitcast<f32>(src[e]); }
    case 1u: {
      let v = unpack2x16float(src[e >> 1u]);
      return select(v.x, v.y, (e & 1u) == 1u);
    }
    default: {
      let h = (src[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
      return bitcast<f32>(h << 16u);
    }
  }
}


@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pair = gid.x + gid.y * params.gridX;
  let g0 = pair * 2u;
  if (g0 >= params.nGroups) { return; }
  let gs = params.groupSize;
  var scaleWord = 0u;
  for (var k = 0u; k < 2u; k = k + 1u) {
    let g = g0 + k;
    if (g >= params.nGroups) { break; }
    let base = g * gs;
    var amax = 0.0;
    var vmax = 0.0;
    for (var i = 0u; i < gs; i = i + 1u) {
      let v = elem(base + i);
      if (abs(v) > amax) { amax = abs(v); vmax = v; }
    }
    let sh = select(f32_to_f16(amax / 127.0), f32_to_f16(-vmax / 8.0), Q4 == 1u);
    let s = unpack2x16float(sh).x;
    scaleWord = scaleWord | (sh << (k * 16u));
    if (Q4 == 1u) {
      for (var i = 0u; i < gs; i = i + 8u) {
        var w = 0u;
        for (var j = 0u; j < 8u; j = j + 1u) {
          var q = 8;
          if (s != 0.0) { q = clamp(i32(floor(elem(base + i + j) / s + 0.5)) + 8, 0, 15); }
          w = w | (u32(q) << (j * 4u));
        }
        data[params.dataWord + (base + i) / 8u] = w;
      }
    } else {
      for (var i = 0u; i < gs; i = i + 4u) {
        var w = 0u;
        for (var j = 0u; j < 4u; j = j + 1u) {
          var q = 0;
          if (s > 0.0) { q = clamp(i32(floor(elem(base + i + j) / s + 0.5)), -127, 127); }
          w = w | ((u32(q) & 0xffu) << (j * 8u));
        }
        data[params.dataWord + (base + i) / 4u] = w;
      }
    }
  }
  scales[params.scaleWord + pair] = scaleWord;
}
