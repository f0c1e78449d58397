/** Shared CLI helpers: tables, JSON output, error reporting. */
import { SieveError } from '../errors.ts';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Renders rows as an aligned text table. */
export function table(rows: (string | number)[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0].map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const fmt = (r: (string | number)[]) => r.map((v, c) => String(v ?? '').padEnd(widths[c])).join('  ').trimEnd();
  const lines = all.map(fmt);
  if (header) lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

/** Prints an error as one line (stack only with --debug) and returns the exit code. */
export function reportError(e: unknown, debug: boolean): number {
  if (debug) console.error(e);
  else if (e instanceof SieveError) console.error(`sieve: ${e.name}: ${e.message}`);
  else console.error(`sieve: ${(e as Error)?.message ?? String(e)}`);
  return e instanceof SieveError && e.code === 'INVALID_OPTION' ? 2 : 1;
}
