// Dequantization of a q4 / q8 weight range into the 'f16' (or 'f32') GPU
// weight format of src/loader/formats.ts, so the prefill GEMM can read a
// quantized weight as a plain f16 one (LinearOptions.prefillDequant).
//
// Copies `count` consecutive elements of one part, starting at element
// srcElem0 of the part, to elements dstElem0.. of dst. Preceded by the
// format file (linear_q4.wgsl / linear_q8.wgsl: EPW, dec_word, dec_elem) and
// by a generated header (dequant_f16.ts) defining OUT_F16, VEC, the dst
// binding (u32 words, as vec2/vec4 where VEC stores whole vectors),
// dst_get / dst_set (one u32 word) and `fn store_word(i: u32, v: array<f32, EPW>)`
// (the VEC path's store of the EPW values of source word i of the range).
//
// Workgroup: 256 threads. Dispatch: (x, y) workgroups with x * y * 256 >=
// the thread count (VEC: count / EPW, one source word each; else f16: one
// destination word each, read-modify-write of a half shared with a
// neighbouring range; f32: one element each).
// Precision: value = q * scale exact in f32; f16 output rounded to nearest
// even by integer ops (the CPU's f32ToF16 in src/loader/quant.ts, bit for bit).

struct Params {
  srcElem0: u32,
  dstElem0: u32,
  count: u32,
  group: u32,
};

@group(0) @binding(0) var<storage, read> src: array<u32>;     // packed q4 / q8 words of one part
@group(0) @binding(1) var<storage, read> scales: array<u32>;  // (groups) f16 pairs of the part
@group(0) @binding(3) var<uniform> p: Params;
// binding 2 (dst, read_write) is declared by the generated header.

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
    var v = dec_word(src[e / EPW]);
    for (var j = 0u; j < EPW; j++) { v[j] = v[j] * s; }
    store_word(i, v);
  } else if (OUT_F16) {
    // Destination word d covers elements 2d, 2d + 1; keep the half outside the range.
    let d = p.dstElem0 / 2u + i;
    if (d * 2u >= p.dstElem0 + p.count) { return; }
    var word = dst_get(d);
    for (var h = 0u; h < 2u; h++) {
      let de = d * 2u + h;
      if (de >= p.dstElem0 && de < p.dstElem0 + p.count) {
        let bits = f32_to_f16(elem(p.srcElem0 + de - p.dstElem0));
        word = (word & ~(0xffffu << (16u * h))) | (bits << (16u * h));
      }
    }
    dst_set(d, word);
  } else {
    if (i >= p.count) { return; }
    dst_set(p.dstElem0 + i, bitcast<u32>(elem(p.srcElem0 + i)));
  }
}
