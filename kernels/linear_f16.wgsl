// Weight format 'f16' for the linear kernels (src/loader/formats.ts): two
// halves per u32 word, low half = even element. Defines no bindings.
//
// Decoded with integer bit moves instead of unpack2x16float (which measured
// slow on the H100 under Dawn/Vulkan): the half's exponent and mantissa
// (bits 0..14) shifted left by 13 land in an f32's exponent/mantissa fields
// with the exponent bias 127 instead of 15, so multiplying by 2^112 gives
// the exact value (normals, and subnormals where the GPU keeps f32
// denormals; one that flushes them reads f16 subnormals, |v| < 6.1e-5, as
// 0); the sign bit is moved to bit 31. Inf/NaN halves would decode wrong,
// but never occur: the loader keeps out-of-range tensors in f32.
// Precision: exact (see above).

const EPW: u32 = 2u;
const QUANT: bool = false;
const F16_EXP_FIX: f32 = 5.192296858534828e33; // 2^112

fn dec_word(w: u32) -> array<f32, EPW> {
  let lo = bitcast<f32>(((w & 0x7fffu) << 13u) | ((w & 0x8000u) << 16u)) * F16_EXP_FIX;
  let hi = bitcast<f32>(((w >> 3u) & 0x0fffe000u) | (w & 0x80000000u)) * F16_EXP_FIX;
  return array<f32, EPW>(lo, hi);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  let h = w >> (16u * sub);
  return bitcast<f32>(((h & 0x7fffu) << 13u) | ((h & 0x8000u) << 16u)) * F16_EXP_FIX;
}

// The prefill GEMM's weight chunk (linear_gemm.wgsl): CH elements along k, 4 word(s).
alias WChunk = vec4<u32>;
const CH: u32 = 8u;
fn chunk_word(c: WChunk, i: u32) -> u32 {
  return c[i];
}
