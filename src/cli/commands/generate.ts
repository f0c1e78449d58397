/**
 * `sieve generate --model DIR --prompt "..." [--max-tokens N] [--temperature T]
 * [--top-k K] [--seed S] [--ignore-eos] [engine options]`: streams the
 * continuation to stdout; prompt tokens, TTFT and decode tok/s go to stderr.
 * Temperature 0 is greedy (argmax on the GPU); otherwise the GPU sampler
 * (top-k, temperature): both through the engine's decode loop, as generate() runs it.
 */
import { DEFAULT_KV_DTYPE, DEFAULT_WEIGHTS } from '../../defaults.ts';
import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../../errors.ts';
import { getGpu } from '../../gpu/device.ts';
import { loadEngine } from '../../engine/load.ts';
import { nodeSource } from '../../loader/sources.ts';
import { loadTokenizer } from '../../tokenizer/index.ts';
import type { Command } from '../util.ts';
import { ENGINE_FLAGS, ENGINE_USAGE, engineOptions, positiveInt } from './engine-options.ts';

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
    const seed = positiveInt('seed', values.seed) ?? 1;

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
        let ttftMs = 0;
        let n = 0;
        let t1 = 0;
        // The engine's decode loop: greedy on the GPU at temperature 0, else the GPU sampler (top-k, temperature).
        const choice = { greedy: temperature === 0, temperature: temperature || 1, topK, topP: 1, repetitionPenalty: 1 };
        for await (const id of engine.decode({ choice, seed, history: ids, maxTokens, stopIds: eos })) {
          if (n === 0) { ttftMs = performance.now() - t0; t1 = performance.now(); }
          if (eos.has(id)) break;
          process.stdout.write(decoder.push(id));
          n++;
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
