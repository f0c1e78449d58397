/**
 * Vitest file order: longest first (from test/durations.json, seconds per file measured by a clean-clone
 * `.ci/run` on a 2-core machine), so CI's two workers end together. Without it vitest orders a clean
 * clone by file size, and the longest suite (test/engine/engine.test.ts, a 13-line file of case imports)
 * ran last, alone, for ~4 minutes. Files missing from the table count as 10 s.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const seconds = JSON.parse(readFileSync(new URL('./durations.json', import.meta.url), 'utf8')) as Record<string, number>;
const root = new URL('..', import.meta.url).pathname;

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const weight = (f: TestSpecification) => seconds[relative(root, f.moduleId)] ?? 10;
    return [...files].sort((a, b) => weight(b) - weight(a));
  }
}
