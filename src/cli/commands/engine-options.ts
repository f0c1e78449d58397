/** Options shared by `sieve logits` and `sieve generate`: model folder, formats, context, attention. */
import { InvalidOptionError } from '../../errors.ts';
import type { LoadEngineOptions } from '../../engine/load.ts';
import type { AttentionOptions } from '../../engine/types.ts';
import type { WeightFormat } from '../../loader/formats.ts';

export const ENGINE_FLAGS = {
  model: { type: 'string' },
  weights: { type: 'string' },
  group: { type: 'string' },
  kv: { type: 'string' },
  context: { type: 'string' },
  chunk: { type: 'string' },
  attention: { type: 'string' },
  alpha: { type: 'string' },
  'window-ratio': { type: 'string' },
  'sample-ratio': { type: 'string' },
  'min-sparse-len': { type: 'string' },
  selection: { type: 'string' },
} as const;

export const ENGINE_USAGE = '[--weights f32|f16|q8|q4] [--kv f32|f16] [--context N] [--chunk N] [--attention dense|sample] [--alpha A] [--window-ratio R] [--sample-ratio R] [--min-sparse-len N] [--selection auto|group|topup|head]';

export function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidOptionError(name, `expected a positive integer, got '${v}'`);
  return n;
}

function fraction(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidOptionError(name, `expected a number in (0, 1], got '${v}'`);
  return n;
}

/** --selection: the column-selection rule (AttentionOptions.selection). */
export function selectionFlag(v: string | undefined): AttentionOptions['selection'] {
  if (v === undefined) return undefined;
  if (v !== 'auto' && v !== 'group' && v !== 'topup' && v !== 'head') throw new InvalidOptionError('selection', `expected auto, group, topup or head, got '${v}'`);
  return v;
}

export function engineOptions(values: Record<string, string | boolean | undefined>, defaults: { weights: WeightFormat; kv: 'f32' | 'f16' }): { dir: string; opts: LoadEngineOptions } {
  const dir = values.model;
  if (typeof dir !== 'string' || !dir) throw new InvalidOptionError('model', 'a checkpoint folder is required (--model DIR)');
  const weights = (values.weights ?? defaults.weights) as WeightFormat;
  if (!['f32', 'f16', 'q8', 'q4'].includes(weights)) throw new InvalidOptionError('weights', `expected f32, f16, q8 or q4, got '${weights}'`);
  const kv = (values.kv ?? defaults.kv) as 'f32' | 'f16';
  if (kv !== 'f32' && kv !== 'f16') throw new InvalidOptionError('kv', `expected f32 or f16, got '${kv}'`);
  const mode = (values.attention ?? 'dense') as AttentionOptions['attention'];
  if (mode !== 'dense' && mode !== 'sample') throw new InvalidOptionError('attention', `expected dense or sample, got '${mode}'`);
  const attention: Partial<AttentionOptions> = { attention: mode };
  const set = <K extends keyof AttentionOptions>(k: K, v: AttentionOptions[K] | undefined) => { if (v !== undefined) attention[k] = v; };
  set('alpha', fraction('alpha', values.alpha as string | undefined));
  set('windowRatio', fraction('window-ratio', values['window-ratio'] as string | undefined));
  set('sampleRatio', fraction('sample-ratio', values['sample-ratio'] as string | undefined));
  set('minSparseLen', positiveInt('min-sparse-len', values['min-sparse-len'] as string | undefined));
  set('selection', selectionFlag(values.selection as string | undefined));
  return {
    dir,
    opts: {
      weights, kvDtype: kv, attention,
      groupSize: positiveInt('group', values.group as string | undefined),
      contextLength: positiveInt('context', values.context as string | undefined),
      prefillChunk: positiveInt('chunk', values.chunk as string | undefined),
    },
  };
}
