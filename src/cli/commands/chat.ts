/**
 * `sieve chat --model DIR`: an interactive multi-turn chat in the terminal.
 * Each turn reuses the KV cache of the conversation so far; Ctrl-C during a
 * reply stops the reply (`[stopped]` follows its last token; the conversation
 * goes on), Ctrl-C at the prompt or Ctrl-D quits. Models without a chat format
 * (stories260k) continue the text.
 */
import { createInterface } from 'node:readline';
import { loadModel } from '../../api/load.ts';
import type { ChatMessage, LoadOptions } from '../../api/types.ts';
import { MODEL_OPTIONS, SAMPLING_OPTIONS, type OptionValues } from '../options.ts';
import type { Command } from '../util.ts';
import { loadOptionsFromValues, samplingFromValues } from './engine-options.ts';

/** The model-loading options (also `sieve serve`'s). */
export const LOAD_ARGS = MODEL_OPTIONS;

export function loadOptionsFromArgs(values: OptionValues): LoadOptions {
  return loadOptionsFromValues(values).opts;
}

export const chat: Command = {
  name: 'chat',
  summary: 'chat with a model in the terminal (multi-turn; Ctrl-C stops a reply)',
  usage: 'sieve chat --model DIR [options]',
  description:
    'Chat with a model in the terminal. Each turn reuses the KV cache of the conversation so far. ' +
    'Ctrl-C during a reply stops it; Ctrl-C at the prompt or Ctrl-D quits. A model without a chat format ' +
    '(such as stories260k) continues your text. The reply goes to stdout; the stats of each turn to stderr.',
  options: {
    ...MODEL_OPTIONS,
    system: { type: 'string', value: 'TEXT', group: 'Chat', help: 'system prompt of the conversation' },
    ...SAMPLING_OPTIONS,
  },
  async run(_argv, values) {
    const gen = samplingFromValues(values);
    const { dir, opts } = loadOptionsFromValues(values);
    // Ctrl-C is ours from the start: while loading it cancels the load, during a reply it stops the
    // reply, at the prompt it quits
    const loading = new AbortController();
    let current: AbortController | undefined;
    let rl: ReturnType<typeof createInterface> | undefined;
    let quitting = false;
    const onInterrupt = () => {
      if (!rl) loading.abort();
      else if (current)
        current.abort(); // the reply loop prints [stopped] after the reply's last token
      else {
        quitting = true;
        rl.close();
      }
    };
    process.on('SIGINT', onInterrupt); // piped stdin (and during the load): the signal itself
    let engine;
    try {
      engine = await loadModel(dir, { ...opts, signal: loading.signal });
    } catch (e) {
      process.off('SIGINT', onInterrupt);
      if (loading.signal.aborted) {
        process.stderr.write('\n');
        return 130;
      }
      throw e;
    }
    const messages: ChatMessage[] = typeof values.system === 'string' ? [{ role: 'system', content: values.system }] : [];
    rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
    rl.on('SIGINT', onInterrupt); // a terminal: readline turns Ctrl-C into this event
    process.stderr.write(
      `\r${engine.model.id}: ${engine.model.family}, context ${engine.model.contextLength}, kernels ${engine.model.kernels}` +
        `${engine.model.hasChatFormat ? '' : ' (no chat format: replies continue your text)'}. Ctrl-C stops a reply, Ctrl-D quits.\n`,
    );
    const prompt = () => {
      if (process.stdin.isTTY) process.stdout.write('> ');
    };
    try {
      prompt();
      // lines are buffered by the iterator while a reply runs; the loop ends at Ctrl-D / end of input / Ctrl-C
      for await (const line of rl) {
        if (quitting) break;
        if (!line.trim()) {
          prompt();
          continue;
        }
        messages.push({ role: 'user', content: line });
        const ctl = new AbortController();
        current = ctl;
        let reply = '';
        for await (const c of engine.generate(messages, { ...gen, signal: ctl.signal })) {
          // nothing is printed once Ctrl-C was pressed: [stopped] is the last thing of the turn
          if (!ctl.signal.aborted) {
            process.stdout.write(c.text);
            reply += c.text;
          }
          if (c.stats) {
            current = undefined; // the reply is over: a Ctrl-C from now on quits
            const s = c.stats;
            process.stderr.write(
              `${c.finishReason === 'abort' ? ' [stopped]' : ''}\n[${c.finishReason}] ${s.completionTokens} tokens; ` +
                `prompt ${s.promptTokens} (${s.cachedTokens} cached), TTFT ${s.ttftMs.toFixed(0)} ms, decode ${s.decodeTokPerS.toFixed(1)} tok/s, kernels ${s.kernels}\n`,
            );
          }
        }
        current = undefined;
        messages.push({ role: 'assistant', content: reply });
        prompt();
      }
    } finally {
      process.off('SIGINT', onInterrupt);
      rl.close();
      process.stdin.destroy(); // a closed prompt lets the process exit even while stdin stays open
      await engine.unload();
    }
    if (quitting && process.stdin.isTTY) process.stdout.write('\n');
    return 0;
  },
};
