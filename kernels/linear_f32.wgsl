// Weight format 'f32' for the linear kernels (src/loader/formats.ts): one
// element per u32 word, bit-cast. Concatenated before linear_gemm.wgsl /
// linear_gemv*.wgsl by kernels/linear.ts; defines no bindings.
// Precision: exact.

const EPW: u32 = 1u;       // elements per u32 word
const QUANT: bool = false; // no per-group scales

// Raw (unscaled) values of one word, in element order.
fn dec_word(w: u32) -> array<f32, EPW> {
  return array<f32, EPW>(bitcast<f32>(w));
}

// Raw value of element `sub` (0 .. EPW-1) of word `w`.
fn dec_elem(w: u32, sub: u32) -> f32 {
  return bitcast<f32>(w);
}

// The prefill GEMM's weight chunk (linear_gemm.wgsl): CH elements along k, 4 word(s).
alias WChunk = vec4<u32>;
const CH: u32 = 4u;
fn chunk_word(c: WChunk, i: u32) -> u32 {
  return c[i];
}
