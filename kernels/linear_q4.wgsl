// Weight format 'q4' for the linear kernels (src/loader/formats.ts): eight
// 4-bit codes per u32 word, bits 4*(e & 7).. hold element e. Raw value
// q - 8 in [-8, 7]; the kernel multiplies by the group's f16 scale.
// Defines no bindings. Precision: exact ((q - 8) * scale in f32).

const EPW: u32 = 8u;
const QUANT: bool = true;

// No int -> float conversion (quarter rate on NVIDIA): nibble p of a 16-bit
// half sits at bits 4p..4p+3, inside the mantissa of a float with exponent
// 23 - 4p, so (bits & mask) | exponent is exactly 2^(23 - 4p) + q, and one
// subtraction gives q - 8 (all values integers below 2^24: exact).
const Q4_MASK = vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u);
const Q4_EXP = vec4<u32>(0x4b000000u, 0x49000000u, 0x47000000u, 0x45000000u); // 2^23, 2^19, 2^15, 2^11
const Q4_BIAS = vec4<f32>(8388616.0, 524296.0, 32776.0, 2056.0);             // 2^(23 - 4p) + 8

fn dec_word(w: u32) -> array<f32, EPW> {
  let lo = bitcast<vec4<f32>>((vec4<u32>(w) & Q4_MASK) | Q4_EXP) - Q4_BIAS;
  let hi = bitcast<vec4<f32>>((vec4<u32>(w >> 16u) & Q4_MASK) | Q4_EXP) - Q4_BIAS;
  return array<f32, EPW>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  return f32((w >> (4u * sub)) & 15u) - 8.0;
}

// The prefill GEMM's weight chunk (linear_gemm.wgsl): CH elements along k, 1 word(s).
alias WChunk = u32;
const CH: u32 = 8u;
fn chunk_word(c: WChunk, i: u32) -> u32 {
  return c;
}
