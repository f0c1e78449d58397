/**
 * `sieve logits --model DIR --ids 1,2,3 --out FILE.safetensors [engine options]`:
 * runs the prompt through the engine and writes tensor `logits` (F32
 * [n, vocab], every position). Defaults: f32 weights, f32 KV, dense attention.
 */
import { writeFileSync } from 'node:fs';
import { InvalidOptionError } from '../../errors.ts';
import { getGpu } from '../../gpu/device.ts';
import { loadEngine } from '../../engine/load.ts';
import { writeSafetensors } from '../../loader/safetensors-write.ts';
import type { Command } from '../util.ts';
import { MODEL_OPTIONS } from '../options.ts';
import { engineOptions } from './engine-options.ts';

export const logits: Command = {
  name: 'logits',
  summary: 'write the logits of every position of a prompt (token ids) to a safetensors file',
  usage: 'sieve logits --model DIR --ids 1,2,3 --out FILE.safetensors [options]',
  description:
    'Run a prompt of token ids through the engine and write tensor `logits` (F32 [n, vocab], every ' +
    'position) to a safetensors file. Exact by default: f32 weights and KV cache, dense attention.',
  options: {
    ...MODEL_OPTIONS,
    weights: { ...MODEL_OPTIONS.weights, default: 'f32' },
    group: { type: 'string', value: 'N', default: '32', shownOnly: true, group: 'Model', help: 'q8/q4 quantization group size: 32, 64, 128' },
    kv: { ...MODEL_OPTIONS.kv, default: 'f32' },
    kernels: { ...MODEL_OPTIONS.kernels, default: 'f32' },
    attention: { ...MODEL_OPTIONS.attention, default: 'dense', shownOnly: false },
    ids: { type: 'string', value: 'IDS', required: true, group: 'Logits', help: 'the prompt as comma-separated token ids' },
    out: { type: 'string', value: 'FILE', required: true, group: 'Logits', help: 'the safetensors file to write' },
  },
  async run(_argv, values) {
    const { dir, opts } = engineOptions(values);
    if (typeof values.ids !== 'string') throw new InvalidOptionError('ids', 'token ids are required (--ids 1,2,3)');
    const ids = values.ids.split(',').map((s, i) => {
      const n = Number(s.trim());
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidOptionError('ids', `entry ${i} ('${s}') is not a token id`);
      return n;
    });
    if (typeof values.out !== 'string') throw new InvalidOptionError('out', 'an output file is required (--out FILE.safetensors)');
    const ctx = await getGpu();
    try {
      const engine = await loadEngine(ctx, dir, { ...opts, contextLength: opts.contextLength ?? ids.length });
      try {
        const r = await engine.prefill(ids, { allLogits: true });
        const vocab = engine.spec.vocabSize;
        writeFileSync(values.out, writeSafetensors([{ name: 'logits', dtype: 'F32', shape: [ids.length, vocab], data: r.logits! }], { ids: ids.join(',') }));
        console.error(`sieve: wrote logits [${ids.length}, ${vocab}] to ${values.out} (${r.ms.toFixed(1)} ms)`);
      } finally {
        engine.destroy();
      }
    } finally {
      ctx.destroy();
    }
    return 0;
  },
};
