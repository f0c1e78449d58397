/** `sieve chat` as a user runs it: Ctrl-C (SIGINT) stops the reply, not the program; the next turn still works. */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FIXTURES } from '../helpers/gpu.ts';

const BIN = fileURLToPath(new URL('../../bin/sieve.mjs', import.meta.url));

describe('sieve chat', () => {
  it('SIGINT during a reply aborts that reply; the conversation goes on', async () => {
    const p = spawn(process.execPath, [BIN, 'chat', '--model', `${FIXTURES}stories260k`, '--max-tokens', '200', '--temperature', '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
    const until = async (cond: () => boolean, what: string, ms = 120_000) => {
      const t0 = Date.now();
      while (!cond()) {
        if (Date.now() - t0 > ms) { p.kill('SIGKILL'); throw new Error(`timed out waiting for ${what}; stdout ${out} stderr ${err}`); }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await until(() => err.includes('Ctrl-C stops a reply'), 'the model to load');
      p.stdin.write('Lily\n');
      await until(() => out.length > 0, 'the first reply to start');
      p.kill('SIGINT');
      await until(() => /\[abort\] \d+ tokens/.test(err), 'the reply to stop');
      const firstTokens = Number(/\[abort\] (\d+) tokens/.exec(err)![1]);
      expect(firstTokens).toBeLessThan(200);
      // the second turn runs (reusing the cached first prompt), and can be stopped the same way
      const before = out.length;
      p.stdin.write('Tom had a red car\n');
      await until(() => out.length > before, 'the second reply to start');
      p.kill('SIGINT');
      await until(() => (err.match(/\[abort\]/g) ?? []).length === 2, 'the second reply to stop');
      const stats = [...err.matchAll(/\[abort\] \d+ tokens; prompt \d+ \((\d+) cached\)/g)];
      const cached = Number(stats[1][1]);
      expect(cached).toBeGreaterThan(0);
      p.stdin.end();
      expect(await exited).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
});
