/**
 * `sieve logits --model DIR --ids 1,2,3 --out FILE.safetensors [engine options]`:
 * runs the prompt through the engine and writes tensor `logits` (F32
 * [n, vocab], every position). Defaults: f32 weights, f32 KV, dense attention.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../../errors.ts';
import { getGpu } from '../../gpu/device.ts';
import { loadEngine } from '../../engine/load.ts';
import { writeSafetensors } from '../../loader/safetensors-write.ts';
import type { Command } from '../util.ts';
import { ENGINE_FLAGS, ENGINE_USAGE, engineOptions } from './engine-options.ts';

export const logits: Command = {
  name: 'logits',
  summary: 'write the logits of every position of a prompt (token ids) to a safetensors file',
  usage: `sieve logits --model DIR --ids 1,2,3 --out FILE.safetensors ${ENGINE_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...ENGINE_FLAGS, ids: { type: 'string' }, out: { type: 'string' } } });
    // f32 weights and KV, not the runtime's f16 defaults: the logits are compared with references.
    const { dir, opts } = engineOptions(values, { weights: 'f32', kv: 'f32' });
    if (!values.ids) throw new InvalidOptionError('ids', 'token ids are required (--ids 1,2,3)');
    const ids = values.ids.split(',').map((s, i) => {
      const n = Number(s.trim());
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidOptionError('ids', `entry ${i} ('${s}') is not a token id`);
      return n;
    });
    if (!values.out) throw new InvalidOptionError('out', 'an output file is required (--out FILE.safetensors)');
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
