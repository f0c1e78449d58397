/**
 * Shared by benchmark entry points: argument parsing (--json FILE), the
 * adapter record, one printed table and one JSON file per run.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { GpuContext } from '../src/gpu/device.ts';
import { table } from '../src/cli/util.ts';

export function benchArgs(extra: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }> = {}) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { json: { type: 'string' }, ...extra },
    allowPositionals: true,
  });
  return values as Record<string, string | boolean | undefined>;
}

export function adapterRecord(ctx: GpuContext) {
  return { ...ctx.info, features: [...ctx.features], limits: ctx.limits };
}

export interface BenchReport {
  bench: string;
  date: string;
  adapter: ReturnType<typeof adapterRecord>;
  timing: string;
  /** The kernel tier that ran (src/gpu/tier.ts), where the bench takes --kernels. */
  kernels?: string;
  header: string[];
  rows: (string | number)[][];
  results: unknown[];
}

/** Prints the table and writes the JSON (when --json was given). */
export function finish(report: BenchReport, jsonPath?: string | boolean): void {
  console.log(
    `# ${report.bench} on ${report.adapter.vendor} ${report.adapter.architecture} ${report.adapter.description} (${report.adapter.backend}), timing: ${report.timing}` +
      (report.kernels ? `, kernels ${report.kernels}` : ''),
  );
  if (report.adapter.isSoftware) console.log('# NOTE: software adapter (SwiftShader): these are not GPU figures');
  console.log(table(report.rows, report.header));
  if (typeof jsonPath === 'string') {
    mkdirSync(dirname(jsonPath), { recursive: true });
    writeFileSync(jsonPath, JSON.stringify(report, null, 2));
    console.log(`# wrote ${jsonPath}`);
  }
}
