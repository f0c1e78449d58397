/**
 * Option validation: every public option is checked once, up front, and a
 * bad one is rejected with InvalidOptionError naming it (OpenAI requests by
 * their snake_case field names).
 */
import { InvalidOptionError } from '../errors.ts';
import { DEFAULT_GENERATE } from '../defaults.ts';
import { isKernelsOption, KERNELS_OPTIONS } from '../gpu/tier.ts';
import type { SampleParams } from '../../kernels/sample.ts';
import type { ChatCompletionRequest, ChatMessage, GenerateInput, GenerateOptions, LoadOptions } from './types.ts';

export interface ResolvedGenerate {
  maxTokens: number;
  sample: SampleParams;
  seed: number;
  stop: string[];
  stopIds: number[];
  ignoreEos: boolean;
}

const ROLES = new Set(['system', 'user', 'assistant']);
export const DEFAULT_MAX_TOKENS = DEFAULT_GENERATE.maxTokens;

/** A value as a message shows it: NaN and Infinity by name (JSON would say null), long values cut. */
export function showValue(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return 'a function';
  let s: string | undefined;
  try {
    s = JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : typeof x === 'bigint' ? String(x) : x));
  } catch {
    s = undefined;
  }
  s ??= String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

function num(name: string, v: unknown, check: (x: number) => boolean, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) {
    const why = typeof v === 'number' && !Number.isFinite(v) ? ` (${v} is not a finite number)` : '';
    throw new InvalidOptionError(name, `must be ${what}, got ${showValue(v)}${why}`, {
      value: typeof v === 'number' && !Number.isFinite(v) ? String(v) : (v as never),
    });
  }
  return v;
}

const isInt = (x: number) => Number.isInteger(x);

export function validateStop(name: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const arr = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(arr) || arr.some((s) => typeof s !== 'string' || s.length === 0) || arr.length > 16) {
    throw new InvalidOptionError(name, 'must be a non-empty string or an array of at most 16 non-empty strings');
  }
  return arr as string[];
}

/** GenerateOptions (camelCase) -> resolved values; `names` maps to the caller's own option names. */
export function resolveGenerate(o: GenerateOptions = {}, names: Partial<Record<keyof GenerateOptions, string>> = {}): ResolvedGenerate {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('options', 'must be an object');
  const n = (k: keyof GenerateOptions) => names[k] ?? k;
  const maxTokens = num(n('maxTokens'), o.maxTokens, (x) => isInt(x) && x >= 1, 'an integer >= 1') ?? DEFAULT_MAX_TOKENS;
  const temperature = num(n('temperature'), o.temperature, (x) => x >= 0 && x <= 100, 'a number in [0, 100]') ?? DEFAULT_GENERATE.temperature;
  const topP = num(n('topP'), o.topP, (x) => x > 0 && x <= 1, 'a number in (0, 1]') ?? DEFAULT_GENERATE.topP;
  const topK = num(n('topK'), o.topK, (x) => isInt(x) && x >= 0, 'an integer >= 0') ?? DEFAULT_GENERATE.topK;
  const repetitionPenalty =
    num(n('repetitionPenalty'), o.repetitionPenalty, (x) => x > 0 && x <= 100, 'a number in (0, 100]') ?? DEFAULT_GENERATE.repetitionPenalty;
  const seed = num(n('seed'), o.seed, (x) => isInt(x), 'an integer') ?? Math.floor(Math.random() * 2 ** 32);
  const stop = validateStop(n('stop'), o.stop);
  const stopIds = o.stopIds ?? [];
  if (!Array.isArray(stopIds) || stopIds.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new InvalidOptionError(n('stopIds'), 'must be an array of token ids (integers >= 0)');
  }
  if (o.signal !== undefined && !(typeof o.signal === 'object' && o.signal !== null && 'aborted' in o.signal)) {
    throw new InvalidOptionError(n('signal'), 'must be an AbortSignal');
  }
  return {
    maxTokens,
    sample: { greedy: temperature === 0 || topK === 1, temperature: temperature || 1, topK, topP, repetitionPenalty },
    seed: seed >>> 0,
    stop,
    stopIds,
    ignoreEos: !!o.ignoreEos,
  };
}

export function validateMessages(name: string, v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new InvalidOptionError(name, 'must be a non-empty array of {role, content}');
  v.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new InvalidOptionError(`${name}[${i}]`, 'must be an object {role, content}');
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new InvalidOptionError(`${name}[${i}].role`, `must be one of system, user, assistant; got ${showValue(role)}`);
    }
    if (typeof content !== 'string') throw new InvalidOptionError(`${name}[${i}].content`, 'must be a string');
  });
  return v.map((m) => ({ role: m.role, content: m.content }));
}

export function validateInput(v: GenerateInput): GenerateInput {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return validateMessages('messages', v);
  if (typeof v === 'object' && v !== null && Array.isArray((v as { ids: unknown }).ids)) {
    const ids = (v as { ids: unknown[] }).ids;
    const bad = ids.find((x) => !Number.isInteger(x) || (x as number) < 0);
    if (ids.length === 0) throw new InvalidOptionError('ids', 'must be a non-empty array of token ids');
    if (bad !== undefined || ids.some((x) => x === undefined))
      throw new InvalidOptionError('ids', `must be a non-empty array of token ids (integers >= 0), got ${showValue(bad)}`);
    return v;
  }
  throw new InvalidOptionError('input', 'must be a string, an array of chat messages or {ids: number[]}');
}

const REQUEST_KEYS = new Set([
  'messages',
  'model',
  'stream',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'stop',
  'repetition_penalty',
  'n',
  'signal',
  'stream_options',
  'user',
  'frequency_penalty',
  'presence_penalty',
  'logprobs',
]);

/** An OpenAI chat request (e.g. a parsed HTTP body) -> messages + GenerateOptions; names fields as the request spells them. */
export function validateChatRequest(req: unknown): { messages: ChatMessage[]; stream: boolean; options: GenerateOptions } {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new InvalidOptionError('request', 'must be a JSON object');
  const r = req as ChatCompletionRequest & Record<string, unknown>;
  for (const k of Object.keys(r)) if (!REQUEST_KEYS.has(k)) throw new InvalidOptionError(k, 'is not a supported field');
  const messages = validateMessages('messages', r.messages);
  if (r.stream !== undefined && r.stream !== null && typeof r.stream !== 'boolean') throw new InvalidOptionError('stream', 'must be a boolean');
  if (r.model !== undefined && r.model !== null && typeof r.model !== 'string') throw new InvalidOptionError('model', 'must be a string');
  num('n', r.n, (x) => x === 1, 'the number 1 (one choice per request)');
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) num(k, r[k], (x) => x === 0, '0 (not supported; use repetition_penalty)');
  const options: GenerateOptions = {
    maxTokens: r.max_tokens ?? (r.max_completion_tokens as number | undefined) ?? undefined,
    temperature: r.temperature ?? undefined,
    topP: r.top_p ?? undefined,
    topK: r.top_k ?? undefined,
    seed: r.seed ?? undefined,
    stop: r.stop ?? undefined,
    repetitionPenalty: r.repetition_penalty ?? undefined,
    signal: r.signal,
  };
  resolveGenerate(options, OPENAI_NAMES);
  return { messages, stream: !!r.stream, options };
}

export const OPENAI_NAMES: Partial<Record<keyof GenerateOptions, string>> = {
  maxTokens: 'max_tokens',
  topP: 'top_p',
  topK: 'top_k',
  repetitionPenalty: 'repetition_penalty',
};

export function validateLoadOptions(o: LoadOptions = {}): void {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('options', 'must be an object');
  if (o.weights !== undefined && !['f32', 'f16', 'q8', 'q4'].includes(o.weights)) {
    throw new InvalidOptionError('weights', `must be one of f32, f16, q8, q4; got ${showValue(o.weights)}`);
  }
  if (o.kernels !== undefined && !isKernelsOption(o.kernels)) {
    throw new InvalidOptionError('kernels', `must be one of ${KERNELS_OPTIONS.join(', ')}; got ${showValue(o.kernels)}`);
  }
  if (o.kvDtype !== undefined && !['f32', 'f16'].includes(o.kvDtype)) {
    throw new InvalidOptionError('kvDtype', `must be f32 or f16; got ${showValue(o.kvDtype)}`);
  }
  num('contextLength', o.contextLength, (x) => isInt(x) && x >= 2, 'an integer >= 2');
  num('prefillChunk', o.prefillChunk, (x) => isInt(x) && x >= 1, 'an integer >= 1');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new InvalidOptionError('onProgress', 'must be a function');
  if (o.cache !== undefined && typeof o.cache !== 'boolean') throw new InvalidOptionError('cache', 'must be a boolean');
  if (o.modelId !== undefined && typeof o.modelId !== 'string') throw new InvalidOptionError('modelId', 'must be a string');
  if (o.allowSpecialTokens !== undefined && typeof o.allowSpecialTokens !== 'boolean') throw new InvalidOptionError('allowSpecialTokens', 'must be a boolean');
  if (o.allowNonFinite !== undefined && typeof o.allowNonFinite !== 'boolean') throw new InvalidOptionError('allowNonFinite', 'must be a boolean');
  if (o.attention !== undefined) {
    const a = o.attention as Record<string, unknown>;
    if (typeof a !== 'object' || a === null) throw new InvalidOptionError('attention', 'must be an object');
    if (a.attention !== undefined && a.attention !== 'dense' && a.attention !== 'sample') {
      throw new InvalidOptionError('attention.attention', `must be 'dense' or 'sample'; got ${showValue(a.attention)}`);
    }
    for (const k of ['alpha', 'windowRatio', 'sampleRatio'] as const) num(`attention.${k}`, a[k], (x) => x > 0 && x <= 1, 'a number in (0, 1]');
    for (const k of ['minSampleRows', 'sampleBlock', 'minSparseLen'] as const) num(`attention.${k}`, a[k], (x) => isInt(x) && x >= 1, 'an integer >= 1');
  }
}
