// Weight format 'f16' for the linear kernels (src/loader/formats.ts): two
// halves per u32 word, low half = even element. Unpacked with the core
// builtin unpack2x16float (no shader-f16 needed). Defines no bindings.
// Precision: exact (f16 -> f32 is exact).

const EPW: u32 = 2u;
const QUANT: bool = false;

fn dec_word(w: u32) -> array<f32, EPW> {
  let v = unpack2x16float(w);
  return array<f32, EPW>(v.x, v.y);
}

fn dec_elem(w: u32, sub: u32) -> f32 {
  return unpack2x16float(w)[sub];
}
