// The GPU conformance command's Chromium runner (bench/conformance-chromium.ts; the checks of bench/conformance/core.ts,
// shared with the Node command bench/conformance.ts) on SwiftShader: it builds its page, serves it with the fixtures,
// drives its own Chromium, and `--kernels f32 --quick` passes with the f32 rows in the table and the JSON; a tier
// named on the command line that the browser's device lacks (tensor: no shader-f16 on SwiftShader) fails, by name.
// (Every tier and the structured 7B-shape model run on a GPU: the commands are in bench/conformance-chromium.ts.)
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';

const FIXTURES = process.env.SIEVE_FIXTURES ?? '../shared/fixtures';

function runner(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      'node',
      ['--import', 'tsx', '--import', './src/cli/raw-register.mjs', 'bench/conformance-chromium.ts', '--fixtures', FIXTURES, ...args],
      { encoding: 'utf8', timeout: 120_000 },
      (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? -1) : 0, out, err }),
    );
  });
}

test('conformance in Chromium: --kernels f32 --quick passes with the f32 rows; --kernels tensor fails naming shader-f16', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sieve-conformance-chromium-'));
  try {
    const json = join(dir, 'c.json');
    const [f32, tensor] = await Promise.all([runner('--kernels', 'f32', '--quick', '--json', json), runner('--kernels', 'tensor', '--quick')]);
    console.log(f32.out);
    expect(f32.err).not.toMatch(/failure|\[page\]/);
    expect(f32.code).toBe(0);
    expect(f32.out).toMatch(/^# conformance on .*\(browser\)/m);
    expect(f32.out).toMatch(/^f32 +golden logits: max \|d\| \/ max \|logit\| +internlm2-tiny long \(160\) f32\/f32 +\S+ +<= 1\.00e-2 +ok$/m);
    expect(f32.out).toMatch(/^f32 +linear f32 +1x128x64 +\S+ +<= 1\.00e-5 +ok$/m);
    expect(f32.out).toMatch(/^\* +structured model +- +skipped \(--quick\)/m);
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      bench: string;
      runner: string;
      adapter: { backend: string };
      results: { tier: string; check?: string; value?: number; bar?: number; ok?: boolean }[];
    };
    expect([report.bench, report.runner, report.adapter.backend]).toEqual(['conformance', 'chromium', 'browser']);
    const checks = report.results.filter((r) => r.check);
    expect(checks.length).toBeGreaterThanOrEqual(3);
    expect(checks.every((r) => r.tier === 'f32' && r.ok)).toBe(true);
    const golden = checks.find((r) => r.check!.startsWith('golden logits'))!;
    expect(golden.value).toBeLessThan(golden.bar!);
    expect(checks.filter((r) => r.check!.startsWith('linear f32')).length).toBe(2);
    // a tier named on the command line that the device lacks fails, by name
    expect(tensor.code).toBe(1);
    expect(tensor.out).toMatch(/^tensor +\* +- +unsupported: no shader-f16 +- +FAIL$/m);
    expect(tensor.err).toMatch(/conformance \(chromium\): 1 failure\(s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
