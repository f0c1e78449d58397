/** The tensors of a golden.safetensors fixture (F32 / I32) from its bytes, and the logit comparison of the golden checks; no Node API (runs in a page too). */

export function parseGolden(buf: Uint8Array): Map<string, { shape: number[]; data: Float32Array | Int32Array }> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    out.set(name, { shape: t.shape, data: t.dtype === 'I32' ? new Int32Array(ab) : new Float32Array(ab) });
  }
  return out;
}

/** Max |a - b| over rows, max |golden|, and positions whose argmax differs although the golden top-2 gap exceeds `gapOver`. */
export function compareLogits(got: Float32Array, want: Float32Array, vocab: number) {
  let maxErr = 0,
    maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  const flips = (gapOver: number) => {
    const bad: number[] = [];
    for (let r = 0; r < want.length / vocab; r++) {
      let b1 = -Infinity,
        b2 = -Infinity,
        iw = -1,
        ig = -1,
        bg = -Infinity;
      for (let c = 0; c < vocab; c++) {
        const v = want[r * vocab + c];
        if (v > b1) {
          b2 = b1;
          b1 = v;
          iw = c;
        } else if (v > b2) b2 = v;
        if (got[r * vocab + c] > bg) {
          bg = got[r * vocab + c];
          ig = c;
        }
      }
      if (b1 - b2 > gapOver && ig !== iw) bad.push(r);
    }
    return bad;
  };
  return { maxErr, maxRef, flips };
}
