// Dequantization of a q4 / q8 weight range into the 'f32' GPU weight format of
// src/gpu/formats.ts, so the prefill GEMM reads a quantized weight as a plain
// f32 one (kernels/linear.ts, LinearOptions.prefillDequantMinRows).
//
// Copies `count` consecutive elements of one part, starting at element
// srcElem0 of the part, to elements dstElem0.. of dst. Preceded by the format
// file (linear_q4.wgsl / linear_q8.wgsl: EPW, dec_word, dec_elem).
//
// Workgroup: 256 threads. Dispatch: (x, y) workgroups with x * y * 256 >= the
// thread count: VEC (srcElem0, dstElem0, count and the group multiples of
// EPW): count / EPW threads, one source word each, stored as EPW / 4 whole
// vec4; else one destination vec4 each, elements outside the range kept (a
// neighbouring range's, written by an earlier dispatch).
// Precision: value = q * scale, exact in f32.

struct Params {
  srcElem0: u32,
  dstElem0: u32,
  count: u32,
  group: u32,
};

@group(0) @binding(0) var<storage, read> src: array<u32>;     // packed q4 / q8 words of one part
@group(0) @binding(1) var<storage, read> scales: array<u32>;  // (groups) f16 pairs of the part
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>; // f32 bits of (dstElem0 + count) elements, 4 per vector

override VEC: bool = true;

// IEEE half bits -> f32, exact for subnormals whatever the GPU's denormal mode.
fn half_to_f32(h: u32) -> f32 {
  let mag = h & 0x7fffu;
  var v: f32;
  if (mag < 0x400u) {
    v = f32(mag) * 5.960464477539063e-8; // 2^-24
  } else {
    v = bitcast<f32>((mag << 13u) + 0x38000000u); // exponent bias 15 -> 127
  }
  return select(v, -v, (h & 0x8000u) != 0u);
}

fn scale_of(g: u32) -> f32 {
  return half_to_f32((scales[g >> 1u] >> (16u * (g & 1u))) & 0xffffu);
}


fn elem(e: u32) -> f32 {
  return dec_elem(src[e / EPW], e % EPW) * scale_of(e / p.group);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (VEC) {
    // Source word srcElem0 / EPW + i; its EPW elements share one group (group % EPW == 0).
    if (i >= p.count / EPW) { return; }
    let e = p.srcElem0 + i * EPW;
    let s = scale_of(e / p.group);
    let v = dec_word(src[e / EPW]);
    let d = (p.dstElem0 + i * EPW) / 4u;
    for (var q = 0u; q < EPW / 4u; q++) {
      dst[d + q] = bitcast<vec4<u32>>(vec4<f32>(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]) * s);
    }
  } else {
    // Destination vector d covers elements 4d .. 4d + 3.
    let d = p.dstElem0 / 4u + i;
    if (d * 4u >= p.dstElem0 + p.count) { return; }
    var w = dst[d];
    for (var c = 0u; c < 4u; c++) {
      let de = d * 4u + c;
      if (de >= p.dstElem0 && de < p.dstElem0 + p.count) { w[c] = bitcast<u32>(elem(p.srcElem0 + de - p.dstElem0)); }
    }
    dst[d] = w;
  }
}
