/**
 * The legacy OpenAI text completion (POST /v1/completions) over an engine's
 * generate(): a raw prompt continued as text, in OpenAI's `text_completion`
 * shapes, streamed or not. Fields are validated up front and named as the
 * request spells them.
 */
import { InvalidOptionError } from '../errors.ts';
import { OPENAI_NAMES, resolveGenerate } from './options.ts';
import { usageOf } from './openai.ts';
import type { CompletionUsage, FinishReason, GenerateChunk, GenerateInput, GenerateOptions, SieveEngine } from './types.ts';

/** OpenAI's documented default for the legacy endpoint (chat's default stays the engine's 256). */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export interface TextCompletion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { text: string; index: number; logprobs: null; finish_reason: FinishReason | null }[];
  usage?: CompletionUsage;
}

const KEYS = new Set([
  'model',
  'prompt',
  'stream',
  'stream_options',
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'stop',
  'repetition_penalty',
  'n',
  'best_of',
  'echo',
  'suffix',
  'logprobs',
  'user',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
]);

function isIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
}

/** A parsed /v1/completions body -> the engine's input and options. `vocabSize` bounds token-id prompts. */
export function validateCompletionRequest(req: unknown, vocabSize: number): { input: GenerateInput; stream: boolean; options: GenerateOptions } {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new InvalidOptionError('request', 'must be a JSON object');
  const r = req as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!KEYS.has(k)) throw new InvalidOptionError(k, 'is not a supported field');
  let p = r.prompt;
  // one prompt per request: a one-element batch is unwrapped, a longer one refused
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || isIds(p[0]))) p = p[0];
  let input: GenerateInput;
  if (typeof p === 'string') {
    if (p.length === 0) throw new InvalidOptionError('prompt', 'must not be empty');
    input = p;
  } else if (isIds(p)) {
    if (p.some((x) => !Number.isInteger(x) || x < 0 || x >= vocabSize)) {
      throw new InvalidOptionError('prompt', `token ids must be integers in [0, ${vocabSize})`);
    }
    input = { ids: p };
  } else {
    throw new InvalidOptionError('prompt', 'must be a non-empty string or an array of token ids (one prompt per request)');
  }
  if (r.stream !== undefined && r.stream !== null && typeof r.stream !== 'boolean') throw new InvalidOptionError('stream', 'must be a boolean');
  if (r.model !== undefined && r.model !== null && typeof r.model !== 'string') throw new InvalidOptionError('model', 'must be a string');
  const one = (k: string, ok: (v: unknown) => boolean, what: string) => {
    if (r[k] !== undefined && r[k] !== null && !ok(r[k])) throw new InvalidOptionError(k, `${what}, got ${JSON.stringify(r[k]) ?? String(r[k])}`);
  };
  one('n', (v) => v === 1, 'only 1 is supported (one choice per request)');
  one('best_of', (v) => v === 1, 'only 1 is supported');
  one('echo', (v) => v === false, 'only false is supported');
  one('suffix', (v) => v === '', 'is not supported');
  one('logprobs', () => false, 'is not supported');
  one('frequency_penalty', (v) => v === 0, 'only 0 is supported (use repetition_penalty)');
  one('presence_penalty', (v) => v === 0, 'only 0 is supported (use repetition_penalty)');
  one('logit_bias', (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0, 'is not supported');
  const options: GenerateOptions = {
    maxTokens: (r.max_tokens as number | null | undefined) ?? COMPLETIONS_DEFAULT_MAX_TOKENS,
    temperature: (r.temperature as number | null | undefined) ?? undefined,
    topP: (r.top_p as number | null | undefined) ?? undefined,
    topK: (r.top_k as number | null | undefined) ?? undefined,
    seed: (r.seed as number | null | undefined) ?? undefined,
    stop: (r.stop as string | string[] | null | undefined) ?? undefined,
    repetitionPenalty: (r.repetition_penalty as number | null | undefined) ?? undefined,
  };
  resolveGenerate(options, OPENAI_NAMES);
  return { input, stream: r.stream === true, options };
}

export function textCompletionId(): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `cmpl-${hex}`;
}

/**
 * Runs a validated completion. Not streamed: resolves with the whole TextCompletion. Streamed: an
 * iterator whose first step already ran (a prompt over the context fails before any chunk), one
 * chunk per piece of text, the last with finish_reason and usage.
 */
export async function runCompletion(
  engine: SieveEngine,
  input: GenerateInput,
  options: GenerateOptions,
  stream: boolean,
): Promise<TextCompletion | AsyncIterable<TextCompletion>> {
  const id = textCompletionId();
  const created = Math.floor(Date.now() / 1000);
  const model = engine.model.id;
  const chunks = engine.generate(input, options)[Symbol.asyncIterator]();
  const first = await chunks.next();
  if (!stream) {
    let text = '';
    let last: GenerateChunk | undefined;
    for (let r = first; !r.done; r = await chunks.next()) {
      text += r.value.text;
      last = r.value;
    }
    return {
      id,
      object: 'text_completion',
      created,
      model,
      choices: [{ text, index: 0, logprobs: null, finish_reason: last?.finishReason ?? 'stop' }],
      usage: usageOf(last?.stats),
    };
  }
  async function* iterate(): AsyncGenerator<TextCompletion> {
    for (let r = first; !r.done; r = await chunks.next()) {
      const ch = r.value;
      if (ch.finishReason) {
        yield {
          id,
          object: 'text_completion',
          created,
          model,
          choices: [{ text: ch.text, index: 0, logprobs: null, finish_reason: ch.finishReason }],
          usage: usageOf(ch.stats),
        };
      } else if (ch.text) {
        yield { id, object: 'text_completion', created, model, choices: [{ text: ch.text, index: 0, logprobs: null, finish_reason: null }] };
      }
    }
  }
  return iterate();
}
