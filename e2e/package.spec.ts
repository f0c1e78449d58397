// The package as a user installs it: `npm pack` (which builds dist/), the tarball installed into a
// scratch project outside the repository, then the three ways of using it, each checked on
// stories260k's greedy text in Chromium:
// - a Vite app importing `sieve-llm` (loadModelInWorker) and `sieve-llm/component` (<sieve-chat>), built;
// - a plain HTML page with the single-file component in a <script type="module"> tag;
// - a TypeScript consumer file, typechecked against the shipped .d.ts (strict, no skipLibCheck);
// - `npx sieve-llm info` from the installed package (no tsx, no sources: dist/cli.js).
// The tarball's dependencies come through npm's cache (`--prefer-offline`; `npm ci` filled it).
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { STORIES, tomGolden, watchConsole } from './component-helpers.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PROMPT = 'Tom had a red car';
const MAX_TOKENS = 12;

let scratch = '';
let app = '';
let server: Server;
let base = '';
const timings: Record<string, number> = {};

function timed<T>(name: string, f: () => T): T {
  const t0 = performance.now();
  try {
    return f();
  } finally {
    timings[name] = Math.round(performance.now() - t0);
  }
}

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

/**
 * Static files with HTTP Range (the runtime reads checkpoints by ranges): /models/stories260k/ from the
 * fixture, /node_modules/ from the app's, the rest from its build (dist/).
 */
function serve(appDir: string): Promise<string> {
  const mounts: [string, string][] = [
    ['/models/stories260k/', STORIES],
    ['/node_modules/', join(appDir, 'node_modules')],
    ['/', join(appDir, 'dist')],
  ];
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const [prefix, dir] = mounts.find(([p]) => path.startsWith(p))!;
    const file = join(dir, normalize(`/${path.slice(prefix.length) || 'index.html'}`));
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const size = statSync(file).size;
    const headers = { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'accept-ranges': 'bytes' };
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = Math.min(m[2] ? Number(m[2]) : size - 1, size - 1);
      res.writeHead(206, { ...headers, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}` });
      createReadStream(file, { start, end }).pipe(res);
    } else {
      res.writeHead(200, { ...headers, 'content-length': size });
      createReadStream(file).pipe(res);
    }
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
}

const MAIN_TS = `
import { loadModelInWorker, SieveError, type GenerateChunk, type LoadOptions } from 'sieve-llm';
import 'sieve-llm/component';
import type { ReplyResult } from 'sieve-llm/component';

const url = new URL('/models/stories260k/', location.href).href;
const options: LoadOptions = { contextLength: 256 };

async function viaApi(): Promise<{ text: string; finishReason?: string }> {
  const engine = await loadModelInWorker(url, options);
  let text = '';
  let last: GenerateChunk | undefined;
  for await (const c of engine.generate(${JSON.stringify(PROMPT)}, { maxTokens: ${MAX_TOKENS}, temperature: 0 })) { text += c.text; last = c; }
  await engine.unload();
  return { text, finishReason: last?.finishReason };
}

async function viaComponent(): Promise<ReplyResult> {
  const el = document.createElement('sieve-chat'); // typed SieveChatElement through HTMLElementTagNameMap
  el.setAttribute('temperature', '0');
  el.setAttribute('max-tokens', '${MAX_TOKENS}');
  el.setAttribute('context-length', '256');
  const ready = new Promise((r) => el.addEventListener('ready', r, { once: true }));
  el.setAttribute('model', url);
  document.body.append(el);
  await ready;
  return el.send(${JSON.stringify(PROMPT)});
}

const w = window as unknown as { __result?: unknown; __error?: string };
try {
  w.__result = { api: await viaApi(), component: await viaComponent() };
} catch (e) {
  w.__error = e instanceof SieveError ? \`\${e.code}: \${e.message}\` : String(e);
}
`;

// Types that must be right, not \`any\`: each @ts-expect-error fails the typecheck if its line compiles.
const TYPES_TS = `
import { loadModel, InvalidOptionError, type LoadOptions, type SieveEngine } from 'sieve-llm';
import { SieveChatElement } from 'sieve-llm/component';

export async function first(url: string): Promise<string> {
  const engine: SieveEngine = await loadModel(url, { weights: 'q4', contextLength: 1024 });
  const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
  return r.choices[0].message.content ?? '';
}
export const el: SieveChatElement = document.createElement('sieve-chat');
export const code: string = new InvalidOptionError('x', 'y').code;
// @ts-expect-error 'q5' is not a weight format
export const bad: LoadOptions = { weights: 'q5' };
// @ts-expect-error generate() takes options, not a number
export const wrong = (e: SieveEngine) => e.generate('x', 3);
`;

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(240_000);
  scratch = mkdtempSync(join(tmpdir(), 'sieve-pack-'));
  app = join(scratch, 'app');
  // dist/ built from the sources under test (what `prepack` runs; its output shown only if it fails)
  timed('npm run build', () => execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'pipe' }));
  const packed = timed('npm pack', () =>
    JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    ),
  );
  const tarball = join(scratch, packed[0].filename);
  const shipped: string[] = packed[0].files.map((f: { path: string }) => f.path);
  expect(shipped).toEqual(
    expect.arrayContaining([
      'dist/index.js',
      'dist/component.js',
      'dist/worker.js',
      'dist/sieve-chat.js',
      'dist/cli.js',
      'dist/types/src/index.d.ts',
      'bin/sieve.mjs',
      'package.json',
      'README.md',
    ]),
  );
  expect(shipped.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);

  mkdirSync(join(app, 'src'), { recursive: true });
  mkdirSync(join(app, 'public'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'sieve-consumer', private: true, type: 'module' }));
  timed('npm install', () =>
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', tarball], {
      cwd: app,
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );

  writeFileSync(
    join(app, 'index.html'),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>app</title><script type="module" src="/src/main.ts"></script>',
  );
  writeFileSync(join(app, 'src', 'main.ts'), MAIN_TS);
  writeFileSync(join(app, 'src', 'types.ts'), TYPES_TS);
  writeFileSync(
    join(app, 'public', 'single.html'),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>single file</title>
<sieve-chat id="chat" model="/models/stories260k/" temperature="0" max-tokens="${MAX_TOKENS}" context-length="256"></sieve-chat>
<script type="module" src="/node_modules/sieve-llm/dist/sieve-chat.js"></script>
<script type="module">
  const el = document.getElementById('chat');
  const go = async () => { window.__result = await el.send(${JSON.stringify(PROMPT)}); };
  if (el.hasAttribute('ready')) go(); else el.addEventListener('ready', go, { once: true });
</script>`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      include: ['src'],
    }),
  );
  // the repository's Vite builds the app; `sieve-llm` resolves from the app's node_modules
  const { build } = await import('vite');
  const t0 = performance.now();
  await build({ root: app, configFile: false, logLevel: 'error', worker: { format: 'es' }, build: { outDir: 'dist', target: 'es2022' } });
  timings['vite build (app)'] = Math.round(performance.now() - t0);
  base = await serve(app);
});

test.afterAll(async () => {
  server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  console.log(`package test timings (ms): ${JSON.stringify(timings)}`);
});

test('the built browser entry points import no Node module and not Dawn', () => {
  const dist = join(app, 'node_modules', 'sieve-llm', 'dist');
  const files = (readdirSync(dist, { recursive: true }) as string[]).filter((f) => f.endsWith('.js') && f !== 'cli.js' && !f.startsWith('chunks/cli-'));
  expect(files).toEqual(expect.arrayContaining(['index.js', 'component.js', 'worker.js', 'sieve-chat.js']));
  for (const f of files) {
    const src = readFileSync(join(dist, f), 'utf8');
    expect(src, f).not.toMatch(/\bimport\s*\(\s*(\/\*.*?\*\/\s*)?['"`](node:|webgpu['"`])/s);
    expect(src, f).not.toMatch(/\b(from|import)\s*['"](node:[\w/]+|webgpu)['"]/);
  }
});

test('a TypeScript consumer typechecks against the shipped declarations', () => {
  const r = timed('tsc', () => spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app], { encoding: 'utf8' }));
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
});

test('`npx sieve-llm info` runs from the installed package', () => {
  const r = timed('npx sieve-llm info', () => spawnSync('npx', ['--no-install', 'sieve-llm', 'info', '--json'], { cwd: app, encoding: 'utf8' }));
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const info = JSON.parse(r.stdout);
  expect(info.adapter.backend).toBe('dawn-node');
  const version = spawnSync('npx', ['--no-install', 'sieve-llm', '--version'], { cwd: app, encoding: 'utf8' });
  expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

test('a Vite app built on `sieve-llm` and `sieve-llm/component` chats with stories260k', async ({ page }) => {
  const errors = watchConsole(page);
  const t0 = performance.now();
  await page.goto(`${base}/`);
  await page.waitForFunction(
    () => {
      const w = window as unknown as { __result?: unknown; __error?: string };
      return w.__result || w.__error;
    },
    null,
    { timeout: 180_000 },
  );
  timings['vite app in Chromium'] = Math.round(performance.now() - t0);
  type Reply = { text: string; finishReason: string; error?: unknown };
  const { r, err } = await page.evaluate(() => {
    const w = window as unknown as { __result?: { api: Reply; component: Reply }; __error?: string };
    return { r: w.__result, err: w.__error };
  });
  expect(err).toBeUndefined();
  const golden = tomGolden();
  for (const [name, reply] of Object.entries(r!)) {
    expect(reply.finishReason, name).toBe('length');
    expect(reply.text.length, name).toBeGreaterThan(0);
    expect(golden.prompt + reply.text, name).toBe(golden.text.slice(0, golden.prompt.length + reply.text.length));
  }
  expect(errors).toEqual([]);
});

test('a plain HTML page with the single-file component chats with stories260k', async ({ page }) => {
  const errors = watchConsole(page);
  const t0 = performance.now();
  await page.goto(`${base}/single.html`);
  await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result, null, { timeout: 180_000 });
  timings['single-file page in Chromium'] = Math.round(performance.now() - t0);
  const reply = await page.evaluate(() => (window as unknown as { __result: { text: string; finishReason: string; error?: unknown } }).__result);
  expect(reply.error).toBeUndefined();
  expect(reply.finishReason).toBe('length');
  const golden = tomGolden();
  expect(reply.text.length).toBeGreaterThan(0);
  expect(golden.prompt + reply.text).toBe(golden.text.slice(0, golden.prompt.length + reply.text.length));
  expect(errors).toEqual([]);
});
