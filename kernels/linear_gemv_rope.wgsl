// RoPE + KV-cache epilogue of the matrix-vector linear kernels (decode,
// one row, ROPE_ROWS): the QKV projection's rows come in rotation pairs
// (weight_row), so a workgroup holds both elements of each pair it computes
// and rotates them itself (kernels/rope.wgsl without its own pass):
//   v = in_scale * dot (+ bias); Q and K pairs inside rotaryDim rotated by
//   table (cos, sin) of the pair; Q -> y (nHeads * headDim), K and V ->
//   kCache / vCache at position step.pos (f32 words, or f16 pairs: the thread
//   of an even element writes the word with its odd neighbour, which the
//   launcher makes sure sits in the same workgroup: headDim % 4 == 0,
//   rotaryDim % 4 == 0, NR % 4 == 0).
// p.n counts pairs: (nHeads + 2 nKvHeads) * headDim / 2.
//
// Bindings:
//   table:  (rotaryDim / 2) vec2<f32> (cos, sin) of position step.pos
//   kCache: (nKvHeads, capacity, headDim) f32 words or f16 pairs (u32); vCache: same
//   step:   pos (the row's position)

@group(0) @binding(9) var<storage, read> table: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read_write> kCache: array<u32>;
@group(0) @binding(11) var<storage, read_write> vCache: array<u32>;
@group(0) @binding(12) var<uniform> step: Step;

struct Step { pos: u32, rows: u32, kvLen: u32, pad: u32 }

override KV_F16: bool = false;

fn store(lid: u32, wgi: u32) {
  let inv = in_scale(lid);
  let hp = p.headDim / 2u;
  // Rotate each pair in place (a thread owns slots o and HALF + o).
  for (var o = lid; o < HALF; o += WG) {
    let pr = wgi * HALF + o;
    if (pr < p.n) {
      let ra = weight_row(wgi, o).y - p.row0;
      let rb = weight_row(wgi, HALF + o).y - p.row0;
      var a = inv * res[o];
      var b = inv * res[HALF + o];
      if (HAS_BIAS) { a += bias[p.biasOff + ra]; b += bias[p.biasOff + rb]; }
      let j = pr % hp;
      if (ra / p.headDim < p.nHeads + p.nKvHeads && j < p.rotaryDim / 2u) {
        let cs = table[j];
        let a2 = a * cs.x - b * cs.y;
        b = b * cs.x + a * cs.y;
        a = a2;
      }
      res[o] = a;
      res[HALF + o] = b;
    }
  }
  workgroupBarrier();
  for (var s = lid; s < NR; s += WG) {
    let pr = wgi * HALF + s % HALF;
    let row = weight_row(wgi, s).y - p.row0;
    let head = row / p.headDim;
    let e = row % p.headDim;
    if (pr < p.n) {
      if (head < p.nHeads) {
        y[p.yOff + row] = res[s];
      } else if (step.pos < p.capacity) {
        let isK = head < p.nHeads + p.nKvHeads;
        let kvh = select(head - p.nHeads - p.nKvHeads, head - p.nHeads, isK);
        let idx = (kvh * p.capacity + step.pos) * p.headDim + e;
        if (KV_F16) {
          if ((e & 1u) == 0u) {
            // The odd neighbour: the next pair's slot (neox, inside rotaryDim) or this pair's second.
            let inRot = p.neox != 0u && (pr % hp) < p.rotaryDim / 2u;
            let w = pack2x16float(vec2<f32>(res[s], res[select(s + HALF, s + 1u, inRot)]));
            if (isK) { kCache[idx / 2u] = w; } else { vCache[idx / 2u] = w; }
          }
        } else {
          if (isK) { kCache[idx] = bitcast<u32>(res[s]); } else { vCache[idx] = bitcast<u32>(res[s]); }
        }
      }
    }
  }
}
