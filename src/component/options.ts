/**
 * <sieve-chat> options: every option is an HTML attribute (kebab-case) with
 * a typed value. Parsing is strict: a bad value becomes a plain-words error
 * naming the attribute, never a silent default.
 */
import type { WeightFormat } from '../loader/formats.ts';
import { DEFAULT_ATTENTION, DEFAULT_GENERATE, DEFAULT_KERNELS } from '../defaults.ts';
import { KERNELS_OPTIONS, type KernelsOption } from '../gpu/tier.ts';

export interface ChatOptions {
  /** Weights format on the GPU; 'auto' = the engine's default (f16; every default: src/defaults.ts). */
  weights: WeightFormat | 'auto';
  /** Kernel tier (LoadOptions.kernels): 'auto' (the fastest the GPU supports) or a tier forced for comparison. */
  kernels: KernelsOption;
  /** KV cache positions; 0 = the engine's default (the model's own maximum, at most 4096). */
  contextLength: number;
  /** Rows per prefill chunk; 0 = the engine's default. */
  prefillChunk: number;
  attention: 'dense' | 'sample';
  alpha: number;
  windowRatio: number;
  sampleRatio: number;
  /** Floor on the sampled query rows; 0 = the engine's default (DEFAULT_ATTENTION.minSampleRows). */
  minSampleRows: number;
  /** Column-selection rule under GQA (AttentionOptions.selection); 'auto' = the engine's default ('topup' below 16K tokens, then 'group'). */
  selection: 'auto' | 'group' | 'topup' | 'head';
  /** Prompt length from which prefill runs sparse; 0 = the engine's default. */
  minSparseLen: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  maxTokens: number;
  systemPrompt: string;
  /** 'chat' applies the model's chat template to the conversation; 'completion' continues the raw text. */
  mode: 'auto' | 'chat' | 'completion';
  seed: number | undefined;
  /** Keep downloaded weights in the browser's Cache API (URL models). */
  cache: boolean;
  /** Show the developer stats line (tokens, TTFT, tok/s, sparsity) under each reply. Attribute `show-stats` (present = on). */
  showStats: boolean;
  /** Prompts offered on an empty conversation; undefined = the component's own (story openers for text continuation). */
  suggestions: string[] | undefined;
}

export const DEFAULT_OPTIONS: ChatOptions = {
  weights: 'auto',
  kernels: DEFAULT_KERNELS,
  contextLength: 0,
  prefillChunk: 0,
  attention: 'sample',
  alpha: DEFAULT_ATTENTION.alpha,
  windowRatio: DEFAULT_ATTENTION.windowRatio,
  sampleRatio: DEFAULT_ATTENTION.sampleRatio,
  minSampleRows: 0,
  selection: 'auto',
  minSparseLen: 0,
  temperature: 0,
  topP: 1,
  maxTokens: DEFAULT_GENERATE.maxTokens,
  systemPrompt: '',
  mode: 'auto',
  seed: undefined,
  cache: true,
  showStats: false,
  suggestions: undefined,
};

type Parser = (v: string) => unknown;
const num =
  (min: number, max: number, int = false): Parser =>
  (v) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x) || x < min || x > max || (int && !Number.isInteger(x))) {
      throw new Error(`must be ${int ? 'an integer' : 'a number'} between ${min} and ${max}`);
    }
    return x;
  };
const oneOf =
  (...vals: string[]): Parser =>
  (v) => {
    if (!vals.includes(v)) throw new Error(`must be one of ${vals.join(', ')}`);
    return v;
  };

/** attribute name -> [option key, parser] */
export const ATTRIBUTES: Record<string, [keyof ChatOptions, Parser]> = {
  weights: ['weights', oneOf('auto', 'f32', 'f16', 'q8', 'q4')],
  kernels: ['kernels', oneOf(...KERNELS_OPTIONS)],
  'context-length': ['contextLength', num(0, 1 << 28, true)],
  'prefill-chunk': ['prefillChunk', num(0, 1 << 20, true)],
  attention: ['attention', oneOf('dense', 'sample')],
  alpha: ['alpha', num(1e-6, 1)],
  'window-ratio': ['windowRatio', num(1e-6, 1)],
  'sample-ratio': ['sampleRatio', num(1e-6, 1)],
  'min-sample-rows': ['minSampleRows', num(0, 1 << 20, true)],
  selection: ['selection', oneOf('auto', 'group', 'topup', 'head')],
  'min-sparse-len': ['minSparseLen', num(0, 1 << 20, true)],
  temperature: ['temperature', num(0, 10)],
  'top-p': ['topP', num(1e-6, 1)],
  'max-tokens': ['maxTokens', num(1, 1 << 20, true)],
  'system-prompt': ['systemPrompt', (v) => v],
  mode: ['mode', oneOf('auto', 'chat', 'completion')],
  seed: ['seed', num(0, 2 ** 32 - 1, true)],
  cache: [
    'cache',
    (v) => {
      if (v !== 'true' && v !== 'false') throw new Error('must be true or false');
      return v === 'true';
    },
  ],
  // A boolean attribute: present (or "true") shows the line; absent or "false" hides it.
  'show-stats': [
    'showStats',
    (v) => {
      if (v !== '' && v !== 'true' && v !== 'false') throw new Error('must be empty, true or false');
      return v !== 'false';
    },
  ],
  suggestions: [
    'suggestions',
    (v) => {
      let x: unknown;
      try {
        x = JSON.parse(v);
      } catch {
        x = undefined;
      }
      if (!Array.isArray(x) || x.length > 12 || !x.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 500)) {
        throw new Error('must be a JSON array of at most 12 non-empty strings');
      }
      return x;
    },
  ],
};

/** Reads every option attribute of `el`; throws Error("attribute 'x' must be ...") on a bad value. */
export function readOptions(el: Element): ChatOptions {
  const out: Record<string, unknown> = { ...DEFAULT_OPTIONS };
  for (const [attr, [key, parse]] of Object.entries(ATTRIBUTES)) {
    const v = el.getAttribute(attr);
    if (v === null) continue;
    try {
      out[key] = parse(v);
    } catch (e) {
      throw Object.assign(new Error(`attribute '${attr}' ${(e as Error).message} (got "${v}")`), { name: 'InvalidOptionError', code: 'INVALID_OPTION' });
    }
  }
  return out as unknown as ChatOptions;
}
