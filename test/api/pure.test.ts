/** The API's CPU-only parts: stop strings, the FIFO lock, option validation, OpenAI shaping. */
import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../src/api/stop.ts';
import { SerialQueue } from '../../src/api/queue.ts';
import { resolveGenerate, validateChatRequest, validateLoadOptions } from '../../src/api/options.ts';
import { makeChatCompletions } from '../../src/api/openai.ts';
import { appendIds } from '../../src/api/generate.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import type { ChatCompletionChunk, GenerateChunk } from '../../src/api/types.ts';

function feed(stops: string[], deltas: string[]): { out: string; stopped: boolean; emitted: string[] } {
  const m = new StopMatcher(stops);
  const emitted: string[] = [];
  for (const d of deltas) {
    emitted.push(m.push(d));
    if (m.stopped) break;
  }
  if (!m.stopped) emitted.push(m.flush());
  return { out: emitted.join(''), stopped: m.stopped, emitted };
}

describe('StopMatcher', () => {
  it('cuts at a stop string inside one delta, without emitting it', () => {
    expect(feed(['END'], ['hello END world'])).toMatchObject({ out: 'hello ', stopped: true });
  });
  it('finds a stop string split across deltas and holds back its prefix', () => {
    const r = feed(['<|im_end|>'], ['Hi', ' there<|im', '_e', 'nd|> more']);
    expect(r.out).toBe('Hi there');
    expect(r.stopped).toBe(true);
    expect(r.emitted[1]).toBe(' there'); // '<|im' held back
    expect(r.emitted[2]).toBe('');
  });
  it('releases held text when the prefix turns out not to be a stop', () => {
    const r = feed(['\n\nUser:'], ['a\n', '\nb', 'c']);
    expect(r.stopped).toBe(false);
    expect(r.out).toBe('a\n\nbc');
    expect(r.emitted[0]).toBe('a'); // '\n' held
  });
  it('flushes held text at the end and picks the earliest of several stops', () => {
    expect(feed(['xyz'], ['abc', 'xy'])).toMatchObject({ out: 'abcxy', stopped: false });
    expect(feed(['bb', 'a'], ['cbba'])).toMatchObject({ out: 'c', stopped: true });
  });
  it('never emits any stop string on random splits', () => {
    const text = 'the cat sat on the STOP mat STOP';
    for (let seed = 1; seed < 50; seed++) {
      const parts: string[] = [];
      let i = 0;
      while (i < text.length) {
        const n = 1 + ((seed * 7 + i * 13) % 4);
        parts.push(text.slice(i, i + n));
        i += n;
      }
      expect(feed(['STOP', 'zz'], parts).out).toBe('the cat sat on the ');
    }
  });
});

describe('SerialQueue', () => {
  it('runs holders one at a time, in call order', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    let active = 0;
    const job = (name: string, ms: number) =>
      q.run(async () => {
        active++;
        expect(active).toBe(1);
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        active--;
      });
    await Promise.all([job('a', 20), job('b', 1), job('c', 5)]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });
  it('a failing holder does not block the next', async () => {
    const q = new SerialQueue();
    await expect(
      q.run(async () => {
        throw new Error('x');
      }),
    ).rejects.toThrow('x');
    expect(await q.run(async () => 7)).toBe(7);
  });
});

function invalid(fn: () => unknown, option: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidOptionError);
    expect((e as InvalidOptionError).details.option).toBe(option);
    expect((e as Error).message).toContain(option);
    return;
  }
  throw new Error(`expected InvalidOptionError for ${option}`);
}

describe('option validation names the option', () => {
  it('generate options', () => {
    invalid(() => resolveGenerate({ temperature: -1 }), 'temperature');
    invalid(() => resolveGenerate({ topP: 0 }), 'topP');
    invalid(() => resolveGenerate({ topK: 1.5 }), 'topK');
    invalid(() => resolveGenerate({ maxTokens: 0 }), 'maxTokens');
    invalid(() => resolveGenerate({ repetitionPenalty: 0 }), 'repetitionPenalty');
    invalid(() => resolveGenerate({ seed: 0.5 }), 'seed');
    invalid(() => resolveGenerate({ stop: [''] }), 'stop');
    invalid(() => resolveGenerate({ temperature: '1' as unknown as number }), 'temperature');
    const r = resolveGenerate({ temperature: 0, seed: 3, stop: 'x' });
    expect(r.sample.greedy).toBe(true);
    expect(r.stop).toEqual(['x']);
  });
  it('OpenAI requests use the request field names', () => {
    invalid(() => validateChatRequest({ messages: [{ role: 'user', content: 'hi' }], max_tokens: -3 }), 'max_tokens');
    invalid(() => validateChatRequest({ messages: [{ role: 'user', content: 'hi' }], top_p: 2 }), 'top_p');
    invalid(() => validateChatRequest({ messages: [{ role: 'robot', content: 'hi' }] }), 'messages[0].role');
    invalid(() => validateChatRequest({ messages: [{ role: 'user', content: 5 }] }), 'messages[0].content');
    invalid(() => validateChatRequest({ messages: [] }), 'messages');
    invalid(() => validateChatRequest({ messages: [{ role: 'user', content: 'x' }], stream: 'yes' }), 'stream');
    invalid(() => validateChatRequest({ messages: [{ role: 'user', content: 'x' }], bogus: 1 }), 'bogus');
    invalid(() => validateChatRequest([1, 2]), 'request');
    const ok = validateChatRequest({ messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 5, top_k: 3 });
    expect(ok).toMatchObject({ stream: true, options: { maxTokens: 5, topK: 3 } });
  });
  it('load options', () => {
    invalid(() => validateLoadOptions({ weights: 'q3' as never }), 'weights');
    invalid(() => validateLoadOptions({ kvDtype: 'bf16' as never }), 'kvDtype');
    invalid(() => validateLoadOptions({ contextLength: 1 }), 'contextLength');
    invalid(() => validateLoadOptions({ attention: { alpha: 2 } }), 'attention.alpha');
  });
});

describe('OpenAI shaping', () => {
  const chunks: GenerateChunk[] = [
    { text: 'Hel', tokenIds: [1] },
    { text: '', tokenIds: [2] },
    { text: 'lo', tokenIds: [3] },
    {
      text: '!',
      tokenIds: [4],
      finishReason: 'length',
      stats: { promptTokens: 5, cachedTokens: 0, prefillTokens: 5, completionTokens: 4, ttftMs: 1, prefillTokPerS: 1, decodeTokPerS: 1, totalMs: 2 },
    },
  ];
  const api = makeChatCompletions(
    async function* () {
      yield* chunks;
    },
    () => 'm1',
  );
  it('non-streamed: one chat.completion with usage', async () => {
    const c = await api.create({ messages: [{ role: 'user', content: 'x' }] });
    expect(c).toMatchObject({
      object: 'chat.completion',
      model: 'm1',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!' }, finish_reason: 'length' }],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    });
    expect(c.id).toMatch(/^chatcmpl-/);
  });
  it('streamed: role first, content deltas, finish_reason and usage last, one id', async () => {
    const s = await api.create({ messages: [{ role: 'user', content: 'x' }], stream: true });
    const got: ChatCompletionChunk[] = [];
    for await (const c of s) got.push(c);
    expect(got[0].choices[0].delta.role).toBe('assistant');
    expect(got.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Hello!');
    expect(got.at(-1)!.choices[0].finish_reason).toBe('length');
    expect(got.at(-1)!.usage?.completion_tokens).toBe(4);
    expect(got.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(new Set(got.map((c) => c.id)).size).toBe(1);
  });
  it('rejects bad requests before generating', async () => {
    await expect(api.create({ messages: [{ role: 'user', content: 'x' }], temperature: -2 })).rejects.toBeInstanceOf(InvalidOptionError);
  });
});

describe('appendIds', () => {
  it('appends a 200K-token range without spreading it as call arguments (a 128K prompt overflowed the stack)', () => {
    const ids = Int32Array.from({ length: 200_000 }, (_, i) => i * 3);
    const dst = [7];
    appendIds(dst, ids, 5, 200_000);
    expect(dst.length).toBe(1 + 199_995);
    expect(dst[0]).toBe(7);
    expect(dst[1]).toBe(15);
    expect(dst[dst.length - 1]).toBe(3 * 199_999);
    const before = dst.length;
    appendIds(dst, ids, 10, 10);
    expect(dst.length).toBe(before);
  });
});
