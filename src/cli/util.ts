/** Shared CLI helpers: tables, JSON output, error reporting. */
import { SieveError } from '../errors.ts';
import { UsageError, type OptionSpecs, type OptionValues } from './options.ts';

export interface Command {
  name: string;
  /** One line, in the top-level help. */
  summary: string;
  /** The synopsis in `sieve <command> --help`. */
  usage: string;
  /** A paragraph in `--help` (the summary when absent). */
  description?: string;
  /** Every option the command takes (the common ones are added). */
  options: OptionSpecs;
  /** `argv`: the command's arguments; `values`: them parsed against `options` (defaults filled in). */
  run(argv: string[], values: OptionValues): Promise<number>;
}

/** Renders rows as an aligned text table. */
export function table(rows: (string | number)[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0].map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const fmt = (r: (string | number)[]) =>
    r
      .map((v, c) => String(v ?? '').padEnd(widths[c]))
      .join('  ')
      .trimEnd();
  const lines = all.map(fmt);
  if (header) lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

/** Prints an error as one line (stack only with --debug) and returns the exit code (2: a usage error). */
export function reportError(e: unknown, debug: boolean, command?: string): number {
  const who = command ? `sieve ${command}` : 'sieve';
  if (debug) console.error(e);
  else if (e instanceof UsageError) console.error(`${who}: ${e.message} (see \`${who} --help\`)`);
  else if (e instanceof SieveError) console.error(`sieve: ${e.name}: ${e.message}`);
  else console.error(`sieve: ${(e as Error)?.message ?? String(e)}`);
  return e instanceof UsageError || (e instanceof SieveError && e.code === 'INVALID_OPTION') ? 2 : 1;
}
