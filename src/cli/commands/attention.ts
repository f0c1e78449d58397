/**
 * `sieve attention`: causal prefill attention (dense or SampleAttention) on
 * tensors from a safetensors file: q (Hq, S, D), k and v (Hkv, S, D), F32,
 * RoPE already applied. Writes o (Hq, S, D) F32 and prints per-head stats as JSON.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { getGpu } from '../../gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, uploadBuffer } from '../../gpu/buffers.ts';
import { InvalidOptionError, MissingFileError, ModelFormatError } from '../../errors.ts';
import { parseHeader, readHeaderLength } from '../../loader/safetensors.ts';
import { writeSafetensors } from '../../loader/safetensors-write.ts';
import { DEFAULT_ATTENTION, type AttentionOptions } from '../../engine/types.ts';
import { PrefillAttention, resolveAttentionOptions } from '../../attention/index.ts';
import type { Command } from '../util.ts';
import type { OptionSpecs } from '../options.ts';
import { selectionFlag } from './engine-options.ts';

function readTensors(file: string): Record<string, { shape: number[]; data: Float32Array }> {
  if (!existsSync(file)) throw new MissingFileError(file, 'no such file (--in)');
  const bytes = new Uint8Array(readFileSync(file));
  const n = readHeaderLength(file, bytes.subarray(0, 8), bytes.byteLength);
  const header = parseHeader(file, bytes.subarray(8, 8 + n), bytes.byteLength);
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const e of header.entries) {
    if (!['q', 'k', 'v'].includes(e.name)) continue;
    if (e.dtype !== 'F32') throw new ModelFormatError(file, `tensor '${e.name}' is ${e.dtype}; sieve attention reads F32`);
    const data = new Float32Array(e.byteLength / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(e.offset, e.offset + e.byteLength));
    out[e.name] = { shape: e.shape, data };
  }
  for (const name of ['q', 'k', 'v']) if (!out[name]) throw new ModelFormatError(file, `tensor '${name}' is missing (need q [Hq, S, D], k and v [Hkv, S, D])`);
  return out;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new InvalidOptionError(name, `not a number: ${v}`);
  return x;
}

const ATTENTION_OPTIONS: OptionSpecs = {
  in: { type: 'string', value: 'FILE', required: true, group: 'File', help: 'safetensors file with q, k, v (F32)' },
  out: { type: 'string', value: 'FILE', required: true, group: 'File', help: 'where to write o (F32)' },
  mode: { type: 'string', value: 'MODE', default: 'sample', group: 'Attention', help: 'sample (SampleAttention) or dense' },
  alpha: {
    type: 'string',
    value: 'A',
    default: String(DEFAULT_ATTENTION.alpha),
    shownOnly: true,
    group: 'Attention',
    help: "attention mass each head's selection must cover",
  },
  window: {
    type: 'string',
    value: 'R',
    default: String(DEFAULT_ATTENTION.windowRatio),
    shownOnly: true,
    group: 'Attention',
    help: 'local window as a fraction of S',
  },
  rows: {
    type: 'string',
    value: 'R',
    default: String(DEFAULT_ATTENTION.sampleRatio),
    shownOnly: true,
    group: 'Attention',
    help: 'sampled query rows as a fraction of S',
  },
  'min-rows': {
    type: 'string',
    value: 'N',
    default: String(DEFAULT_ATTENTION.minSampleRows),
    shownOnly: true,
    group: 'Attention',
    help: 'sampled query rows at least',
  },
  'min-len': { type: 'string', value: 'N', default: '0', shownOnly: true, group: 'Attention', help: 'S from which attention runs sparse (0: always)' },
  block: { type: 'string', value: 'N', default: String(DEFAULT_ATTENTION.sampleBlock), shownOnly: true, group: 'Attention', help: 'sampled rows per block' },
  selection: {
    type: 'string',
    value: 'RULE',
    default: DEFAULT_ATTENTION.selection,
    shownOnly: true,
    group: 'Attention',
    help: 'column selection: auto, group, topup, head',
  },
};

export const attention: Command = {
  name: 'attention',
  summary: 'run dense or SampleAttention prefill attention on q/k/v tensors and print per-head stats',
  usage: 'sieve attention --in QKV.safetensors --out O.safetensors [options]',
  description:
    'Causal prefill attention (dense or SampleAttention) on q [Hq, S, D], k and v [Hkv, S, D] (F32, ' +
    'RoPE applied) from a safetensors file; writes o [Hq, S, D] and prints per-head stats as JSON.',
  options: ATTENTION_OPTIONS,
  async run(_argv, v) {
    const values = v as Record<string, string | undefined>;
    if (!values.in) throw new InvalidOptionError('--in', 'required: a safetensors file with q [Hq, S, D], k and v [Hkv, S, D] (F32)');
    if (!values.out) throw new InvalidOptionError('--out', 'required: where to write o [Hq, S, D] (F32)');
    const mode = values.mode ?? 'sample';
    if (mode !== 'dense' && mode !== 'sample') throw new InvalidOptionError('--mode', `must be dense or sample, got ${mode}`);
    const opts: AttentionOptions = resolveAttentionOptions(
      {
        attention: mode,
        alpha: num('--alpha', values.alpha),
        windowRatio: num('--window', values.window),
        sampleRatio: num('--rows', values.rows),
        minSampleRows: num('--min-rows', values['min-rows']),
        minSparseLen: num('--min-len', values['min-len']) ?? 0,
        sampleBlock: num('--block', values.block),
        selection: selectionFlag(values.selection),
      },
      DEFAULT_ATTENTION,
    );

    const t = readTensors(values.in);
    const [nHeads, seqLen, headDim] = t.q.shape;
    const [nKvHeads, kLen, kDim] = t.k.shape;
    const bad = (why: string) => {
      throw new ModelFormatError(values.in!, why, { q: t.q.shape, k: t.k.shape, v: t.v.shape });
    };
    if (t.q.shape.length !== 3 || t.k.shape.length !== 3) bad('q and k must be 3-D: q [Hq, S, D], k [Hkv, S, D]');
    if (kLen !== seqLen || kDim !== headDim) bad(`k shape [${t.k.shape}] does not match q [${t.q.shape}] (need [Hkv, ${seqLen}, ${headDim}])`);
    if (t.v.shape.join() !== t.k.shape.join()) bad(`v shape [${t.v.shape}] differs from k [${t.k.shape}]`);
    if (nHeads % nKvHeads !== 0) bad(`Hq ${nHeads} is not a multiple of Hkv ${nKvHeads}`);

    // q (Hq, S, D) -> rows layout (S, Hq * D)
    const qRows = new Float32Array(seqLen * nHeads * headDim);
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < seqLen; i++) {
        qRows.set(t.q.data.subarray((h * seqLen + i) * headDim, (h * seqLen + i + 1) * headDim), (i * nHeads + h) * headDim);
      }
    }
    const ctx = await getGpu();
    const attn = await PrefillAttention.create(
      ctx,
      { nHeads, nKvHeads, headDim, kvDtype: 'f32', capacity: seqLen, maxRows: seqLen },
      { sparse: mode === 'sample' },
    );
    const bufs: GPUBuffer[] = [];
    try {
      const q = uploadBuffer(ctx, qRows, 'q');
      const k = uploadBuffer(ctx, t.k.data, 'k');
      const v = uploadBuffer(ctx, t.v.data, 'v');
      const out = createBuffer(ctx, qRows.byteLength, STORAGE.rw, 'o');
      bufs.push(q, k, v, out);
      const enc = ctx.device.createCommandEncoder({ label: 'sieve-attention' });
      const t0 = performance.now();
      attn.encode(enc, { q, kv: { k, v }, out, pos: 0, rows: seqLen, layer: 0 }, opts);
      ctx.device.queue.submit([enc.finish()]);
      const o = await readF32(ctx, out, qRows.length);
      const ms = performance.now() - t0;
      const heads = await attn.readStats();
      const oHeads = new Float32Array(o.length);
      for (let h = 0; h < nHeads; h++) {
        for (let i = 0; i < seqLen; i++) {
          oHeads.set(o.subarray((i * nHeads + h) * headDim, (i * nHeads + h + 1) * headDim), (h * seqLen + i) * headDim);
        }
      }
      writeFileSync(values.out, writeSafetensors([{ name: 'o', dtype: 'F32', shape: [nHeads, seqLen, headDim], data: oHeads }]));
      const sparse = PrefillAttention.isSparse(0, seqLen, opts);
      const mean = heads.length ? heads.reduce((a, s) => a + s.areaFraction, 0) / heads.length : 1;
      console.log(
        JSON.stringify(
          {
            mode: sparse ? 'sample' : 'dense',
            seqLen,
            nHeads,
            nKvHeads,
            headDim,
            options: opts,
            meanAreaFraction: mean,
            wallMs: ms,
            heads,
          },
          null,
          2,
        ),
      );
    } finally {
      for (const b of bufs) releaseBuffer(ctx, b);
      attn.destroy();
      ctx.destroy();
    }
    return 0;
  },
};
