/**
 * TTFT harness, Chromium runner (bench/ttft/node.ts is the Node + Dawn one; both share the measurement
 * loop, the table and the JSON of bench/ttft/report.ts): drives the <sieve-chat> component in
 * Chromium through Playwright and measures time to first token for prompts of given lengths, dense vs
 * sample attention. Needs node, playwright-core and a Chromium only: it serves the built component
 * (dist/sieve-chat.js from `npm run build`), its page (bench/ttft/page.html) and a model folder from
 * its own HTTP server on 127.0.0.1.
 *
 *   npm run ttft -- --lengths 512,1024,2048 --modes dense,sample [--model DIR|URL] [--out DIR]
 *
 * On the GPU machine (../shared/gpu/README.md, "A real browser"): `npm run gpu:bundle -- bench/ttft/chromium.ts`
 * writes .gpu/chromium.mjs (one file; playwright-core and Node built-ins stay imports), run there after
 * `source .gpu-browser-2/setup-browser.sh` as `node .gpu/chromium.mjs ...`; it finds dist/ and
 * bench/ttft/page.html one folder up.
 */
import { createServer, type Server } from 'node:http';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, normalize, resolve, sep } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import type {} from '../../src/component/index.ts'; // <sieve-chat> in HTMLElementTagNameMap (page.evaluate)
import {
  fmt,
  measure,
  printReport,
  serveSynthWorker,
  synthWorkerUrl,
  writeReport,
  type TtftMode,
  type TtftReport,
  type TtftRow,
  type TtftRun,
} from './report.ts';
import type { PresynthMode, VirtualFolder } from './synthetic.ts';
import { chromiumArgs, serveFile, serveVirtual } from './serve.ts';

const HELP = `Options: --lengths 512,1024,2048 --modes dense,sample --model DIR|URL (default: stories260k) --out DIR
(bench/results/ttft) --repeat N (3) --warmup N (1) --warmup-len N (warm-up prompts of N tokens instead of the
measured length: compiles nothing new, saves a second 128K prefill) --weights auto|f32|f16|q8|q4 --kernels auto|f32|f16|tensor (the kernel tier) --context N
(default: max length + 64, capped by the model) --min-sparse-len N (0: every prompt runs sparse in 'sample' mode)
--alpha A --window-ratio R --sample-ratio R --prefill-chunk N --app DIR (dist) --page FILE (bench/ttft/page.html)
--timeout-s S (1800).
--synthetic PRESET [--synthetic-opts JSON]: instead of --model, the structured synthetic model (bench/synthetic/:
internlm2-7b, internlm2-1.8b, chatglm2-6b, internlm2-tiny, chatglm2-tiny) synthesized on the fly by the server,
with structured prompts (bench/ttft/synthetic.ts). --presynth auto|on|ahead|off (auto) --synth-workers N
(cores - 1) --presynth-budget-gb G (2): where the synthetic bytes are made ('on': every shard by N worker threads
into memory before the load; 'ahead': the workers keep at most G GiB made ahead of the page's reads; 'off': on
each request in the server thread; 'auto': 'on' when the model takes under half the free memory).
--probe-fetch: before the load, the page reads the first --probe-gb 2 GB of the weight files by Range requests
(--probe-block-mb 2, --probe-inflight 2,4,8) without the GPU, to split the load time into HTTP and the rest.
The load time (page-measured ms, bytes, MB/s) is printed and in ttft.json (load), rewritten after every row.
Browser: $CHROMIUM or /usr/bin/chromium, flags from $CHROMIUM_GPU_ARGS or the SwiftShader flags of playwright.config.ts.`;

// The project root: two folders up from this source (bench/ttft/), one up from its bundle (.gpu/chromium.mjs).
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.ts') ? '../..' : '..');

interface Options {
  lengths: number[];
  modes: TtftMode[];
  model: string;
  out: string;
  repeat: number;
  warmup: number;
  warmupLen?: number;
  weights: string;
  kernels: string;
  context: number;
  prefillChunk?: number;
  minSparseLen: number;
  alpha?: number;
  windowRatio?: number;
  sampleRatio?: number;
  app: string;
  page: string;
  timeoutS: number;
  synthetic: string;
  syntheticOpts: Record<string, unknown>;
  presynth: PresynthMode;
  synthWorkers: number;
  presynthBudgetGb: number;
  probeFetch: boolean;
  probeBlockMb: number;
  probeInflight: number[];
  probeGb: number;
}

const STRING_OPTIONS = [
  'lengths',
  'modes',
  'model',
  'out',
  'repeat',
  'warmup',
  'warmup-len',
  'weights',
  'kernels',
  'context',
  'prefill-chunk',
  'min-sparse-len',
  'alpha',
  'window-ratio',
  'sample-ratio',
  'app',
  'page',
  'timeout-s',
  'synthetic',
  'synthetic-opts',
  'presynth',
  'synth-workers',
  'presynth-budget-gb',
  'probe-block-mb',
  'probe-inflight',
  'probe-gb',
] as const;

function options(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(STRING_OPTIONS.map((k) => [k, { type: 'string' as const }])),
      'probe-fetch': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }) as { values: Partial<Record<(typeof STRING_OPTIONS)[number], string>> & { 'probe-fetch'?: boolean; help?: boolean } };
  if (v.help) {
    console.log(HELP);
    process.exit(0);
  }
  const num = (k: (typeof STRING_OPTIONS)[number], dflt?: number): number | undefined => {
    if (v[k] === undefined) return dflt;
    const x = Number(v[k]);
    if (!Number.isFinite(x)) throw new Error(`--${k} must be a number, got '${v[k]}'`);
    return x;
  };
  const ints = (k: (typeof STRING_OPTIONS)[number], s: string, min: number) =>
    s.split(',').map((t) => {
      const x = Number(t);
      if (!Number.isInteger(x) || x < min) throw new Error(`--${k}: '${t}' is not an integer >= ${min}`);
      return x;
    });
  const modes = (v.modes ?? 'dense,sample').split(',');
  for (const m of modes) if (m !== 'dense' && m !== 'sample') throw new Error(`--modes: '${m}' is not dense or sample`);
  const presynth = (v.presynth ?? 'auto') as PresynthMode;
  if (!['auto', 'on', 'ahead', 'off'].includes(presynth)) throw new Error(`--presynth: '${presynth}' is not auto, on, ahead or off`);
  const synthWorkers = num('synth-workers', Math.max(1, availableParallelism() - 1))!;
  if (!Number.isInteger(synthWorkers) || synthWorkers < 0) throw new Error('--synth-workers: an integer >= 0');
  const o: Options = {
    lengths: ints('lengths', v.lengths ?? '512,1024,2048', 2),
    modes: modes as TtftMode[],
    model: v.model ?? '',
    out: resolve(v.out ?? join(ROOT, 'bench/results/ttft')),
    repeat: num('repeat', 3)!,
    warmup: num('warmup', 1)!,
    warmupLen: num('warmup-len'),
    weights: v.weights ?? 'auto',
    kernels: v.kernels ?? 'auto',
    context: num('context', 0)!,
    prefillChunk: num('prefill-chunk'),
    minSparseLen: num('min-sparse-len', 0)!,
    alpha: num('alpha'),
    windowRatio: num('window-ratio'),
    sampleRatio: num('sample-ratio'),
    app: resolve(v.app ?? join(ROOT, 'dist')),
    page: resolve(v.page ?? join(ROOT, 'bench/ttft/page.html')),
    timeoutS: num('timeout-s', 1800)!,
    synthetic: v.synthetic ?? '',
    syntheticOpts: v['synthetic-opts'] ? JSON.parse(v['synthetic-opts']) : {},
    presynth,
    synthWorkers,
    presynthBudgetGb: num('presynth-budget-gb', 2)!,
    probeFetch: v['probe-fetch'] === true,
    probeBlockMb: num('probe-block-mb', 2)!,
    probeInflight: ints('probe-inflight', v['probe-inflight'] ?? '2,4,8', 1),
    probeGb: num('probe-gb', 2)!,
  };
  if (!o.model && !o.synthetic) {
    o.model =
      [join(ROOT, 'demo/public/models/stories260k'), resolve(ROOT, '../shared/fixtures/stories260k')].find((d) => existsSync(join(d, 'config.json'))) ?? '';
    if (!o.model) throw new Error('no --model given and the default stories260k is missing (run scripts/setup.sh)');
  }
  return o;
}

/** Serves: / -> the page, /sieve-chat.js etc. -> the app dir, /models/NAME/* -> the model folder NAME (or the synthetic one). */
function startServer(s: { app: string; page: string; modelDir?: string; virtual?: VirtualFolder }): Promise<{ server: Server; port: number }> {
  const modelPrefix = `/models/${s.modelDir ? basename(s.modelDir) : s.virtual?.name}/`;
  const inside = (base: string, rel: string) => {
    const p = normalize(join(base, rel));
    return p === base || p.startsWith(base + sep) ? p : undefined;
  };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (s.virtual && path.startsWith(modelPrefix)) return void serveVirtual(req, res, s.virtual, path.slice(modelPrefix.length));
    let file: string | undefined;
    if (path === '/' || path === '/index.html') file = s.page;
    else if (path.startsWith(modelPrefix) && s.modelDir) file = inside(s.modelDir, path.slice(modelPrefix.length));
    else file = inside(s.app, path.slice(1));
    if (!file) {
      res.writeHead(403);
      res.end();
      return;
    }
    serveFile(req, res, file);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, port: (server.address() as { port: number }).port })));
}

function readConfig(modelDir: string | undefined): Record<string, unknown> {
  try {
    return modelDir ? JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) : {};
  } catch {
    return {};
  }
}

/**
 * --probe-fetch: the page reads the weight files (their first --probe-gb GB) by Range requests of --probe-block-mb with
 * each --probe-inflight count of requests in flight, keeping nothing and touching no GPU: the
 * HTTP (server + browser network) part of the load, MB/s per in-flight count.
 */
async function probeFetch(page: Page, modelUrl: string, virtual: VirtualFolder | undefined, modelDir: string | undefined, a: Options) {
  const files = virtual
    ? virtual.files.map((p) => ({ p, size: virtual.size(p)! }))
    : readdirSync(modelDir!)
        .filter((p) => p.endsWith('.safetensors'))
        .map((p) => ({ p, size: statSync(join(modelDir!, p)).size }));
  const out = [];
  for (const inflight of a.probeInflight) {
    const before = virtual && { ...virtual.stats };
    const r = await page.evaluate(
      async ({ base, files, block, inflight, maxBytes }) => {
        const t = performance.now();
        let bytes = 0;
        let left = maxBytes;
        for (const { p, size: fileSize } of files) {
          if (left <= 0) break;
          const size = Math.min(fileSize, left);
          left -= size;
          let next = 0;
          const lane = async () => {
            while (next < size) {
              const o = next;
              next = Math.min(size, o + block);
              const res = await fetch(new URL(p, base), { headers: { Range: `bytes=${o}-${next - 1}` } });
              const n = (await res.arrayBuffer()).byteLength; // not `bytes += await ...`: that reads bytes before the await
              bytes += n;
            }
          };
          await Promise.all(Array.from({ length: inflight }, lane));
        }
        return { ms: performance.now() - t, bytes };
      },
      { base: modelUrl, files, block: Math.round(a.probeBlockMb * 2 ** 20), inflight, maxBytes: a.probeGb * 1e9 },
    );
    const row = {
      inflight,
      blockMb: a.probeBlockMb,
      ms: r.ms,
      bytes: r.bytes,
      mbPerS: r.bytes / 1e3 / r.ms,
      serverSynthMs: virtual && before ? virtual.stats.serverSynthMs - before.serverSynthMs : undefined,
      waitMs: virtual && before ? virtual.stats.waitMs - before.waitMs : undefined,
    };
    out.push(row);
    console.log(
      `probe-fetch: ${(r.bytes / 1e9).toFixed(2)} GB by ${a.probeBlockMb} MB Range requests, ${inflight} in flight: ${(r.ms / 1000).toFixed(1)} s, ${fmt(row.mbPerS, 0)} MB/s` +
        (virtual ? ` (server thread synthesized ${fmt(row.serverSynthMs! / 1000)} s, waited for workers ${fmt(row.waitMs! / 1000)} s)` : ''),
    );
  }
  return out;
}

async function main(): Promise<void> {
  const a = options(process.argv.slice(2));
  const lib = join(a.app, 'sieve-chat.js');
  if (!existsSync(lib)) throw new Error(`${lib} is missing: run \`npm run build\` first (or pass --app DIR)`);
  const isUrl = /^https?:\/\//.test(a.model);
  const modelDir = isUrl || a.synthetic ? undefined : resolve(a.model);
  if (modelDir && !existsSync(join(modelDir, 'config.json'))) throw new Error(`${modelDir}: no config.json: not a model folder`);
  const maxLen = Math.max(...a.lengths);
  const presynth = { mode: a.presynth, workers: a.synthWorkers, workerUrl: synthWorkerUrl(), budgetBytes: a.presynthBudgetGb * 2 ** 30 };
  const tSynth = Date.now();
  const virtual = a.synthetic
    ? await (await import('./synthetic.ts')).prepareSynthetic(a.synthetic, a.syntheticOpts, Math.max(a.context, maxLen + 64), presynth)
    : undefined;
  if (virtual)
    console.log(
      `synthetic ${a.synthetic}: ${(virtual.stats.totalBytes / 1e9).toFixed(2)} GB in ${virtual.files.length} file(s), presynth ${virtual.stats.mode}${virtual.stats.workers ? ` with ${virtual.stats.workers} worker threads` : ''}`,
    );
  const config = virtual ? virtual.config : readConfig(modelDir);
  const bos = typeof config.bos_token_id === 'number' ? [config.bos_token_id] : [];
  const maxPos = Number(config.max_position_embeddings ?? config.seq_length ?? Infinity);
  const context = a.context || Math.min(maxPos, maxLen + 64);
  const { server, port } = await startServer({ app: a.app, page: a.page, modelDir, virtual });
  const modelUrl = isUrl ? a.model : `http://127.0.0.1:${port}/models/${virtual ? virtual.name : basename(modelDir!)}/`;
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const args = chromiumArgs();
  const browser = await chromium.launch({ executablePath, args });
  const report: TtftReport = {
    bench: 'ttft',
    runner: 'chromium',
    date: new Date().toISOString(),
    adapter: undefined,
    timing:
      "TTFT = the engine's (GenerateStats.ttftMs: prompt in -> first token chosen); page TTFT = send() -> first token painted; medians of --repeat, each from an empty KV cache",
    options: { ...a, out: undefined },
    browser: executablePath,
    seedIds: [] as number[],
    rows: [],
  };
  const jsonPath = join(a.out, 'ttft.json');
  const chartTitle = () => {
    const ad = report.adapter as { vendor?: string; architecture?: string; description?: string } | null | undefined;
    const gpu = [ad?.vendor, ad?.architecture, ad?.description].filter(Boolean).join(' ') || 'unknown GPU';
    return `TTFT dense vs sample: ${(report.model as { description?: string } | undefined)?.description ?? ''} on ${gpu}`;
  };
  // Rewritten after the load and after every row, so a run cut short keeps what it measured.
  const save = (rows?: TtftRow[]) => {
    if (rows) report.rows = rows;
    writeReport(report, jsonPath);
  };
  try {
    const page = await browser.newPage();
    // Under tsx, esbuild's keepNames wraps the named functions inside page.evaluate callbacks in __name(): define it in the page.
    await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
    page.setDefaultTimeout(a.timeoutS * 1000);
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[page] ${m.text()}`);
    });
    page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => customElements.get('sieve-chat') !== undefined);
    report.adapter = await page.evaluate(async () => {
      const ad = await navigator.gpu?.requestAdapter();
      return ad ? { vendor: ad.info.vendor, architecture: ad.info.architecture, description: ad.info.description } : null;
    });
    console.log(`adapter: ${JSON.stringify(report.adapter)}`);
    if (virtual) {
      await virtual.ready;
      const st = virtual.stats;
      if (st.presynthMs !== undefined) {
        console.log(
          `presynth: ${(st.totalBytes / 1e9).toFixed(2)} GB made in ${(st.presynthMs / 1000).toFixed(1)} s by ${st.workers} workers ` +
            `(${fmt(st.totalBytes / 1e3 / st.presynthMs, 0)} MB/s; ${fmt(st.totalBytes / 1e3 / st.workerMs, 0)} MB/s per worker), ${((Date.now() - tSynth) / 1000).toFixed(1)} s since start`,
        );
      }
    }
    if (a.probeFetch) {
      report.probe = await probeFetch(page, modelUrl, virtual, modelDir, a);
      save();
    }
    const attrs: Record<string, string> = {
      weights: a.weights,
      kernels: a.kernels,
      'context-length': String(context),
      'min-sparse-len': String(a.minSparseLen || 2),
      cache: 'false',
    };
    if (a.prefillChunk) attrs['prefill-chunk'] = String(a.prefillChunk);
    if (a.alpha !== undefined) attrs.alpha = String(a.alpha);
    if (a.windowRatio !== undefined) attrs['window-ratio'] = String(a.windowRatio);
    if (a.sampleRatio !== undefined) attrs['sample-ratio'] = String(a.sampleRatio);
    const t0 = Date.now();
    const before = virtual && { ...virtual.stats };
    const loaded = await page.evaluate(
      async ({ url, attrs }) => {
        const el = document.querySelector('sieve-chat')!;
        for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
        let err: { title: string; detail: string } | undefined;
        el.addEventListener('error', (e: Event) => (err = (e as CustomEvent).detail), { once: true });
        // Page-measured: load() called -> resolved; bytes: the weight bytes the loader reported read.
        let bytes = 0;
        let firstByteMs: number | undefined;
        let lastByteMs: number | undefined;
        const t = performance.now();
        const onProgress = (e: Event) => {
          bytes = (e as CustomEvent<{ loadedBytesAll: number }>).detail.loadedBytesAll;
          firstByteMs ??= performance.now() - t;
          lastByteMs = performance.now() - t;
        };
        el.addEventListener('progress', onProgress);
        const ok = await el.load(url);
        const ms = performance.now() - t;
        el.removeEventListener('progress', onProgress);
        if (!ok) throw new Error(`load failed: ${err ? `${err.title} ${err.detail}` : 'unknown'}`);
        return {
          model: { description: el.engine!.description, contextLength: el.engine!.contextLength, kernels: el.engine!.kernels },
          load: { ms, bytes, firstByteMs, lastByteMs },
        };
      },
      { url: modelUrl, attrs },
    );
    const model = loaded.model;
    report.model = model;
    // The server's figures of this load (counters as differences from before it).
    const cumulative = ['reads', 'bytesRead', 'serverSynthMs', 'waitMs', 'chunksMade', 'workerMs'] as const;
    const serverStats = virtual && { ...virtual.stats, ...Object.fromEntries(cumulative.map((k) => [k, virtual.stats[k] - before![k]])) };
    const l = loaded.load;
    const load = {
      pageMs: l.ms,
      bytes: l.bytes,
      mbPerS: l.bytes / 1e3 / l.ms,
      firstByteMs: l.firstByteMs,
      lastByteMs: l.lastByteMs,
      harnessMs: Date.now() - t0,
      server: serverStats,
    };
    report.load = load;
    console.log(`model: ${model.description}`);
    console.log(
      `load: ${(load.pageMs / 1000).toFixed(1)} s page-measured, ${(load.bytes / 1e9).toFixed(2)} GB, ${fmt(load.mbPerS, 0)} MB/s` +
        ` (weight bytes from ${fmt(l.firstByteMs! / 1000)} s to ${fmt(l.lastByteMs! / 1000)} s: ${fmt(load.bytes / 1e3 / (l.lastByteMs! - l.firstByteMs!), 0)} MB/s;` +
        ` engine setup after them ${fmt((load.pageMs - l.lastByteMs!) / 1000)} s)`,
    );
    if (serverStats) {
      console.log(
        `load, server side: ${serverStats.reads} range reads, ${(serverStats.bytesRead / 1e9).toFixed(2)} GB, synthesized in the server thread ${fmt(serverStats.serverSynthMs / 1000)} s, ` +
          `waited for workers ${fmt(serverStats.waitMs / 1000)} s, ${serverStats.chunksMade} chunks made by workers (${fmt(serverStats.workerMs / 1000)} worker-s)`,
      );
    }
    save();
    await virtual?.close(); // the page read every weight once (cache=false): the chunks can go
    // Prompt ids: text the model writes itself from BOS (in its own distribution), cycled to each length;
    // the synthetic model gets its own structured prompts (sink, stripes, needles, question).
    const seed = virtual
      ? []
      : await page.evaluate(async (bos) => {
          const el = document.querySelector('sieve-chat')!;
          const ids: number[] = [];
          const onTok = (e: Event) => ids.push(...(e as CustomEvent<{ ids: number[] }>).detail.ids);
          el.addEventListener('token', onTok);
          el.setAttribute('max-tokens', '64');
          el.setAttribute('attention', 'dense');
          const out = await el.send(bos.length ? { ids: bos } : 'Once upon a time');
          if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
          el.removeEventListener('token', onTok);
          el.setAttribute('max-tokens', '2');
          return ids;
        }, bos);
    report.seedIds = seed;
    const body = seed.filter((id) => !bos.includes(id) && id !== config.eos_token_id);
    if (!virtual && body.length < 4) for (let i = 0; i < 64; i++) body.push(3 + ((i * 7919) % 200));
    await measure({
      lengths: a.lengths,
      modes: a.modes,
      repeat: a.repeat,
      warmup: a.warmup,
      prompt(length) {
        const n = Math.min(length, model.contextLength - 2);
        if (n < length && n < length * 0.9) {
          console.log(`skip ${length}: the context holds ${model.contextLength} tokens`);
          return undefined;
        }
        const ids = virtual ? virtual.promptIds(n, length) : [...bos];
        while (ids.length < n) ids.push(body[(ids.length - bos.length) % body.length]);
        return ids;
      },
      warmupPrompt: a.warmupLen ? (ids) => ids.slice(0, Math.max(2, a.warmupLen!)) : undefined,
      run: (ids, mode) =>
        page.evaluate(
          async ({ ids, mode }): Promise<TtftRun> => {
            const el = document.querySelector('sieve-chat')!;
            el.setAttribute('attention', mode);
            await el.clear(); // no KV reuse between runs: every run prefills the whole prompt
            const out = await el.send({ ids });
            if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
            const s = out.stats;
            return {
              ttftMs: s?.ttftMs,
              pageTtftMs: out.pageTtftMs,
              tokenizeMs: s?.tokenizeMs,
              prefillMs: s?.prefillMs,
              promptTokens: s?.promptTokens,
              cachedTokens: s?.cachedTokens,
              areaFraction: s?.sparsity?.meanAreaFraction,
              prefillRan: s?.sparsity?.mode,
            };
          },
          { ids, mode },
        ),
      onRow: (row, rows) => {
        save(rows);
        console.log(
          `${String(row.length).padStart(6)} ${row.mode.padEnd(6)} page TTFT ${fmt(row.pageTtftMs)} ms  engine ${fmt(row.ttftMs)} ms  prefill ${fmt(row.prefillMs)} ms  area ${fmt(row.areaFraction, 3)}`,
        );
      },
    });
  } finally {
    save();
    await browser.close();
    server.close();
    await virtual?.close();
  }
  writeReport(report, jsonPath, chartTitle());
  printReport(report, jsonPath);
}

if (!serveSynthWorker()) {
  main().catch((e: Error) => {
    console.error(`ttft: ${e.message}`);
    process.exit(1);
  });
}
