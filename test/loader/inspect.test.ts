import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { FIXTURES } from '../helpers/gpu.ts';

const BIN = new URL('../../bin/sieve.mjs', import.meta.url).pathname;
const sieve = (...args: string[]) => spawnSync(process.execPath, [BIN, 'inspect', ...args, '--no-gpu'], { encoding: 'utf8' });

describe('sieve inspect', () => {
  it('prints the spec, tensors and memory plan as JSON', () => {
    const r = sieve('--model', `${FIXTURES}golden/chatglm2-tiny`, '--context', '1024', '--weights', 'q8', '--json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.spec).toMatchObject({ family: 'chatglm2', dim: 128, nKvHeads: 2 });
    expect(out.tensors).toBe(18);
    expect(out.dtypes).toEqual({ F16: 18 });
    expect(out.plan).toMatchObject({ format: 'q8', contextLength: 1024, kvCacheBytes: 1024 * 2 * 2 * 2 * 32 * 2 });
  });
  it('a broken checkpoint: exit 1, one line naming the file and the fault, no stack', () => {
    const dir = mkdtempSync(`${tmpdir()}/sieve-broken-`);
    try {
      writeFileSync(`${dir}/config.json`, readFileSync(`${FIXTURES}stories260k/config.json`));
      const f = readFileSync(`${FIXTURES}stories260k/model.safetensors`);
      writeFileSync(`${dir}/model.safetensors`, f.subarray(0, 500_000));
      const r = sieve('--model', dir);
      expect(r.status).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('sieve:'));
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(/^sieve: ModelFormatError: model\.safetensors: tensor '.*': data_offsets .* out of range/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
  it('a bad option exits 2', () => {
    const r = sieve('--model', `${FIXTURES}stories260k`, '--weights', 'q3');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid option 'weights'/);
  });
});
