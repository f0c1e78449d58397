/**
 * The GPU conformance command (bench/conformance.ts, issue 17) on SwiftShader: `--kernels f32 --quick`
 * runs the f32 tier's engine check (golden logits of internlm2-tiny) and kernel cases, writes its JSON
 * and exits 0; a tier the device lacks, named in --kernels, is a failure (exit 1) saying what is missing.
 * (The full command, every tier and the structured 7B-shape model, runs on a GPU.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function bench(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--import', './src/cli/raw-register.mjs', 'bench/conformance.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => void (out += d));
    p.stderr.on('data', (d) => void (err += d));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('bench/conformance.ts on SwiftShader', () => {
  it('--kernels f32 --quick passes: golden logits and kernel cases within their bars, a table and JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sieve-conformance-'));
    try {
      const json = join(dir, 'c.json');
      const [f32, tensor] = await Promise.all([bench('--kernels', 'f32', '--quick', '--json', json), bench('--kernels', 'tensor', '--quick')]);
      expect(f32.err).not.toMatch(/failure/);
      expect(f32.code).toBe(0);
      const report = JSON.parse(readFileSync(json, 'utf8')) as { results: { tier: string; check?: string; value?: number; bar?: number; ok?: boolean }[] };
      const checks = report.results.filter((r) => r.check);
      expect(checks.length).toBeGreaterThanOrEqual(3);
      expect(checks.every((r) => r.tier === 'f32' && r.ok)).toBe(true);
      const golden = checks.find((r) => r.check!.startsWith('golden logits'))!;
      expect(golden.value).toBeLessThan(golden.bar!);
      expect(checks.filter((r) => r.check!.startsWith('linear f32')).length).toBe(2);
      expect(f32.out).toMatch(/^f32 +golden logits/m);
      // a tier named on the command line that the device lacks fails, by name
      expect(tensor.code).toBe(1);
      expect(tensor.out).toMatch(/^tensor +\* +- +unsupported: no shader-f16 +- +FAIL$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
