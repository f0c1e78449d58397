// Weight format 'q4' for the linear kernels (src/loader/formats.ts): eight
// 4-bit codes per u32 word, bits 4*(e & 7).. hold element e. Raw value
// q - 8 in [-8, 7]; the kernel multiplies by the group's f16 scale.
// Defines no bindings. Precision: exact ((q - 8) * scale in f32).

const EPW: u32 = 8u;
const QUANT: bool = true;

fn dec_word(w: u32) -> array<f32, EPW> {
  let lo = vec4<f32>((vec4<u32>(w) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) - vec4<f32>(8.0);
  let hi = vec4<f32>((vec4<u32>(w) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u)) - vec4<f32>(8.0);
  return array<f32, EPW>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  return f32((w >> (4u * sub)) & 15u) - 8.0;
}
