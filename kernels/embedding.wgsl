// Embedding gather: out[r] = dequant(table[ids[r]]) for the rows of one part of
// a (possibly row-split) table; rows whose id lies outside the part are left
// alone (one dispatch per part covers every id exactly once).
// Workgroup: 256 threads, one output element each.
// Dispatch: (ceil(dim / 256), rows, 1).
// Precision: weights unpacked to f32 (formats of src/loader/formats.ts).
// FORMAT (override): 0 f32, 1 f16, 2 q8, 3 q4.
//
// Bindings:
//   ids:    (rows) u32
//   data:   (partRows, dim) packed in FORMAT, as u32 words
//   scales: (partRows * dim / groupSize) f16 pairs (q8/q4; any buffer otherwise)
//   out:    (rows, dim) f32
//   params: rows, dim, rowStart, partRows, groupSize

struct Params { rows: u32, dim: u32, rowStart: u32, partRows: u32, groupSize: u32, pad0: u32, pad1: u32, pad2: u32 }

override FORMAT: u32 = 0u;

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn half_at(words_index: u32, odd: bool, w: u32) -> f32 {
  let v = unpack2x16float(w);
  return select(v.x, v.y, odd);
}

fn scale_of(e: u32) -> f32 {
  let g = e / params.groupSize;
  return half_at(g >> 1u, (g & 1u) == 1u, scales[g >> 1u]);
}

fn load(e: u32) -> f32 {
  switch FORMAT {
    case 0u: { return bitcast<f32>(data[e]); }
    case 1u: { return half_at(e >> 1u, (e & 1u) == 1u, data[e >> 1u]); }
    case 2u: {
      let b = (data[e >> 2u] >> (8u * (e & 3u))) & 0xffu;
      let q = i32(b << 24u) >> 24u;
      return f32(q) * scale_of(e);
    }
    default: {
      let q = (data[e >> 3u] >> (4u * (e & 7u))) & 0xfu;
      return (f32(q) - 8.0) * scale_of(e);
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= params.dim || r >= params.rows) { return; }
  let id = ids[r];
  if (id < params.rowStart || id >= params.rowStart + params.partRows) { return; }
  out[r * params.dim + c] = load((id - params.rowStart) * params.dim + c);
}
