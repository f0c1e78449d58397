import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { assertClose } from '../helpers/compare.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../src/gpu/buffers.ts';
import { attentionRef, DecodeAttention } from '../../kernels/attention_decode.ts';
import { runDispatches, StepUniform } from '../../kernels/prepared.ts';
import type { KvDtype } from '../../src/engine/types.ts';
import { packF16, unpackF16 } from '../helpers/quant.ts';
import { Rng } from '../../src/util/rng.ts';

describe('decode attention over the KV cache (Dawn)', () => {
  type Variant = 'tiled' | 'simple' | undefined;
  const cases: [number, number, number, number, number, KvDtype, Variant?, number?, number?][] = [
    // nHeads, nKvHeads, headDim, pos, rows, kvDtype[, variant (default: tiled where headDim fits), maxSplits, qg]
    [2, 2, 8, 0, 1, 'f32'], // kvLen 1, GQA 1
    [4, 2, 32, 70, 1, 'f32'], // GQA 2, two tiles
    [8, 2, 64, 300, 1, 'f16'], // GQA 4, several splits
    [16, 1, 128, 1100, 1, 'f32'], // GQA 16 (MQA), many splits
    [32, 2, 128, 4100, 1, 'f16'], // GQA 16 with two subgroups of 16? no: QG caps at 16 -> one each
    [4, 1, 8, 5, 9, 'f32'], // several causal rows
    [6, 3, 64, 60, 20, 'f32'], // rows spanning a tile edge
    [24, 1, 128, 150, 1, 'f32'], // GQA 24: two subgroups, the second 8 of QG 16 heads
    [8, 2, 64, 300, 1, 'f16', 'simple'], // the scalar kernel
    [6, 3, 64, 60, 20, 'f32', 'simple'],
    [4, 2, 6, 70, 2, 'f32'], // headDim 6: only the scalar kernel takes it
    [8, 2, 64, 300, 1, 'f16', undefined, 2], // several tiles per split (online softmax across tiles)
    [16, 1, 128, 1100, 2, 'f32', undefined, 3],
    [8, 2, 64, 300, 1, 'f16', undefined, undefined, 3], // fewer query heads per workgroup: a group of 4 as 3 + 1
    [16, 2, 128, 700, 1, 'f16', undefined, 8, 2], // qg 2: four workgroups per KV head and split
  ];
  for (const [nHeads, nKvHeads, headDim, pos, rows, kvDtype, variant, maxSplits, qg] of cases) {
    it(`nHeads=${nHeads} nKvHeads=${nKvHeads} headDim=${headDim} pos=${pos} rows=${rows} ${kvDtype} ${variant ?? ''} ${maxSplits ? `maxSplits=${maxSplits}` : ''}${qg ? ` qg=${qg}` : ''}`, async () => {
      const ctx = await testGpu();
      const capacity = pos + rows + 5;
      const rng = new Rng(nHeads * 1000 + pos);
      const q = rng.fill(rows * nHeads * headDim, 1);
      // Sharp scores so a wrong key choice or scale shows.
      let k = rng.fill(nKvHeads * capacity * headDim, 1.5);
      let v = rng.fill(nKvHeads * capacity * headDim, 1);
      if (kvDtype === 'f16') {
        k = unpackF16(packF16(k), k.length);
        v = unpackF16(packF16(v), v.length);
      }
      const up = (x: Float32Array, l: string) => uploadBuffer(ctx, kvDtype === 'f16' ? packF16(x) : x, l);
      const g = { q: uploadBuffer(ctx, q, 'q'), k: up(k, 'k'), v: up(v, 'v'), out: createBuffer(ctx, q.byteLength, STORAGE.rw, 'out') };
      const attn = await DecodeAttention.create(ctx, { nHeads, nKvHeads, headDim, kvDtype, capacity, maxRows: rows, variant, maxSplits, qg });
      expect(attn.variant).toBe(variant ?? (headDim % 8 === 0 || (kvDtype === 'f32' && headDim % 4 === 0) ? 'tiled' : 'simple'));
      const step = new StepUniform(ctx);
      step.set(pos, rows);
      attn.setStep(pos, rows);
      const d = attn.prepare({ q: g.q, kv: { k: g.k, v: g.v }, out: g.out, step: step.buffer });
      try {
        runDispatches(ctx, [d]);
        const want = attentionRef(q, k, v, { nHeads, nKvHeads, headDim }, pos, rows, capacity);
        assertClose(await readF32(ctx, g.out, q.length), want, 'attention', 1e-4, 1e-5);
      } finally {
        d.destroy();
        attn.destroy();
        step.destroy();
        for (const b of Object.values(g)) releaseBuffer(ctx, b);
      }
    });
  }
});
