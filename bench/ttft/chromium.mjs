#!/usr/bin/env node
// TTFT harness (bench/ttft/, Chromium runner; bench/ttft/node.ts is the Node + Dawn one): drives the <sieve-chat> component in Chromium through
// Playwright and measures time to first token for prompts of given lengths,
// dense vs sample attention. Needs only node, playwright-core and a Chromium
// (no vite, no node_modules besides playwright-core): it serves the built
// component (dist/sieve-chat.js from `npm run build`), its page (bench/ttft/page.html)
// and a model folder from its own tiny HTTP server on 127.0.0.1.
//
//   npm run ttft -- --lengths 512,1024,2048 --modes dense,sample [--model DIR|URL] [--out DIR]
//
// Options: --repeat N (3) --warmup N (1) --warmup-len N (warm-up prompts of N tokens instead of
// the measured length: compiles the pipelines without a second 128K prefill) --weights auto|f32|f16|q8|q4
// --kernels auto|f32|f16|tensor (the component's `kernels` attribute: the kernel tier; the model line names the tier that ran)
// --context N (default: max length + 64, capped by the model) --min-sparse-len N
// (0: every prompt runs sparse in 'sample' mode) --alpha A --window-ratio R
// --sample-ratio R --prefill-chunk N (rows per prefill chunk; engine default 512)
// --app DIR (dist) --page FILE (bench/ttft/page.html) --timeout-s S.
// --synthetic PRESET [--synthetic-opts JSON]: instead of --model, the structured
// synthetic model (bench/synthetic/, presets internlm2-7b, internlm2-1.8b,
// chatglm2-6b, internlm2-tiny, chatglm2-tiny), synthesized on the fly by the
// server, with structured prompts (bench/ttft/synthetic.ts; needs tsx, as
// `npm run ttft` runs it, or the --bundle output). --bundle OUT.mjs: write this
// harness as one file for a machine without node_modules (see bundleSelf).
// --presynth auto|on|ahead|off (auto) --synth-workers N (cores - 1) --presynth-budget-gb G (2):
// where the synthetic bytes are made (bench/ttft/synthetic.ts): 'on' = every shard by N worker
// threads into memory before the load starts, 'ahead' = the workers keep at most G GiB made
// ahead of the page's reads, 'off' = on each request in the server thread; 'auto' = 'on' when
// the model takes under half the free memory. --probe-fetch: before the load, the page reads
// the first --probe-gb 2 GB of the weight files by Range requests (--probe-block-mb 2,
// --probe-inflight 2,4,8) without the GPU, to split the load time into HTTP and the rest. The load time (page-measured ms,
// bytes, MB/s) is printed and in ttft.json (load), which is rewritten after every row.
// Browser: $CHROMIUM or /usr/bin/chromium, flags from $CHROMIUM_GPU_ARGS or
// the SwiftShader flags of playwright.config.ts.
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, workerData } from 'node:worker_threads';
import { chromium } from 'playwright-core';

// The project root: two folders up from this source (bench/ttft/), one up from its --bundle output (.gpu/ttft.mjs).
const SOURCE = fileURLToPath(import.meta.url).endsWith(`${sep}bench${sep}ttft${sep}chromium.mjs`);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), SOURCE ? '../..' : '..');
const SWIFTSHADER_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-vulkan-surface',
  '--no-sandbox',
];

function parseArgs(argv) {
  const a = {
    lengths: [512, 1024, 2048],
    modes: ['dense', 'sample'],
    model: '',
    out: join(ROOT, 'bench/results/ttft'),
    repeat: 3,
    warmup: 1,
    weights: 'auto',
    kernels: 'auto',
    context: 0,
    minSparseLen: 0,
    alpha: undefined,
    windowRatio: undefined,
    sampleRatio: undefined,
    app: join(ROOT, 'dist'),
    page: join(ROOT, 'bench/ttft/page.html'),
    timeoutS: 1800,
    synthetic: '',
    syntheticOpts: {},
    bundle: '',
    presynth: 'auto',
    synthWorkers: Math.max(1, availableParallelism() - 1),
    presynthBudgetGb: 2,
    probeFetch: false,
    probeBlockMb: 2,
    probeInflight: [2, 4, 8],
    probeGb: 2,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const n = (name) => {
      const x = Number(v());
      if (!Number.isFinite(x)) throw new Error(`${name} must be a number`);
      return x;
    };
    switch (k) {
      case '--lengths':
        a.lengths = v()
          .split(',')
          .map((s) => {
            const x = Number(s);
            if (!Number.isInteger(x) || x < 2) throw new Error(`--lengths: bad length '${s}'`);
            return x;
          });
        break;
      case '--modes':
        a.modes = v().split(',');
        for (const m of a.modes) if (m !== 'dense' && m !== 'sample') throw new Error(`--modes: '${m}' is not dense or sample`);
        break;
      case '--model':
        a.model = v();
        break;
      case '--out':
        a.out = resolve(v());
        break;
      case '--repeat':
        a.repeat = n(k);
        break;
      case '--warmup':
        a.warmup = n(k);
        break;
      case '--warmup-len':
        a.warmupLen = n(k);
        break;
      case '--weights':
        a.weights = v();
        break;
      case '--kernels':
        a.kernels = v();
        break;
      case '--context':
        a.context = n(k);
        break;
      case '--prefill-chunk':
        a.prefillChunk = n(k);
        break;
      case '--min-sparse-len':
        a.minSparseLen = n(k);
        break;
      case '--alpha':
        a.alpha = n(k);
        break;
      case '--window-ratio':
        a.windowRatio = n(k);
        break;
      case '--sample-ratio':
        a.sampleRatio = n(k);
        break;
      case '--app':
        a.app = resolve(v());
        break;
      case '--page':
        a.page = resolve(v());
        break;
      case '--timeout-s':
        a.timeoutS = n(k);
        break;
      case '--synthetic':
        a.synthetic = v();
        break;
      case '--synthetic-opts':
        a.syntheticOpts = JSON.parse(v());
        break;
      case '--bundle':
        a.bundle = resolve(v());
        break;
      case '--presynth':
        a.presynth = v();
        if (!['auto', 'on', 'ahead', 'off'].includes(a.presynth)) throw new Error(`--presynth: '${a.presynth}' is not auto, on, ahead or off`);
        break;
      case '--synth-workers':
        a.synthWorkers = n(k);
        if (!Number.isInteger(a.synthWorkers) || a.synthWorkers < 0) throw new Error('--synth-workers: an integer >= 0');
        break;
      case '--presynth-budget-gb':
        a.presynthBudgetGb = n(k);
        break;
      case '--probe-fetch':
        a.probeFetch = true;
        break;
      case '--probe-block-mb':
        a.probeBlockMb = n(k);
        break;
      case '--probe-gb':
        a.probeGb = n(k);
        break;
      case '--probe-inflight':
        a.probeInflight = v().split(',').map(Number);
        if (a.probeInflight.some((x) => !Number.isInteger(x) || x < 1)) throw new Error('--probe-inflight: integers >= 1');
        break;
      case '-h':
      case '--help':
        console.log(
          readFileSync(fileURLToPath(import.meta.url), 'utf8')
            .split('\n')
            .slice(1, 32)
            .map((l) => l.replace(/^\/\/ ?/, ''))
            .join('\n'),
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${k} (see --help)`);
    }
  }
  if (!a.model && !a.synthetic && !a.bundle) {
    for (const d of [join(ROOT, 'demo/public/models/stories260k'), resolve(ROOT, '../shared/fixtures/stories260k')]) {
      if (existsSync(join(d, 'config.json'))) {
        a.model = d;
        break;
      }
    }
    if (!a.model) throw new Error('no --model given and the default stories260k is missing (run scripts/setup.sh)');
  }
  return a;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** Writes the status and headers of a (Range) response; returns [start, end] or undefined when done. */
function head(req, res, size, type) {
  const headers = {
    'content-type': TYPES[type] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-store',
    'access-control-allow-origin': '*',
  };
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  if (m) {
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start > end || start >= size) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` });
      res.end();
      return undefined;
    }
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1 });
  } else {
    res.writeHead(200, { ...headers, 'content-length': size });
  }
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return undefined;
  }
  return [start, end];
}

const notFound = (res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
};

/** Static files with HTTP Range support (the URL model source reads shards by ranges). */
function serveFile(req, res, file) {
  let st;
  try {
    st = statSync(file);
  } catch {
    st = undefined;
  }
  if (!st || !st.isFile()) {
    notFound(res);
    return;
  }
  const r = head(req, res, st.size, extname(file));
  if (r) createReadStream(file, { start: r[0], end: r[1] }).pipe(res);
}

/** A synthesized file (bench/ttft/synthetic.ts), streamed in bounded chunks with backpressure. */
async function serveVirtual(req, res, folder, rel) {
  const size = folder.size(rel);
  if (size === undefined) {
    notFound(res);
    return;
  }
  const r = head(req, res, size, extname(rel));
  if (!r) return;
  const CHUNK = 8 << 20;
  try {
    for (let o = r[0]; o <= r[1] && !res.destroyed; o += CHUNK) {
      const buf = await folder.read(rel, o, Math.min(CHUNK, r[1] + 1 - o));
      if (!res.write(buf))
        await new Promise((ok) => {
          res.once('drain', ok);
          res.once('close', ok);
        });
    }
    res.end();
  } catch (e) {
    console.error(`ttft server: ${rel}: ${e.message}`);
    res.destroy();
  }
}

/** Serves: / -> the page, /sieve-chat.js etc. -> the app dir, /models/NAME/* -> the model folder NAME (or the synthetic one). */
export function startServer({ app, page, modelDir, virtual }) {
  const modelPrefix = `/models/${modelDir ? basename(modelDir) : virtual?.name}/`;
  const inside = (base, rel) => {
    const p = normalize(join(base, rel));
    return p === base || p.startsWith(base + sep) ? p : undefined;
  };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file;
    if (virtual && path.startsWith(modelPrefix)) {
      void serveVirtual(req, res, virtual, path.slice(modelPrefix.length));
      return;
    }
    if (path === '/' || path === '/index.html') file = page;
    else if (path.startsWith(modelPrefix) && modelDir) file = inside(modelDir, path.slice(modelPrefix.length));
    else file = inside(app, path.slice(1));
    if (!file) {
      res.writeHead(403);
      res.end();
      return;
    }
    serveFile(req, res, file);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, port: server.address().port })));
}

function readConfig(modelDir) {
  try {
    return modelDir ? JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) : {};
  } catch {
    return {};
  }
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((p, q) => p - q);
  return s.length ? s[(s.length - 1) >> 1] : undefined;
};
const f = (x, d = 1) => (x === undefined || x === null ? '-' : x.toFixed(d));

export function chartSvg(rows, title) {
  const W = 640,
    H = 380,
    L = 64,
    R = 130,
    T = 36,
    B = 48;
  const lens = [...new Set(rows.map((r) => r.length))].sort((a, b) => a - b);
  const yMax = Math.max(1, ...rows.map((r) => r.pageTtftMs ?? 0)) * 1.1;
  const x = (len) => L + (lens.length === 1 ? (W - L - R) / 2 : (lens.indexOf(len) * (W - L - R)) / (lens.length - 1));
  const y = (ms) => H - B - (ms / yMax) * (H - T - B);
  const colors = { dense: '#d9480f', sample: '#1c7ed6' };
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${L}" y="20" font-size="14">${title.replace(/[<&>]/g, '')}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">prompt length (tokens)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">TTFT (ms, page)</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const ms = (yMax * i) / 4;
    out.push(
      `<line x1="${L - 4}" y1="${y(ms)}" x2="${W - R}" y2="${y(ms)}" stroke="#eee"/>`,
      `<text x="${L - 6}" y="${y(ms) + 4}" text-anchor="end">${ms.toFixed(0)}</text>`,
    );
  }
  for (const len of lens) out.push(`<text x="${x(len)}" y="${H - B + 16}" text-anchor="middle">${len}</text>`);
  let legendY = T + 10;
  for (const mode of ['dense', 'sample']) {
    const pts = rows.filter((r) => r.mode === mode && r.pageTtftMs !== undefined).sort((a, b) => a.length - b.length);
    if (!pts.length) continue;
    out.push(`<polyline fill="none" stroke="${colors[mode]}" stroke-width="2" points="${pts.map((r) => `${x(r.length)},${y(r.pageTtftMs)}`).join(' ')}"/>`);
    for (const r of pts) out.push(`<circle cx="${x(r.length)}" cy="${y(r.pageTtftMs)}" r="3.5" fill="${colors[mode]}"/>`);
    out.push(
      `<rect x="${W - R + 14}" y="${legendY - 9}" width="12" height="12" fill="${colors[mode]}"/>`,
      `<text x="${W - R + 32}" y="${legendY + 1}">${mode}</text>`,
    );
    legendY += 20;
  }
  out.push('</svg>');
  return out.join('\n');
}

/**
 * --probe-fetch: the page reads the weight files (their first --probe-gb GB) by Range requests of --probe-block-mb with
 * each --probe-inflight count of requests in flight, keeping nothing and touching no GPU: the
 * HTTP (server + browser network) part of the load, MB/s per in-flight count.
 */
async function probeFetch(page, modelUrl, virtual, modelDir, a) {
  const files = virtual
    ? virtual.files.map((p) => ({ p, size: virtual.size(p) }))
    : readdirSync(modelDir)
        .filter((p) => p.endsWith('.safetensors'))
        .map((p) => ({ p, size: statSync(join(modelDir, p)).size }));
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
      serverSynthMs: virtual ? virtual.stats.serverSynthMs - before.serverSynthMs : undefined,
      waitMs: virtual ? virtual.stats.waitMs - before.waitMs : undefined,
    };
    out.push(row);
    console.log(
      `probe-fetch: ${(r.bytes / 1e9).toFixed(2)} GB by ${a.probeBlockMb} MB Range requests, ${inflight} in flight: ${(r.ms / 1000).toFixed(1)} s, ${f(row.mbPerS, 0)} MB/s` +
        (virtual ? ` (server thread synthesized ${f(row.serverSynthMs / 1000)} s, waited for workers ${f(row.waitMs / 1000)} s)` : ''),
    );
  }
  return out;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a.bundle) {
    await bundleSelf(a.bundle);
    return;
  }
  const lib = join(a.app, 'sieve-chat.js');
  if (!existsSync(lib)) throw new Error(`${lib} is missing: run \`npm run build\` first (or pass --app DIR)`);
  const isUrl = /^https?:\/\//.test(a.model);
  const modelDir = isUrl || a.synthetic ? undefined : resolve(a.model);
  if (modelDir && !existsSync(join(modelDir, 'config.json'))) throw new Error(`${modelDir}: no config.json: not a model folder`);
  const maxLen = Math.max(...a.lengths);
  const presynth = { mode: a.presynth, workers: a.synthWorkers, workerUrl: new URL(import.meta.url), budgetBytes: a.presynthBudgetGb * 2 ** 30 };
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
  const context = a.context || Math.min(config.max_position_embeddings ?? config.seq_length ?? Infinity, maxLen + 64);
  const { server, port } = await startServer({ app: a.app, page: a.page, modelDir, virtual });
  const modelUrl = isUrl ? a.model : `http://127.0.0.1:${port}/models/${virtual ? virtual.name : basename(modelDir)}/`;
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const args = process.env.CHROMIUM_GPU_ARGS ? process.env.CHROMIUM_GPU_ARGS.split(' ').filter(Boolean) : SWIFTSHADER_ARGS;
  const browser = await chromium.launch({ executablePath, args });
  const rows = [];
  let adapter;
  let model;
  let load;
  let probe;
  let seedIds = [];
  mkdirSync(a.out, { recursive: true });
  // Rewritten after the load and after every row, so a run cut short keeps what it measured.
  const writeResult = () =>
    writeFileSync(
      join(a.out, 'ttft.json'),
      JSON.stringify(
        { date: new Date().toISOString(), adapter, model, load, probe, browser: executablePath, options: { ...a, out: undefined }, seedIds, rows },
        null,
        1,
      ),
    );
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(a.timeoutS * 1000);
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[page] ${m.text()}`);
    });
    page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => customElements.get('sieve-chat') !== undefined);
    adapter = await page.evaluate(async () => {
      const ad = await navigator.gpu?.requestAdapter();
      return ad ? { vendor: ad.info.vendor, architecture: ad.info.architecture, description: ad.info.description } : null;
    });
    console.log(`adapter: ${JSON.stringify(adapter)}`);
    if (virtual) {
      await virtual.ready;
      if (virtual.stats.presynthMs !== undefined) {
        console.log(
          `presynth: ${(virtual.stats.totalBytes / 1e9).toFixed(2)} GB made in ${(virtual.stats.presynthMs / 1000).toFixed(1)} s by ${virtual.stats.workers} workers ` +
            `(${f(virtual.stats.totalBytes / 1e3 / virtual.stats.presynthMs, 0)} MB/s; ${f(virtual.stats.totalBytes / 1e3 / virtual.stats.workerMs, 0)} MB/s per worker), ${((Date.now() - tSynth) / 1000).toFixed(1)} s since start`,
        );
      }
    }
    if (a.probeFetch) {
      probe = await probeFetch(page, modelUrl, virtual, modelDir, a);
      writeResult();
    }
    const attrs = { weights: a.weights, kernels: a.kernels, 'context-length': String(context), 'min-sparse-len': String(a.minSparseLen || 2), cache: 'false' };
    if (a.prefillChunk) attrs['prefill-chunk'] = String(a.prefillChunk);
    if (a.alpha !== undefined) attrs.alpha = String(a.alpha);
    if (a.windowRatio !== undefined) attrs['window-ratio'] = String(a.windowRatio);
    if (a.sampleRatio !== undefined) attrs['sample-ratio'] = String(a.sampleRatio);
    const t0 = Date.now();
    const before = virtual && { ...virtual.stats };
    const loaded = await page.evaluate(
      async ({ url, attrs }) => {
        const el = document.querySelector('sieve-chat');
        for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
        let err;
        el.addEventListener(
          'error',
          (e) => {
            err = e.detail;
          },
          { once: true },
        );
        // Page-measured: load() called -> resolved; bytes: the weight bytes the loader reported read.
        let bytes = 0,
          firstByteMs,
          lastByteMs;
        const t = performance.now();
        const onProgress = (e) => {
          bytes = e.detail.loadedBytesAll;
          firstByteMs ??= performance.now() - t;
          lastByteMs = performance.now() - t;
        };
        el.addEventListener('progress', onProgress);
        const ok = await el.load(url);
        const ms = performance.now() - t;
        el.removeEventListener('progress', onProgress);
        if (!ok) throw new Error(`load failed: ${err ? `${err.title} ${err.detail}` : 'unknown'}`);
        return {
          model: { description: el.engine.description, contextLength: el.engine.contextLength, kernels: el.engine.kernels },
          load: { ms, bytes, firstByteMs, lastByteMs },
        };
      },
      { url: modelUrl, attrs },
    );
    model = loaded.model;
    const server =
      virtual &&
      Object.fromEntries(
        Object.entries(virtual.stats).map(([k, v]) => [
          k,
          typeof v === 'number' && before && typeof before[k] === 'number' && k !== 'presynthMs' && k !== 'totalBytes' && k !== 'workers' && k !== 'chunkBytes'
            ? v - before[k]
            : v,
        ]),
      );
    load = {
      pageMs: loaded.load.ms,
      bytes: loaded.load.bytes,
      mbPerS: loaded.load.bytes / 1e3 / loaded.load.ms,
      firstByteMs: loaded.load.firstByteMs,
      lastByteMs: loaded.load.lastByteMs,
      harnessMs: Date.now() - t0,
      server,
    };
    console.log(`model: ${model.description}`);
    console.log(
      `load: ${(load.pageMs / 1000).toFixed(1)} s page-measured, ${(load.bytes / 1e9).toFixed(2)} GB, ${f(load.mbPerS, 0)} MB/s` +
        ` (weight bytes from ${f(load.firstByteMs / 1000)} s to ${f(load.lastByteMs / 1000)} s: ${f(load.bytes / 1e3 / (load.lastByteMs - load.firstByteMs), 0)} MB/s;` +
        ` engine setup after them ${f((load.pageMs - load.lastByteMs) / 1000)} s)`,
    );
    if (server) {
      console.log(
        `load, server side: ${server.reads} range reads, ${(server.bytesRead / 1e9).toFixed(2)} GB, synthesized in the server thread ${f(server.serverSynthMs / 1000)} s, ` +
          `waited for workers ${f(server.waitMs / 1000)} s, ${server.chunksMade} chunks made by workers (${f(server.workerMs / 1000)} worker-s)`,
      );
    }
    writeResult();
    await virtual?.close(); // the page read every weight once (cache=false): the chunks can go
    // Prompt ids: text the model writes itself from BOS (in its own distribution), cycled to each length;
    // the synthetic model gets its own structured prompts (sink, stripes, needles, question).
    const seed = virtual
      ? []
      : await page.evaluate(async (bos) => {
          const el = document.querySelector('sieve-chat');
          const ids = [];
          const onTok = (e) => ids.push(...e.detail.ids);
          el.addEventListener('token', onTok);
          el.setAttribute('max-tokens', '64');
          el.setAttribute('attention', 'dense');
          const out = await el.send(bos.length ? { ids: bos } : 'Once upon a time');
          if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
          el.removeEventListener('token', onTok);
          el.setAttribute('max-tokens', '2');
          return ids;
        }, bos);
    seedIds = seed;
    const body = seed.filter((id) => !bos.includes(id) && id !== config.eos_token_id);
    if (!virtual && body.length < 4) for (let i = 0; i < 64; i++) body.push(3 + ((i * 7919) % 200));
    for (const length of a.lengths) {
      const n = Math.min(length, model.contextLength - 2);
      if (n < length && n < length * 0.9) {
        console.log(`skip ${length}: the context holds ${model.contextLength} tokens`);
        continue;
      }
      const ids = virtual ? virtual.promptIds(n, length) : [...bos];
      while (ids.length < n) ids.push(body[(ids.length - bos.length) % body.length]);
      for (const mode of a.modes) {
        const runs = [];
        for (let r = 0; r < a.warmup + a.repeat; r++) {
          const warm = r < a.warmup;
          const runIds = warm && a.warmupLen ? ids.slice(0, Math.max(2, a.warmupLen)) : ids;
          const res = await page.evaluate(
            async ({ ids, mode }) => {
              const el = document.querySelector('sieve-chat');
              el.setAttribute('attention', mode);
              await el.clear(); // no KV reuse between runs: every run prefills the whole prompt
              const out = await el.send({ ids });
              if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
              const s = out.stats ?? {};
              return {
                cachedTokens: s.cachedTokens,
                pageTtftMs: out.pageTtftMs,
                engineTtftMs: s.ttftMs,
                tokenizeMs: s.tokenizeMs,
                prefillMs: s.prefillMs,
                firstDecodeMs: s.firstDecodeMs,
                promptTokens: s.promptTokens,
                areaFraction: s.sparsity?.meanAreaFraction,
                sparseMode: s.sparsity?.mode,
              };
            },
            { ids: runIds, mode },
          );
          if (!warm) runs.push(res);
          console.log(`  ${warm ? 'warm-up' : 'run'} ${mode} ${runIds.length} tokens: page TTFT ${f(res.pageTtftMs)} ms, prefill ${f(res.prefillMs)} ms`);
        }
        const pick = (k) => median(runs.map((x) => x[k]));
        const row = {
          length,
          promptTokens: runs[0]?.promptTokens ?? n,
          mode,
          pageTtftMs: pick('pageTtftMs'),
          engineTtftMs: pick('engineTtftMs'),
          tokenizeMs: pick('tokenizeMs'),
          prefillMs: pick('prefillMs'),
          firstDecodeMs: pick('firstDecodeMs'),
          areaFraction: pick('areaFraction'),
          prefillRan: runs[0]?.sparseMode,
          cachedTokens: Math.max(0, ...runs.map((x) => x.cachedTokens ?? 0)),
          runs,
        };
        rows.push(row);
        writeResult();
        console.log(
          `${String(length).padStart(6)} ${mode.padEnd(6)} page TTFT ${f(row.pageTtftMs)} ms  engine ${f(row.engineTtftMs)} ms  prefill ${f(row.prefillMs)} ms  area ${f(row.areaFraction, 3)}`,
        );
      }
    }
  } finally {
    writeResult();
    await browser.close();
    server.close();
    await virtual?.close();
  }
  writeFileSync(
    join(a.out, 'ttft.svg'),
    chartSvg(
      rows,
      `TTFT dense vs sample: ${model?.description ?? ''} on ${[adapter?.vendor, adapter?.architecture, adapter?.description].filter(Boolean).join(' ') || 'unknown GPU'}`,
    ),
  );
  console.log('\n' + ['length', 'mode', 'pageTTFT_ms', 'engineTTFT_ms', 'tokenize_ms', 'prefill_ms', 'decode1_ms', 'area_frac', 'dense/this'].join('\t'));
  for (const r of rows) {
    const dense = rows.find((d) => d.length === r.length && d.mode === 'dense');
    const speedup = dense && r.pageTtftMs ? dense.pageTtftMs / r.pageTtftMs : undefined;
    console.log(
      [
        r.promptTokens,
        r.mode,
        f(r.pageTtftMs),
        f(r.engineTtftMs),
        f(r.tokenizeMs),
        f(r.prefillMs),
        f(r.firstDecodeMs),
        f(r.areaFraction, 3),
        f(speedup, 2),
      ].join('\t'),
    );
  }
  console.log(`\nwrote ${join(a.out, 'ttft.json')} and ttft.svg`);
}

/**
 * `--bundle OUT.mjs`: this harness with the synthetic-model server inlined,
 * as one ES module whose only imports are playwright-core and Node built-ins,
 * for machines with node, playwright-core and a browser only (the GPU machine:
 * ../shared/gpu/README.md). Put OUT.mjs one folder below the project root
 * (e.g. .gpu/ttft.mjs) so it finds dist/ and bench/ttft/page.html there.
 */
async function bundleSelf(out) {
  const { build } = await import('vite');
  const { builtinModules } = await import('node:module');
  const self = fileURLToPath(import.meta.url);
  await build({
    configFile: false,
    logLevel: 'warn',
    ssr: { noExternal: true, external: ['playwright-core'] },
    build: {
      ssr: self,
      outDir: dirname(out),
      emptyOutDir: false,
      minify: false,
      target: 'node20',
      rollupOptions: {
        external: ['playwright-core', 'vite', /^tsx/, ...builtinModules, ...builtinModules.map((m) => `node:${m}`)],
        output: { entryFileNames: basename(out), format: 'es', codeSplitting: false },
      },
    },
  });
  console.log(`wrote ${out}: run it with node ${out} --synthetic internlm2-7b --synthetic-opts '{"dtype":"F16"}' --weights q4 ...`);
}

if (!isMainThread && workerData?.ttftSynthWorker) {
  // A synthesis worker of --presynth (this file, or its bundle, run again in a worker thread).
  // Under `npm run ttft` the worker has tsx's flag but not its hooks (Node 20): registered here.
  // The bundle has no .ts import left.
  if (SOURCE) {
    // the source file: its .ts imports need tsx (a devDependency)
    const tsxApi = ['tsx', 'esm', 'api'].join('/'); // not a literal: the bundler must not inline tsx
    (await import(tsxApi)).register();
  }
  (await import('./synthetic.ts')).runSynthWorker(workerData.ttftSynthWorker);
} else if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`ttft: ${e.message}`);
    process.exit(1);
  });
}
