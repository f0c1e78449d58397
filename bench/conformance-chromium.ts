/**
 * The GPU conformance command (issue 17) in Chromium: the checks of bench/conformance/core.ts (the same as
 * bench/conformance.ts runs under Node + Dawn: kernels of each tier vs CPU references, the engine end to end
 * vs the f32 tier, lateCompiles 0) run in a page, on the browser's WebGPU. This runner serves the page
 * (bench/conformance/page.html, built by Vite), the fixtures folder (/fixtures/) and the structured synthetic
 * model (/synthetic/NAME/: bench/ttft/synthetic.ts's virtual folder, its bytes made by worker threads here, as
 * in the TTFT harness) on 127.0.0.1, drives Chromium through playwright-core, and prints the same table and
 * JSON as the Node command (the JSON adds runner 'chromium' and the browser; the adapter's backend is 'browser').
 * Exits 1 on any failure (a tier named in --kernels that the browser's device lacks is one).
 *
 *   npm run bench -- bench/conformance-chromium.ts [--kernels all|auto|f32,f16,tensor] [--quick] [--json FILE]
 *     [--fixtures DIR] [--shape internlm2-7b] [--lengths 8192,32768] [--weights q4] [--synth-workers N]
 *     [--page-dir DIR] [--timeout-s S]
 * From the .ts sources it builds the page itself (Vite, into a temporary folder); bundled, it serves
 * --page-dir (default .gpu/conformance-page, written by gpu:bundle). Browser: $CHROMIUM or /usr/bin/chromium, flags
 * $CHROMIUM_GPU_ARGS or SwiftShader's (playwright.config.ts), plus --enable-unsafe-webgpu and Dawn's
 * vulkan_enable_f16_on_nvidia toggle (the tensor tier's shader-f16 on NVIDIA) where missing (bench/ttft/serve.ts).
 * On SwiftShader the structured model is internlm2-tiny at 256 tokens, as in Node.
 *
 * GPU machine (../shared/gpu/README.md, "A real browser"), after `../shared/gpu/pack.sh && ../shared/gpu/pack-browser.sh`,
 * fixtures copied to .gpu/fixtures (`mkdir -p .gpu/fixtures && cp -r ../shared/fixtures/golden ../shared/fixtures/stories260k .gpu/fixtures/`) and
 *   npm run gpu:bundle -- bench/conformance-chromium.ts bench/conformance/page.html
 * (writes .gpu/conformance-chromium.mjs and .gpu/conformance-page/), two device calls:
 *   1. carry [".gpu-browser-1"]:
 *      mkdir -p /opt/chromium && xz -T8 -dc .gpu-browser-1/hs.xz > /opt/chromium/chromium-headless-shell && chmod +x /opt/chromium/chromium-headless-shell
 *   2. at once, carry [".gpu", ".gpu-browser-2"]:
 *      source .gpu-browser-2/setup-browser.sh && node .gpu/conformance-chromium.mjs --fixtures .gpu/fixtures --json $OUT/conformance-chromium.json
 */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { benchArgs, finish } from './common.ts';
import type { ConformanceOptions, ConformanceResult } from './conformance/core.ts';
import type {} from './conformance/page.ts'; // window.sieveConformance (page.evaluate)
import { chromiumArgs, notFound, serveFile, serveVirtual } from './ttft/serve.ts';
import { serveSynthWorker, synthWorkerUrl } from './ttft/report.ts';
import { prepareSynthetic, type VirtualFolder } from './ttft/synthetic.ts';

/** The project root: one folder up from this source (bench/) and from its bundle (.gpu/conformance-chromium.mjs). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FROM_SOURCE = import.meta.url.endsWith('.ts');

function inside(base: string, rel: string): string | undefined {
  const p = normalize(join(base, rel));
  return p === base || p.startsWith(base + sep) ? p : undefined;
}

/** Serves / -> the built page, /assets/... -> its scripts, /fixtures/... -> the fixtures, /synthetic/NAME/... -> the structured model. */
function startServer(pageDir: string, fixtures: string, synthetic: () => VirtualFolder | undefined): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const v = synthetic();
    if (v && path.startsWith(`/synthetic/${v.name}/`)) return void serveVirtual(req, res, v, path.slice(`/synthetic/${v.name}/`.length));
    if (path.startsWith('/synthetic/')) return notFound(res);
    const file =
      path === '/'
        ? join(pageDir, 'page.html')
        : path.startsWith('/fixtures/')
          ? inside(fixtures, path.slice('/fixtures/'.length))
          : inside(pageDir, path.slice(1));
    if (!file) {
      res.writeHead(403);
      res.end();
      return;
    }
    serveFile(req, res, file);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, port: (server.address() as { port: number }).port })));
}

/** The built page: --page-dir, else built now from the sources (Vite, scripts/build-page.mjs), else .gpu/conformance-page. */
async function pageDir(given: string | undefined): Promise<{ dir: string; temporary: boolean }> {
  if (given) return { dir: resolve(given), temporary: false };
  if (FROM_SOURCE) {
    const dir = mkdtempSync(join(tmpdir(), 'sieve-conformance-page-'));
    // (not a literal import: a bundle of this runner must not carry Vite)
    const builder = pathToFileURL(join(ROOT, 'scripts', 'build-page.mjs')).href;
    const { buildPage } = (await import(builder)) as { buildPage(html: string, out: string): Promise<string> };
    await buildPage(join(ROOT, 'bench/conformance/page.html'), dir);
    return { dir, temporary: true };
  }
  return { dir: join(ROOT, '.gpu/conformance-page'), temporary: false };
}

async function main(): Promise<number> {
  const args = benchArgs({
    kernels: { type: 'string', default: 'all' },
    quick: { type: 'boolean' },
    fixtures: { type: 'string' },
    shape: { type: 'string' },
    lengths: { type: 'string' },
    weights: { type: 'string' },
    'synth-workers': { type: 'string' },
    'page-dir': { type: 'string' },
    'timeout-s': { type: 'string', default: '3600' },
  });
  const fixtures = resolve(String(args.fixtures ?? join(ROOT, '../shared/fixtures')));
  if (!existsSync(join(fixtures, 'stories260k'))) throw new Error(`${fixtures}: no stories260k: not the fixtures folder (pass --fixtures DIR)`);
  const page = await pageDir(args['page-dir'] as string | undefined);
  if (!existsSync(join(page.dir, 'page.html')))
    throw new Error(`${page.dir}/page.html is missing: build it with \`npm run gpu:bundle -- bench/conformance/page.html\` (or pass --page-dir DIR)`);
  const workers = Number(args['synth-workers'] ?? Math.max(1, availableParallelism() - 1));
  let synthetic: VirtualFolder | undefined;
  const { server, port } = await startServer(page.dir, fixtures, () => synthetic);
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const browser = await chromium.launch({ executablePath, args: chromiumArgs() });
  let result: ConformanceResult;
  try {
    const p = await browser.newPage();
    p.on('console', (m) => {
      // (a 404 is the loader probing for an optional file of a model folder)
      if (m.type() === 'error' && !/^Failed to load resource: .* 404 /.test(m.text())) console.error(`[page] ${m.text()}`);
      else if (process.env.SIEVE_CONFORMANCE_TIMES && m.text().startsWith('# ')) console.error(m.text());
    });
    p.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    // The structured model, asked for by the page: synthesized here ('on': every chunk by worker threads before the
    // load; on a software adapter the tiny shape, made on request), kept until the page lets it go.
    await p.exposeFunction('sieveSynthetic', async (shape: string, o: { dtype: 'BF16'; seed: number; contextLength: number }, software: boolean) => {
      await synthetic?.close();
      synthetic = await prepareSynthetic(shape, { dtype: o.dtype, seed: o.seed }, o.contextLength, {
        mode: software ? 'off' : 'on',
        workers,
        workerUrl: synthWorkerUrl(),
      });
      await synthetic.ready;
      return `/synthetic/${synthetic.name}/`;
    });
    await p.exposeFunction('sieveSyntheticClose', async () => {
      await synthetic?.close();
      synthetic = undefined;
    });
    await p.goto(`http://127.0.0.1:${port}/`);
    await p.waitForFunction(() => typeof window.sieveConformance === 'function', undefined, { timeout: 60_000 });
    const o: ConformanceOptions = {
      kernels: String(args.kernels),
      quick: !!args.quick,
      shape: args.shape as string | undefined,
      lengths: args.lengths as string | undefined,
      weights: args.weights as string | undefined,
    };
    const timeoutMs = Number(args['timeout-s']) * 1000;
    result = await Promise.race([
      p.evaluate((o) => window.sieveConformance(o), o),
      new Promise<never>((_, no) => setTimeout(() => no(new Error(`the page ran past --timeout-s ${args['timeout-s']}`)), timeoutMs).unref()),
    ]);
  } finally {
    await browser.close();
    server.close();
    await synthetic?.close();
    if (page.temporary) rmSync(page.dir, { recursive: true, force: true });
  }
  finish({ ...result.report, runner: 'chromium', browser: executablePath } as ConformanceResult['report'], args.json);
  if (result.failures > 0) console.error(`conformance (chromium): ${result.failures} failure(s)`);
  return result.failures > 0 ? 1 : 0;
}

if (!serveSynthWorker()) {
  main().then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`conformance (chromium): ${e.message}`);
      process.exit(1);
    },
  );
}
