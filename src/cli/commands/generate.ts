/**
 * `sieve generate --model DIR --prompt "..." [--max-tokens N] [--temperature T]
 * [--top-k K] [--seed S] [--ignore-eos] [engine options]`: streams the
 * continuation to stdout; prompt tokens, TTFT and decode tok/s go to stderr.
 * Temperature 0 is greedy (argmax on the GPU); otherwise sampling from the
 * top-k computed on the GPU (only k ids and logits are read back).
 */
import { DEFAULT_KV_DTYPE, DEFAULT_WEIGHTS } from '../../defaults.ts';
import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../../errors.ts';
import { getGpu } from '../../gpu/device.ts';
import { loadEngine } from '../../engine/load.ts';
import type { DenseEngine } from '../../engine/engine.ts';
import { nodeSource } from '../../loader/sources.ts';
import { loadTokenizer } from '../../tokenizer/index.ts';
import { Rng } from '../../util/rng.ts';
import type { Command } from '../util.ts';
import { ENGINE_FLAGS, ENGINE_USAGE, engineOptions, positiveInt } from './engine-options.ts';

async function pick(engine: DenseEngine, temperature: number, topK: number, rng: Rng): Promise<number> {
  if (temperature === 0) return engine.argmax();
  const { ids, values } = await engine.topK(Math.min(topK, engine.spec.vocabSize));
  const w = Array.from(values, (v) => Math.exp((v - values[0]) / temperature));
  let u = rng.next() * w.reduce((a, b) => a + b, 0);
  for (let i = 0; i < w.length; i++) { u -= w[i]; if (u <= 0) return ids[i]; }
  return ids[w.length - 1];
}

export const generate: Command = {
  name: 'generate',
  summary: 'continue a prompt, streaming text (greedy at --temperature 0)',
  usage: `sieve generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--seed S] [--ignore-eos] ${ENGINE_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...ENGINE_FLAGS, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
        'top-k': { type: 'string' }, seed: { type: 'string' }, 'ignore-eos': { type: 'boolean' },
      },
    });
    const { dir, opts } = engineOptions(values, { weights: DEFAULT_WEIGHTS, kv: DEFAULT_KV_DTYPE });
    const prompt = values.prompt ?? '';
    const maxTokens = positiveInt('max-tokens', values['max-tokens']) ?? 128;
    const temperature = values.temperature === undefined ? 0 : Number(values.temperature);
    if (!(temperature >= 0 && Number.isFinite(temperature))) throw new InvalidOptionError('temperature', `expected a number >= 0, got '${values.temperature}'`);
    const topK = positiveInt('top-k', values['top-k']) ?? 40;
    const rng = new Rng(positiveInt('seed', values.seed) ?? 1);

    const tokenizer = await loadTokenizer(nodeSource(dir));
    const ids = tokenizer.encode(prompt, { addSpecial: true });
    if (ids.length === 0) throw new InvalidOptionError('prompt', 'encodes to no tokens');
    const ctx = await getGpu();
    try {
      const engine = await loadEngine(ctx, dir, { ...opts, contextLength: opts.contextLength ?? ids.length + maxTokens });
      try {
        const eos = new Set(values['ignore-eos'] ? [] : [...engine.spec.eosIds, ...tokenizer.eosIds]);
        const decoder = tokenizer.streamDecoder();
        const t0 = performance.now();
        await engine.prefill(ids);
        let id = await pick(engine, temperature, topK, rng);
        const ttftMs = performance.now() - t0;
        let n = 0;
        const t1 = performance.now();
        while (!eos.has(id)) {
          process.stdout.write(decoder.push(id));
          n++;
          if (n >= maxTokens || engine.kvLength >= engine.contextLength) break;
          await engine.decodeStep(id);
          id = await pick(engine, temperature, topK, rng);
        }
        process.stdout.write(decoder.flush() + '\n');
        const decodeS = (performance.now() - t1) / 1000;
        console.error(`sieve: prompt ${ids.length} tokens, TTFT ${ttftMs.toFixed(1)} ms, ${n} tokens generated, decode ${n > 1 ? ((n - 1) / decodeS).toFixed(2) : '-'} tok/s${ctx.info.isSoftware ? ' (software adapter)' : ''}`);
      } finally {
        engine.destroy();
      }
    } finally {
      ctx.destroy();
    }
    return 0;
  },
};
