/**
 * `sieve chat` as a user runs it: Ctrl-C (SIGINT) stops the reply, not the program, and `[stopped]`
 * follows the reply's last token; the next turn still works; Ctrl-C at the prompt quits cleanly.
 * stdout and stderr share one pipe (as in a terminal), so the output keeps the order of its writes.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FIXTURES } from '../helpers/gpu.ts';

const BIN = fileURLToPath(new URL('../../bin/sieve.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STATS = /\[(abort|stop|length)\] (\d+) tokens; prompt \d+ \((\d+) cached\)[^\n]*\n/g;

describe('sieve chat', () => {
  it(
    'SIGINT during a reply ends it with [stopped] after its last token; the conversation goes on; SIGINT at the prompt quits',
    { timeout: 240_000 },
    async () => {
      const args = [BIN, 'chat', '--model', `${FIXTURES}stories260k`, '--max-tokens', '200', '--temperature', '0'];
      // `exec`: the shell becomes node, so signals reach the CLI itself
      const p = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
      const until = async (cond: () => boolean, what: string, ms = 120_000) => {
        const t0 = Date.now();
        while (!cond()) {
          if (Date.now() - t0 > ms) {
            p.kill('SIGKILL');
            throw new Error(`timed out waiting for ${what}; output ${out}`);
          }
          await sleep(50);
        }
      };
      const turns = () => [...out.matchAll(STATS)];
      try {
        await until(() => out.includes('Ctrl-C stops a reply'), 'the model to load');
        const loaded = out.length;
        p.stdin.write('Lily\n');
        await until(() => out.length > loaded, 'the first reply to start');
        p.kill('SIGINT');
        await until(() => turns().length === 1, 'the reply to stop');
        const first = turns()[0];
        expect(first[1]).toBe('abort');
        expect(Number(first[2])).toBeLessThan(200);
        // the marker comes after the reply's last token, right before the stats line; then nothing
        expect(out.slice(loaded, first.index)).toMatch(/ [[]stopped[\]]\n$/);
        await sleep(300);
        expect(out.length).toBe(first.index! + first[0].length);

        // the second turn runs (reusing the cached first prompt), and can be stopped the same way
        const before = out.length;
        p.stdin.write('Tom had a red car\n');
        await until(() => out.length > before, 'the second reply to start');
        p.kill('SIGINT');
        await until(() => turns().length === 2, 'the second reply to stop');
        const second = turns()[1];
        expect(second[1]).toBe('abort');
        expect(Number(second[3])).toBeGreaterThan(0);
        expect(out.slice(before, second.index)).toMatch(/ [[]stopped[\]]\n$/);

        // Ctrl-C at the prompt: a clean exit, nothing more printed
        const end = out.length;
        p.kill('SIGINT');
        expect(await exited).toBe(0);
        expect(out.slice(end)).toBe('');
        expect(out).not.toMatch(/XDG_RUNTIME_DIR|Warning:/);
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    },
  );
});
