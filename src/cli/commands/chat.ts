/**
 * `sieve chat --model DIR`: an interactive multi-turn chat in the terminal.
 * Each turn reuses the KV cache of the conversation so far; Ctrl-C during a
 * reply stops the reply (the conversation goes on), Ctrl-C at the prompt or
 * Ctrl-D quits. Models without a chat format (stories260k) continue the text.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadModel } from '../../api/load.ts';
import type { ChatMessage, GenerateOptions, LoadOptions } from '../../api/types.ts';
import { InvalidOptionError } from '../../errors.ts';
import type { Command } from '../util.ts';

export const LOAD_ARGS = {
  model: { type: 'string' },
  weights: { type: 'string' },
  context: { type: 'string' },
  'kv-dtype': { type: 'string' },
  attention: { type: 'string' },
} as const;

function numberArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidOptionError(name, `must be a number, got '${v}'`);
  return n;
}

export function loadOptionsFromArgs(v: Record<string, string | boolean | undefined>): LoadOptions {
  if (typeof v.model !== 'string') throw new InvalidOptionError('--model', 'is required: the checkpoint folder');
  let last = -1;
  return {
    weights: v.weights as LoadOptions['weights'],
    contextLength: numberArg('--context', v.context as string | undefined),
    kvDtype: v['kv-dtype'] as LoadOptions['kvDtype'],
    attention: v.attention ? { attention: v.attention as 'dense' | 'sample' } : undefined,
    onProgress: process.stderr.isTTY
      ? (p) => {
        const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0;
        if (pct !== last) { last = pct; process.stderr.write(`\rloading ${p.file} ${pct}%   `); }
      }
      : undefined,
  };
}

export const chat: Command = {
  name: 'chat',
  summary: 'chat with a model in the terminal (multi-turn; Ctrl-C stops a reply)',
  usage: 'sieve chat --model DIR [--system TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...LOAD_ARGS, system: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
        'top-p': { type: 'string' }, 'top-k': { type: 'string' }, seed: { type: 'string' }, 'repetition-penalty': { type: 'string' },
      },
    });
    const gen: GenerateOptions = {
      maxTokens: numberArg('--max-tokens', values['max-tokens']) ?? 256,
      temperature: numberArg('--temperature', values.temperature) ?? 0.7,
      topP: numberArg('--top-p', values['top-p']),
      topK: numberArg('--top-k', values['top-k']),
      seed: numberArg('--seed', values.seed),
      repetitionPenalty: numberArg('--repetition-penalty', values['repetition-penalty']),
    };
    const engine = await loadModel(values.model!, loadOptionsFromArgs(values));
    process.stderr.write(`\r${engine.model.id}: ${engine.model.family}, context ${engine.model.contextLength}` +
      `${engine.model.hasChatFormat ? '' : ' (no chat format: replies continue your text)'}. Ctrl-C stops a reply, Ctrl-D quits.\n`);
    const messages: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
    let current: AbortController | undefined;
    const onInterrupt = () => {
      if (current) { current.abort(); process.stderr.write(' [stopped]'); }
      else rl.close();
    };
    rl.on('SIGINT', onInterrupt); // a terminal: readline turns Ctrl-C into this event
    process.on('SIGINT', onInterrupt); // piped stdin: the signal itself
    const prompt = () => { if (process.stdin.isTTY) process.stdout.write('> '); };
    try {
      prompt();
      // lines are buffered by the iterator while a reply runs; the loop ends at Ctrl-D / end of input
      for await (const line of rl) {
        if (!line.trim()) { prompt(); continue; }
        messages.push({ role: 'user', content: line });
        current = new AbortController();
        let reply = '';
        for await (const c of engine.generate(messages, { ...gen, signal: current.signal })) {
          process.stdout.write(c.text);
          reply += c.text;
          if (c.stats) {
            const s = c.stats;
            process.stderr.write(`\n[${c.finishReason}] ${s.completionTokens} tokens; prompt ${s.promptTokens} (${s.cachedTokens} cached), ` +
              `TTFT ${s.ttftMs.toFixed(0)} ms, decode ${s.decodeTokPerS.toFixed(1)} tok/s\n`);
          }
        }
        current = undefined;
        messages.push({ role: 'assistant', content: reply });
        prompt();
      }
    } finally {
      process.off('SIGINT', onInterrupt);
      rl.close();
      await engine.unload();
    }
    return 0;
  },
};
