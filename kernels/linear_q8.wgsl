// Weight format 'q8' for the linear kernels (src/loader/formats.ts): four
// two's-complement int8 per u32 word, byte (e & 3) holds element e. Raw value
// q in [-128, 127]; the kernel multiplies by the group's f16 scale.
// Defines no bindings. Precision: exact (q * scale in f32).

const EPW: u32 = 4u;
const QUANT: bool = true;

fn dec_word(w: u32) -> array<f32, EPW> {
  // Shift each byte to the top, then arithmetic-shift down: sign extension.
  let q = bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  let v = vec4<f32>(q);
  return array<f32, EPW>(v.x, v.y, v.z, v.w);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  return f32(bitcast<i32>(w << (24u - 8u * sub)) >> 24u);
}
