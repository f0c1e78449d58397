// Weight format 'q8' for the linear kernels (src/loader/formats.ts): four
// two's-complement int8 per u32 word, byte (e & 3) holds element e. Raw value
// q in [-128, 127]; the kernel multiplies by the group's f16 scale.
// Defines no bindings. Precision: exact (q * scale in f32).

const EPW: u32 = 4u;
const QUANT: bool = true;

// No int -> float conversion (quarter rate on NVIDIA): flipping the sign
// bits makes each byte b = q + 128 unsigned; byte p of a 16-bit half sits at
// bits 8p..8p+7, inside the mantissa of a float with exponent 23 - 8p, so
// (bits & mask) | exponent is exactly 2^(23 - 8p) + b, and one subtraction
// gives q (integers below 2^24: exact).
const Q8_MASK = vec2<u32>(0xffu, 0xff00u);
const Q8_EXP = vec2<u32>(0x4b000000u, 0x47000000u); // 2^23, 2^15
const Q8_BIAS = vec2<f32>(8388736.0, 32896.0);      // 2^(23 - 8p) + 128

fn dec_word(w: u32) -> array<f32, EPW> {
  let b = w ^ 0x80808080u;
  let lo = bitcast<vec2<f32>>((vec2<u32>(b) & Q8_MASK) | Q8_EXP) - Q8_BIAS;
  let hi = bitcast<vec2<f32>>((vec2<u32>(b >> 16u) & Q8_MASK) | Q8_EXP) - Q8_BIAS;
  return array<f32, EPW>(lo.x, lo.y, hi.x, hi.y);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  return f32(bitcast<i32>(w << (24u - 8u * sub)) >> 24u);
}

// The prefill GEMM's weight chunk (linear_gemm.wgsl): CH elements along k, 2 word(s).
alias WChunk = vec2<u32>;
const CH: u32 = 8u;
fn chunk_word(c: WChunk, i: u32) -> u32 {
  return c[i];
}
