/**
 * The CLI's options, declared once per command with their help and defaults:
 * `parseOptions` parses argv strictly (an unknown option or a stray argument is
 * a UsageError naming it), `commandHelp` prints `sieve <command> --help`, and
 * the option groups shared by several commands (loading a model, sampling) are
 * defined here so that every command has the same names, values and defaults.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_ATTENTION } from '../engine/types.ts';
import { DEFAULT_KERNELS } from '../defaults.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Placeholder of the value in help (`N`, `DIR`, ...). */
  value?: string;
  /** The default, as shown in help; also filled in by the parser unless `shownOnly`. */
  default?: string;
  /** The default is the runtime's own (the option stays undefined when not given). */
  shownOnly?: boolean;
  required?: boolean;
  short?: string;
  /** Heading of the group the option is listed under in help. */
  group?: string;
  help: string;
}
export type OptionSpecs = Record<string, OptionSpec>;
export type OptionValues = Record<string, string | boolean | undefined>;

/** A command line the CLI cannot run (exit code 2): unknown command/option, missing value. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Options every command accepts (handled by src/cli/main.ts). */
export const COMMON_OPTIONS: OptionSpecs = {
  verbose: { type: 'boolean', group: 'Common', help: "show the GPU driver's own messages (Vulkan loader, Dawn), silenced by default" },
  debug: { type: 'boolean', group: 'Common', help: 'print the stack trace of an error' },
  help: { type: 'boolean', short: 'h', group: 'Common', help: 'show this help' },
};

const A = DEFAULT_ATTENTION;

/** Loading a checkpoint: chat, generate, serve (and logits, with its own defaults). */
export const MODEL_OPTIONS: OptionSpecs = {
  model: { type: 'string', value: 'DIR', required: true, group: 'Model', help: 'checkpoint folder (config.json, safetensors or .bin, tokenizer files)' },
  weights: { type: 'string', value: 'FMT', default: 'auto', group: 'Model', help: 'weight format on the GPU: auto (f16, the default), f32, f16, q8, q4' },
  kv: { type: 'string', value: 'DTYPE', default: 'f16', group: 'Model', help: 'KV cache type: f16, f32' },
  kernels: {
    type: 'string',
    value: 'TIER',
    default: DEFAULT_KERNELS,
    group: 'Model',
    help: 'kernel tier: auto (the fastest the GPU supports), f32, f16, tensor (f16 subgroup matrices); a tier the GPU lacks is refused by name',
  },
  context: { type: 'string', value: 'N', default: 'min(model, 4096)', shownOnly: true, group: 'Model', help: 'KV cache positions' },
  chunk: { type: 'string', value: 'N', default: 'up to 4096', shownOnly: true, group: 'Model', help: 'prefill rows per chunk (src/defaults.ts)' },
  attention: {
    type: 'string',
    value: 'MODE',
    default: A.attention,
    shownOnly: true,
    group: 'Attention',
    help: 'prefill attention: sample (SampleAttention), dense',
  },
  alpha: {
    type: 'string',
    value: 'A',
    default: String(A.alpha),
    shownOnly: true,
    group: 'Attention',
    help: "attention mass each head's selection must cover, in (0, 1]",
  },
  'window-ratio': {
    type: 'string',
    value: 'R',
    default: String(A.windowRatio),
    shownOnly: true,
    group: 'Attention',
    help: 'local window as a fraction of the prompt, in (0, 1]',
  },
  'sample-ratio': {
    type: 'string',
    value: 'R',
    default: String(A.sampleRatio),
    shownOnly: true,
    group: 'Attention',
    help: 'query rows sampled, as a fraction of the prompt, in (0, 1]',
  },
  'min-sparse-len': {
    type: 'string',
    value: 'N',
    default: String(A.minSparseLen),
    shownOnly: true,
    group: 'Attention',
    help: 'prompt length from which prefill runs sparse',
  },
  selection: { type: 'string', value: 'RULE', default: A.selection, shownOnly: true, group: 'Attention', help: 'column selection: auto, group, topup, head' },
};

/** Sampling: chat and generate (serve takes these per request). */
export const SAMPLING_OPTIONS: OptionSpecs = {
  'max-tokens': { type: 'string', value: 'N', default: '256', group: 'Sampling', help: 'new tokens at most' },
  temperature: { type: 'string', value: 'T', default: '0.7', group: 'Sampling', help: 'sampling temperature; 0 is greedy (argmax)' },
  'top-p': { type: 'string', value: 'P', default: '0.95', group: 'Sampling', help: 'nucleus sampling: the smallest set of tokens whose probability reaches P' },
  'top-k': { type: 'string', value: 'K', default: '0', group: 'Sampling', help: 'sample from the K likeliest tokens only; 0 is off' },
  'repetition-penalty': { type: 'string', value: 'R', default: '1', group: 'Sampling', help: 'divides the logits of tokens already seen; 1 is off' },
  seed: { type: 'string', value: 'S', default: 'random', shownOnly: true, group: 'Sampling', help: 'seed of the sampler; the same seed gives the same text' },
};

/** parseArgs' option table for `specs` plus the common options. */
function parseArgsOptions(specs: OptionSpecs) {
  const out: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string }> = {};
  for (const [name, s] of Object.entries({ ...specs, ...COMMON_OPTIONS })) {
    out[name] = {
      type: s.type,
      ...(s.short ? { short: s.short } : {}),
      ...(s.default !== undefined && !s.shownOnly && s.type === 'string' ? { default: s.default } : {}),
    };
  }
  return out;
}

/** Parses `argv` against the command's options; anything else is a UsageError naming it. */
export function parseOptions(command: string, argv: string[], specs: OptionSpecs): OptionValues {
  let values: OptionValues;
  try {
    ({ values } = parseArgs({ args: argv, options: parseArgsOptions(specs), strict: true, allowPositionals: false }));
  } catch (e) {
    const err = e as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? '';
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new UsageError(`unknown option '${quoted.split(/[ =]/)[0]}'`, command);
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      throw new UsageError(`unexpected argument '${quoted}' (options take the form --name value)`, command);
    }
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = /--[\w-]+/.exec(err.message)?.[0] ?? quoted;
      const spec = specs[name.replace(/^--/, '')];
      throw new UsageError(
        spec?.type === 'string' ? `option '${name}' needs a value (${name} ${spec.value ?? 'VALUE'})` : `option '${name}' takes no value`,
        command,
      );
    }
    throw new UsageError(err.message, command);
  }
  for (const [name, s] of Object.entries(specs)) {
    if (s.required && values[name] === undefined && !values.help)
      throw new UsageError(`option '--${name}' is required (--${name} ${s.value ?? 'VALUE'})`, command);
  }
  return values;
}

export const HELP_WIDTH = 100;

/** Wraps `text` to `width` columns, every line after the first indented by `indent`. */
export function wrap(text: string, width: number, indent = 0): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    const room = width - (lines.length ? indent : 0);
    if (line && line.length + 1 + w.length > room) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line || !lines.length) lines.push(line);
  return lines.map((l, i) => (i ? ' '.repeat(indent) + l : l)).join('\n');
}

/** Two columns (term, description), the description wrapped; a long term puts its description on the next line. */
export function twoColumns(rows: [string, string][], width = HELP_WIDTH, termWidth = Math.min(30, Math.max(...rows.map(([t]) => t.length)))): string {
  const descAt = 2 + termWidth + 2;
  return rows
    .map(([term, desc]) => {
      const body = wrap(desc, width - descAt, 0)
        .split('\n')
        .map((l) => ' '.repeat(descAt) + l);
      if (term.length <= termWidth) body[0] = `  ${term.padEnd(termWidth)}  ${body[0].trimStart()}`;
      else body.unshift(`  ${term}`);
      return body.join('\n');
    })
    .join('\n');
}

function optionTerm(name: string, s: OptionSpec): string {
  return `${s.short ? `-${s.short}, ` : ''}--${name}${s.type === 'string' ? ` ${s.value ?? 'VALUE'}` : ''}`;
}

function optionDesc(s: OptionSpec): string {
  const tail = s.required ? ' (required)' : s.default !== undefined ? ` (default: ${s.default})` : '';
  return s.help + tail;
}

/** `sieve <command> --help`: usage, what it does, and every option with its default, grouped. */
export function commandHelp(c: { name: string; usage: string; summary: string; description?: string; options: OptionSpecs }): string {
  const parts = [wrap(`usage: ${c.usage}`, HELP_WIDTH, 4), '', wrap(c.description ?? c.summary, HELP_WIDTH)];
  const groups = new Map<string, [string, string][]>();
  for (const [name, s] of Object.entries({ ...c.options, ...COMMON_OPTIONS })) {
    const g = s.group ?? 'Options';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push([optionTerm(name, s), optionDesc(s)]);
  }
  const termWidth = Math.min(30, Math.max(...[...groups.values()].flat().map(([t]) => t.length)));
  for (const [g, rows] of groups) parts.push('', `${g} options:`, twoColumns(rows, HELP_WIDTH, termWidth));
  return parts.join('\n');
}
