/**
 * OpenAI-shaped chat completions on top of any engine's generate(): shared by
 * the in-page engine, the worker engine and `sieve serve`.
 */
import { validateChatRequest } from './options.ts';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatCompletions,
  CompletionUsage,
  GenerateChunk,
  GenerateInput,
  GenerateOptions,
  GenerationStats,
} from './types.ts';

type GenerateFn = (input: GenerateInput, options: GenerateOptions) => AsyncIterable<GenerateChunk>;

export function completionId(): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `chatcmpl-${hex}`;
}

export function usageOf(stats: GenerationStats | undefined): CompletionUsage {
  const p = stats?.promptTokens ?? 0;
  const c = stats?.completionTokens ?? 0;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, ...(stats ? { extra: stats } : {}) };
}

export function makeChatCompletions(generate: GenerateFn, modelId: () => string): ChatCompletions {
  async function create(req: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const { messages, stream, options } = validateChatRequest(req);
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    const model = modelId();
    if (!stream) {
      let content = '';
      let last: GenerateChunk | undefined;
      for await (const ch of generate(messages, options)) {
        content += ch.text;
        last = ch;
      }
      return {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: last?.finishReason ?? 'stop', logprobs: null }],
        usage: usageOf(last?.stats),
      };
    }
    const chunks = generate(messages, options)[Symbol.asyncIterator]();
    async function* iterate(): AsyncGenerator<ChatCompletionChunk> {
      // The first generation step runs before anything is yielded, so a prompt over the context
      // or a lost device fails the first next() (an HTTP server can still answer with a 4xx).
      const first = await chunks.next();
      yield {
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }],
      };
      const rest = { [Symbol.asyncIterator]: () => chunks };
      const all = first.done ? [] : [first.value];
      for await (const ch of (async function* () {
        yield* all;
        yield* rest;
      })()) {
        if (ch.finishReason) {
          if (ch.text)
            yield {
              id,
              object: 'chat.completion.chunk',
              created,
              model,
              choices: [{ index: 0, delta: { content: ch.text }, finish_reason: null, logprobs: null }],
            };
          yield {
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            choices: [{ index: 0, delta: {}, finish_reason: ch.finishReason, logprobs: null }],
            usage: usageOf(ch.stats),
          };
        } else if (ch.text) {
          yield {
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            choices: [{ index: 0, delta: { content: ch.text }, finish_reason: null, logprobs: null }],
          };
        }
      }
    }
    return iterate();
  }
  return { create } as ChatCompletions;
}
