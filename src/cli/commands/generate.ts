/**
 * `sieve generate --model DIR --prompt "..." [options]`: streams the
 * continuation of a prompt to stdout; prompt tokens, TTFT and decode tok/s go
 * to stderr. The same model and sampling options as `sieve chat` (sampling
 * runs on the GPU; --temperature 0 is greedy).
 */
import { loadModel } from '../../api/load.ts';
import { MODEL_OPTIONS, SAMPLING_OPTIONS } from '../options.ts';
import type { Command } from '../util.ts';
import { loadOptionsFromValues, samplingFromValues } from './engine-options.ts';

export const generate: Command = {
  name: 'generate',
  summary: 'continue a prompt, streaming the text to stdout',
  usage: 'sieve generate --model DIR [--prompt TEXT] [options]',
  description:
    "Continue a prompt (as plain text, after the model's BOS), streaming the text to stdout; " +
    'prompt tokens, TTFT and decode tok/s go to stderr. --temperature 0 is greedy.',
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', value: 'TEXT', default: '""', shownOnly: true, group: 'Generate', help: 'the text to continue' },
    'ignore-eos': { type: 'boolean', group: 'Generate', help: 'go on past the end-of-sequence token, up to --max-tokens' },
    ...SAMPLING_OPTIONS,
  },
  async run(_argv, values) {
    const gen = samplingFromValues(values);
    const { dir, opts } = loadOptionsFromValues(values);
    const engine = await loadModel(dir, opts);
    try {
      const prompt = typeof values.prompt === 'string' ? values.prompt : '';
      for await (const c of engine.generate(prompt, { ...gen, ignoreEos: !!values['ignore-eos'] })) {
        process.stdout.write(c.text);
        if (c.stats) {
          const s = c.stats;
          process.stdout.write('\n');
          console.error(
            `sieve: prompt ${s.promptTokens} tokens, TTFT ${s.ttftMs.toFixed(1)} ms, ${s.completionTokens} tokens generated ` +
              `(${c.finishReason}), decode ${s.completionTokens > 1 ? s.decodeTokPerS.toFixed(2) : '-'} tok/s, kernels ${s.kernels}`,
          );
        }
      }
    } finally {
      await engine.unload();
    }
    return 0;
  },
};
