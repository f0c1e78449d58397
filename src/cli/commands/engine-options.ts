/**
 * The values of the shared option groups (src/cli/options.ts: MODEL_OPTIONS,
 * SAMPLING_OPTIONS) turned into the runtime's options, each checked and named
 * in the error when wrong.
 */
import { InvalidOptionError } from '../../errors.ts';
import type { LoadEngineOptions } from '../../engine/load.ts';
import type { AttentionOptions } from '../../engine/types.ts';
import type { WeightFormat } from '../../loader/formats.ts';
import type { GenerateOptions, LoadOptions } from '../../api/types.ts';
import type { OptionValues } from '../options.ts';
import { KERNELS_OPTIONS, type KernelsOption } from '../../gpu/tier.ts';

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

function number(name: string, v: string | boolean | undefined, ok: (n: number) => boolean, what: string): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new InvalidOptionError(`--${name}`, `expected ${what}, got '${s}'`);
  return n;
}

export function positiveInt(name: string, v: string | boolean | undefined): number | undefined {
  return number(name, v, (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
}

const fraction = (name: string, v: string | boolean | undefined) => number(name, v, (n) => n > 0 && n <= 1, 'a number in (0, 1]');

function oneOf<T extends string>(name: string, v: string | boolean | undefined, allowed: readonly T[]): T | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  if (!allowed.includes(s as T)) throw new InvalidOptionError(`--${name}`, `expected ${allowed.join(', ')}, got '${s}'`);
  return s as T;
}

/** --kernels: the kernel tier (LoadOptions.kernels; src/gpu/tier.ts). */
export function kernelsFlag(v: string | boolean | undefined): KernelsOption | undefined {
  return oneOf('kernels', v, KERNELS_OPTIONS);
}

/** --selection: the column-selection rule (AttentionOptions.selection). */
export function selectionFlag(v: string | boolean | undefined): AttentionOptions['selection'] {
  return oneOf('selection', v, ['auto', 'group', 'topup', 'head'] as const);
}

/** The attention options given on the command line (the rest stay the engine's defaults). */
export function attentionFromValues(values: OptionValues): Partial<AttentionOptions> {
  const attention: Partial<AttentionOptions> = {};
  const set = <K extends keyof AttentionOptions>(k: K, v: AttentionOptions[K] | undefined) => {
    if (v !== undefined) attention[k] = v;
  };
  set('attention', oneOf('attention', values.attention, ['sample', 'dense'] as const));
  set('alpha', fraction('alpha', values.alpha));
  set('windowRatio', fraction('window-ratio', values['window-ratio']));
  set('sampleRatio', fraction('sample-ratio', values['sample-ratio']));
  set('minSparseLen', positiveInt('min-sparse-len', values['min-sparse-len']));
  set('selection', selectionFlag(values.selection));
  return attention;
}

function modelDir(values: OptionValues): string {
  const dir = str(values.model);
  if (!dir) throw new InvalidOptionError('--model', 'a checkpoint folder is required (--model DIR)');
  return dir;
}

/** MODEL_OPTIONS -> loadModel()'s options (chat, generate, serve). */
export function loadOptionsFromValues(values: OptionValues): { dir: string; opts: LoadOptions } {
  const dir = modelDir(values);
  const weights = oneOf('weights', values.weights ?? 'auto', ['auto', 'f32', 'f16', 'q8', 'q4'] as const);
  let last = -1;
  return {
    dir,
    opts: {
      ...(weights !== 'auto' ? { weights: weights as WeightFormat } : {}),
      kvDtype: oneOf('kv', values.kv ?? 'f16', ['f16', 'f32'] as const),
      kernels: kernelsFlag(values.kernels),
      contextLength: number('context', values.context, (n) => Number.isSafeInteger(n) && n >= 2, 'an integer >= 2'),
      prefillChunk: positiveInt('chunk', values.chunk),
      attention: attentionFromValues(values),
      onProgress: process.stderr.isTTY
        ? (p) => {
            const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0;
            if (pct !== last) {
              last = pct;
              process.stderr.write(`\rloading ${p.file} ${pct}%   `);
            }
          }
        : undefined,
    },
  };
}

/** SAMPLING_OPTIONS -> generate()'s options (chat, generate). */
export function samplingFromValues(values: OptionValues): GenerateOptions {
  return {
    maxTokens: positiveInt('max-tokens', values['max-tokens']),
    temperature: number('temperature', values.temperature, (n) => n >= 0 && n <= 100, 'a number in [0, 100]'),
    topP: fraction('top-p', values['top-p']),
    topK: number('top-k', values['top-k'], (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0'),
    repetitionPenalty: number('repetition-penalty', values['repetition-penalty'], (n) => n > 0 && n <= 100, 'a number in (0, 100]'),
    seed: number('seed', values.seed, (n) => Number.isSafeInteger(n), 'an integer'),
  };
}

/** MODEL_OPTIONS (+ --group) -> loadEngine()'s options (logits: f32 weights and KV, dense attention by default). */
export function engineOptions(values: OptionValues): { dir: string; opts: LoadEngineOptions } {
  const dir = modelDir(values);
  const weights = oneOf('weights', values.weights, ['auto', 'f32', 'f16', 'q8', 'q4'] as const) ?? 'f32';
  return {
    dir,
    opts: {
      ...(weights !== 'auto' ? { weights } : {}),
      kvDtype: oneOf('kv', values.kv, ['f16', 'f32'] as const) ?? 'f32',
      kernels: kernelsFlag(values.kernels) ?? 'f32',
      attention: { attention: 'dense', ...attentionFromValues(values) },
      groupSize: positiveInt('group', values.group),
      contextLength: positiveInt('context', values.context),
      prefillChunk: positiveInt('chunk', values.chunk),
    },
  };
}
