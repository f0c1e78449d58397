/**
 * The CLI as a user meets it (spawned, as `sieve`): help for every command with every option and its
 * default, at most 100 columns; the same option names and defaults across commands; unknown commands and
 * options named; --version; and no driver noise on stdout or stderr unless --verbose.
 */
import { describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';
import { COMMON_OPTIONS, MODEL_OPTIONS, SAMPLING_OPTIONS } from '../../src/cli/options.ts';
import { chat } from '../../src/cli/commands/chat.ts';
import { generate } from '../../src/cli/commands/generate.ts';
import { serve } from '../../src/cli/commands/serve.ts';
import { info } from '../../src/cli/commands/info.ts';
import { inspect } from '../../src/cli/commands/inspect.ts';
import { tokenize } from '../../src/cli/commands/tokenize.ts';
import { logits } from '../../src/cli/commands/logits.ts';
import { attention } from '../../src/cli/commands/attention.ts';

const BIN = fileURLToPath(new URL('../../bin/sieve.mjs', import.meta.url));
const VERSION = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
const COMMANDS = [info, inspect, tokenize, logits, generate, attention, chat, serve];

function sieve(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** main() with console.log/error captured. */
async function inProcess(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  });
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  });
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

describe('sieve CLI', () => {
  it('top-level help lists every command within 100 columns; --version prints the version', async () => {
    const [help, dash, version, short] = await Promise.all([sieve('--help'), sieve(), sieve('--version'), sieve('-v')]);
    expect(help.code).toBe(0);
    expect(help.err).toBe('');
    expect(widest(help.out)).toBeLessThanOrEqual(100);
    for (const c of COMMANDS) expect(help.out).toMatch(new RegExp(`^  ${c.name} +\\S`, 'm'));
    expect(dash.out).toBe(help.out);
    expect(version).toMatchObject({ code: 0, out: `${VERSION}\n`, err: '' });
    expect(short.out).toBe(`${VERSION}\n`);
  });

  it('every command has --help with every option and its default, within 100 columns', async () => {
    // one spawned, the rest through main() in this process (the same code path, without a Node start each)
    const spawned = await sieve('generate', '--help');
    const helps: { code: number; out: string; err: string }[] = [];
    for (const c of COMMANDS) helps.push(await inProcess(c.name, '--help'));
    expect(spawned).toMatchObject({ code: 0, out: helps[COMMANDS.indexOf(generate)].out, err: '' });
    COMMANDS.forEach((c, i) => {
      const { code, out, err } = helps[i];
      expect(code, c.name).toBe(0);
      expect(err, c.name).toBe('');
      expect(widest(out), c.name).toBeLessThanOrEqual(100);
      expect(out.startsWith(`usage: sieve ${c.name}`), c.name).toBe(true);
      const flat = out.replace(/\s+/g, ' ');
      const options = { ...c.options, ...COMMON_OPTIONS };
      for (const [name, s] of Object.entries(options)) {
        expect(flat, `${c.name} --${name}`).toContain(`--${name}${s.type === 'string' ? ` ${s.value}` : ''} `);
        if (s.default !== undefined) expect(flat, `${c.name} --${name}`).toContain(`(default: ${s.default})`);
      }
      const defaults = Object.values(options).filter((s) => s.default !== undefined).length;
      expect((flat.match(/\(default: /g) ?? []).length, c.name).toBe(defaults);
    });
  });

  it('the commands that load a model or sample share the same options, values and defaults', () => {
    for (const c of [chat, generate, serve]) {
      for (const [name, s] of Object.entries(MODEL_OPTIONS)) expect(c.options[name], `${c.name} --${name}`).toEqual(s);
    }
    for (const c of [chat, generate]) {
      for (const [name, s] of Object.entries(SAMPLING_OPTIONS)) expect(c.options[name], `${c.name} --${name}`).toEqual(s);
    }
    // logits keeps exact defaults (f32, dense) but takes the same names and weight formats
    for (const name of Object.keys(MODEL_OPTIONS)) expect(logits.options[name], `logits --${name}`).toBeDefined();
    for (const c of [logits, inspect, chat, generate, serve]) expect(c.options.weights.help, c.name).toMatch(/auto( \(f16[^)]*\))?, f32, f16, q8, q4$/);
    expect(SAMPLING_OPTIONS.temperature.default).toBe('0.7');
  });

  it('an unknown command, option or argument is named, with exit code 2', async () => {
    const [cmd, opt, topOpt, stray, noValue, bad] = await Promise.all([
      sieve('bogus'),
      sieve('generate', '--bogus', '1'),
      sieve('--bogus'),
      sieve('info', 'stray'),
      sieve('chat', '--model'),
      sieve('generate', '--model', 'x', '--temperature', 'hot'),
    ]);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toMatch(/^sieve: unknown command 'bogus'/);
    expect(cmd.out).toBe('');
    expect(opt.code).toBe(2);
    expect(opt.err).toMatch(/^sieve generate: unknown option '--bogus'/);
    expect(topOpt.err).toMatch(/unknown option '--bogus'/);
    expect(stray.code).toBe(2);
    expect(stray.err).toMatch(/unexpected argument 'stray'/);
    expect(noValue.code).toBe(2);
    expect(noValue.err).toMatch(/option '--model' needs a value/);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/invalid option '--temperature': expected a number in \[0, 100\], got 'hot'/);
  });

  it('`sieve info` prints the adapter and nothing else: no driver noise on stdout or stderr', async () => {
    const r = await sieve('info');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^adapter\s/);
    expect(r.out).not.toMatch(/XDG_RUNTIME_DIR|Warning:|Loader Message/);
  });
});
