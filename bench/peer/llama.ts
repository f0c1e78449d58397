/**
 * sieve vs llama.cpp's WebGPU backend (wllama 3.8.1) in ONE Chromium, the same
 * page origin and the same flags (issue 19). Per browser flag set (with and
 * without --enable-dawn-features=vulkan_enable_f16_on_nvidia) and per model
 * shape (the structured synthetic InternLM2-1.8B / 7B, q4 on both sides: sieve
 * q4 from the F16 checkpoint, llama.cpp Q4_0 GGUF written here by
 * export-gguf.ts from the same weights):
 *   - load to first token (page-measured: load call -> first token of a 16-token prompt);
 *   - TTFT at each prompt length (sieve dense and SampleAttention, llama.cpp);
 *   - decode tok/s after a --decode-context prompt (tokens after the first);
 *   - peak GPU memory over each side's phase (nvidia-smi, where it exists).
 * Prints a table with ratios ours/peer (time ratios: < 1 = sieve faster) and
 * writes JSON (rewritten after every row, so a cut run keeps its figures).
 *
 * Everything the page needs is served by this script on 127.0.0.1 (COOP/COEP
 * set, so wllama may use its threads): the sieve component (dist/sieve-chat.js),
 * wllama's esm/index.js + wasm, the synthetic checkpoint (synthesized on the
 * fly, bench/ttft/synthetic.ts) and the GGUF files (written to --gguf-dir first).
 *
 * Here (SwiftShader, a tiny shape, short prompts):
 *   npm run build && npm run bench -- bench/peer/llama.ts --quick
 * GPU machine: see bench/peer/README.md (bundle with --bundle, two runs).
 * Options: --shapes internlm2-1.8b,internlm2-7b --lengths 512,2048,8192,32768
 *   --decode-context 4096 --decode-tokens 64 --repeat 2 --flags both|f16|plain
 *   --modes dense,sample --app DIR (dist) --wllama DIR --gguf-dir DIR --out DIR
 *   --max-file-mb 1024 (GGUF split size) --no-isolation (no COOP/COEP)
 *   --force-peer (measure llama.cpp even where it runs on its wasm CPU backend: an adapter
 *   without shader-f16, which ggml-webgpu needs; by default that peer is recorded as skipped)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { execFile } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { prepareSynthetic, runSynthWorker, type VirtualFolder } from '../ttft/synthetic.ts';
import { exportToDir, ggufModel, syntheticCheckpoint, syntheticText, syntheticVocab } from './export-gguf.ts';
import { encodeTensorData } from './gguf.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUNDLED = !import.meta.url.endsWith('/bench/peer/llama.ts');
// Bundled, this file sits in .gpu/ (one folder below the project root); from source, two.
const ROOT = resolve(HERE, BUNDLED ? '..' : '../..');
const SWIFTSHADER = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-vulkan-surface',
  '--no-sandbox',
];
const F16_FLAG = '--enable-dawn-features=vulkan_enable_f16_on_nvidia';

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sieve vs llama.cpp</title><link rel="icon" href="data:,"></head>
<body><sieve-chat id="chat" mode="completion" temperature="0" max-tokens="2" style="height: 200px"></sieve-chat>
<script type="module" src="./sieve-chat.js"></script></body></html>`;

function options() {
  const { values: v } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: 'boolean', default: false },
      shapes: { type: 'string' },
      lengths: { type: 'string' },
      'decode-context': { type: 'string' },
      'decode-tokens': { type: 'string' },
      repeat: { type: 'string' },
      flags: { type: 'string', default: 'both' },
      modes: { type: 'string', default: 'dense,sample' },
      app: { type: 'string' },
      wllama: { type: 'string' },
      'gguf-dir': { type: 'string' },
      out: { type: 'string' },
      'max-file-mb': { type: 'string', default: '1024' },
      'no-isolation': { type: 'boolean', default: false },
      bundle: { type: 'string' },
      'timeout-s': { type: 'string', default: '1800' },
      'synth-workers': { type: 'string' },
      'force-peer': { type: 'boolean', default: false },
    },
  });
  const q = v.quick;
  const list = (s: string | undefined, d: string) => (s ?? d).split(',').filter(Boolean);
  const o = {
    quick: q,
    shapes: list(v.shapes, q ? 'internlm2-tiny' : 'internlm2-1.8b,internlm2-7b'),
    lengths: list(v.lengths, q ? '64,160' : '512,2048,8192,32768').map(Number),
    decodeContext: Number(v['decode-context'] ?? (q ? 128 : 4096)),
    decodeTokens: Number(v['decode-tokens'] ?? (q ? 8 : 64)),
    repeat: Number(v.repeat ?? (q ? 1 : 2)),
    flags: v.flags!,
    modes: list(v.modes, 'dense,sample'),
    app: resolve(v.app ?? (BUNDLED ? join(HERE, 'peer') : join(ROOT, 'dist'))),
    wllama: resolve(v.wllama ?? (BUNDLED ? join(HERE, 'peer/wllama') : join(ROOT, 'node_modules/@wllama/wllama/esm'))),
    // Not under .gpu/ on the GPU machine: a carried .gpu replaces that folder on the next call.
    ggufDir: resolve(v['gguf-dir'] ?? (BUNDLED ? '/tmp/sieve-peer-gguf' : join(ROOT, 'bench/results/peer-gguf'))),
    out: resolve(v.out ?? process.env.OUT ?? join(ROOT, 'bench/results/peer-llama')),
    maxFileBytes: Number(v['max-file-mb']) * 2 ** 20,
    isolation: !v['no-isolation'],
    bundle: v.bundle,
    timeoutMs: Number(v['timeout-s']) * 1000,
    forcePeer: v['force-peer'],
    synthWorkers: Number(v['synth-workers'] ?? (BUNDLED ? Math.max(1, availableParallelism() - 2) : 0)),
  };
  for (const m of o.modes) if (m !== 'dense' && m !== 'sample') throw new Error(`--modes: '${m}' is not dense or sample`);
  if (!['both', 'f16', 'plain'].includes(o.flags)) throw new Error(`--flags ${o.flags}: both, f16 or plain`);
  return o;
}
type Opts = ReturnType<typeof options>;

// ---------- serving ----------
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

function headers(type: string, isolation: boolean): Record<string, string> {
  return {
    'content-type': TYPES[type] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-store',
    ...(isolation
      ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' }
      : {}),
  };
}

/** Status + headers of a (Range) response; the byte range to send, or undefined when done. */
function head(req: IncomingMessage, res: ServerResponse, size: number, type: string, iso: boolean): [number, number] | undefined {
  const h = headers(type, iso);
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0,
    end = size - 1;
  if (m) {
    if (m[1] === '') start = Math.max(0, size - Number(m[2]));
    else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start > end || start >= size) {
      res.writeHead(416, { ...h, 'content-range': `bytes */${size}` });
      res.end();
      return undefined;
    }
    res.writeHead(206, { ...h, 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': String(end - start + 1) });
  } else res.writeHead(200, { ...h, 'content-length': String(size) });
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return undefined;
  }
  return [start, end];
}

interface Served {
  virtual: Map<string, VirtualFolder>;
  gguf: Map<string, string>;
  wasm: Uint8Array;
}

function startServer(o: Opts, s: Served): Promise<{ port: number; close: () => void }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const sendBytes = (b: Uint8Array, type: string) => {
      const r = head(req, res, b.byteLength, type, o.isolation);
      if (r) res.end(Buffer.from(b.buffer, b.byteOffset + r[0], r[1] - r[0] + 1));
    };
    const sendFile = (file: string) => {
      let st;
      try {
        st = statSync(file);
      } catch {
        st = undefined;
      }
      if (!st?.isFile()) {
        res.writeHead(404);
        res.end();
        return;
      }
      const r = head(req, res, st.size, extname(file), o.isolation);
      if (r) createReadStream(file, { start: r[0], end: r[1] }).pipe(res);
    };
    if (path === '/') return sendBytes(new TextEncoder().encode(PAGE), '.html');
    if (path === '/sieve-chat.js') return sendFile(join(o.app, 'sieve-chat.js'));
    if (path === '/wllama/index.js') return sendFile(join(o.wllama, 'index.js'));
    if (path === '/wllama/wllama.wasm') return sendBytes(s.wasm, '.wasm');
    const g = /^\/gguf\/([^/]+)$/.exec(path);
    if (g && s.gguf.has(g[1])) return sendFile(s.gguf.get(g[1])!);
    const m = /^\/models\/([^/]+)\/(.+)$/.exec(path);
    const folder = m && s.virtual.get(m[1]);
    if (folder) {
      const size = folder.size(m![2]);
      if (size === undefined) {
        res.writeHead(404);
        res.end();
        return;
      }
      const r = head(req, res, size, extname(m![2]), o.isolation);
      if (!r) return;
      void (async () => {
        try {
          for (let off = r[0]; off <= r[1] && !res.destroyed; off += 8 << 20) {
            const b = await folder.read(m![2], off, Math.min(8 << 20, r[1] + 1 - off));
            if (!res.write(b))
              await new Promise((ok) => {
                res.once('drain', ok);
                res.once('close', ok);
              });
          }
          res.end();
        } catch (e) {
          console.error(`server: ${path}: ${(e as Error).message}`);
          res.destroy();
        }
      })();
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ port: (server.address() as { port: number }).port, close: () => server.close() })));
}

// ---------- GPU memory ----------
/** Polls nvidia-smi (MiB used on GPU 0) while a phase runs; peak - the value before it. undefined where nvidia-smi is missing. */
class GpuMemory {
  private peak = 0;
  private base = 0;
  private timer?: NodeJS.Timeout;
  available = true;
  private read(): Promise<number | undefined> {
    return new Promise((ok) =>
      execFile('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', '0'], { timeout: 5000 }, (e, out) => {
        if (e) {
          this.available = false;
          ok(undefined);
          return;
        }
        ok(Number(out.trim().split('\n')[0]));
      }),
    );
  }
  async start(): Promise<void> {
    if (!this.available) return;
    this.base = (await this.read()) ?? 0;
    this.peak = this.base;
    this.timer = setInterval(() => {
      void this.read().then((v) => {
        if (v !== undefined && v > this.peak) this.peak = v;
      });
    }, 200);
  }
  async stop(): Promise<{ baseMiB: number; peakMiB: number; deltaMiB: number } | undefined> {
    if (this.timer) clearInterval(this.timer);
    if (!this.available) return undefined;
    const last = await this.read();
    if (last !== undefined && last > this.peak) this.peak = last;
    return { baseMiB: this.base, peakMiB: this.peak, deltaMiB: this.peak - this.base };
  }
}

// ---------- the two runtimes in the page ----------
/**
 * A page whose callbacks may carry tsx's `__name(fn, "name")` calls (running from
 * source, esbuild's keepNames wraps the named functions inside page.evaluate
 * callbacks; the helper does not exist in the page): an identity stand-in.
 */
async function newPage(browser: Browser): Promise<Page> {
  const page = await browser.newPage();
  await page.addInitScript({ content: 'globalThis.__name = globalThis.__name || ((f) => f);' });
  return page;
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[(s.length - 1) >> 1] : NaN;
};

async function sievePhase(page: Page, o: Opts, shape: string, folder: VirtualFolder, context: number) {
  const url = `/models/${folder.name}/`;
  const first = folder.promptIds(16, 7);
  const load = await page.evaluate(
    async ({ url, context, first }) => {
      const el = document.querySelector('sieve-chat') as any;
      for (const [k, v] of Object.entries({
        weights: 'q4',
        'context-length': String(context),
        cache: 'false',
        'min-sparse-len': '2',
        attention: 'dense',
        'max-tokens': '2',
      }))
        el.setAttribute(k, v);
      let err: any;
      el.addEventListener(
        'error',
        (e: any) => {
          err = e.detail;
        },
        { once: true },
      );
      const t = performance.now();
      if (!(await el.load(url))) throw new Error(`sieve load failed: ${err ? `${err.title} ${err.detail}` : 'unknown'}`);
      const loadMs = performance.now() - t;
      const firstIds: number[] = [];
      const onTok = (e: any) => firstIds.push(...e.detail.ids);
      el.addEventListener('token', onTok);
      const out = await el.send({ ids: first });
      el.removeEventListener('token', onTok);
      if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
      return { loadMs, toFirstTokenMs: performance.now() - t, description: el.engine.description, contextLength: el.engine.contextLength, firstIds };
    },
    { url, context, first },
  );
  console.log(`  sieve ${shape}: load ${(load.loadMs / 1000).toFixed(1)} s, to first token ${(load.toFirstTokenMs / 1000).toFixed(1)} s (${load.description})`);
  const ttft: { length: number; mode: string; pageTtftMs: number; prefillMs: number; runs: number[] }[] = [];
  const send = (ids: number[], mode: string, maxTokens: number) =>
    page.evaluate(
      async ({ ids, mode, maxTokens }) => {
        const el = document.querySelector('sieve-chat') as any;
        el.setAttribute('attention', mode);
        el.setAttribute('max-tokens', String(maxTokens));
        await el.clear();
        const out = await el.send({ ids });
        if (out.error) throw new Error(`${out.error.title} ${out.error.detail}`);
        return {
          pageTtftMs: out.pageTtftMs as number,
          prefillMs: out.stats?.prefillMs as number,
          decodeTokPerS: out.stats?.decodeTokPerS as number,
          completionTokens: out.stats?.completionTokens as number,
          promptTokens: out.stats?.promptTokens as number,
          ran: out.stats?.sparsity?.mode as string,
        };
      },
      { ids, mode, maxTokens },
    );
  for (const length of o.lengths) {
    if (length + 64 > context) continue;
    const ids = folder.promptIds(length, length);
    for (const mode of o.modes) {
      try {
        await send(ids.slice(0, Math.min(ids.length, 512)), mode, 2); // warm-up: the pipelines of this mode
        const runs = [];
        for (let r = 0; r < o.repeat; r++) runs.push(await send(ids, mode, 2));
        const row = {
          length,
          mode,
          pageTtftMs: median(runs.map((x) => x.pageTtftMs)),
          prefillMs: median(runs.map((x) => x.prefillMs)),
          ran: runs[0].ran,
          runs: runs.map((x) => x.pageTtftMs),
        };
        ttft.push(row);
        console.log(`  sieve ${shape} ${mode} ${length}: TTFT ${row.pageTtftMs.toFixed(1)} ms (prefill ran ${row.ran ?? 'dense'})`);
      } catch (e) {
        ttft.push({ length, mode, pageTtftMs: NaN, prefillMs: NaN, runs: [], error: (e as Error).message } as never);
        console.log(`  sieve ${shape} ${mode} ${length}: FAILED ${(e as Error).message}`);
      }
    }
  }
  const dIds = folder.promptIds(o.decodeContext, 3);
  const decode = [];
  for (const mode of o.modes.slice(0, 1)) {
    const d = await send(dIds, mode, o.decodeTokens + 1);
    decode.push({ context: o.decodeContext, tokPerS: d.decodeTokPerS, completionTokens: d.completionTokens });
    console.log(`  sieve ${shape}: decode after ${o.decodeContext}: ${d.decodeTokPerS?.toFixed(1)} tok/s (${d.completionTokens} tokens)`);
  }
  await page.evaluate(async () => {
    await (document.querySelector('sieve-chat') as any).engine?.unload();
  });
  return { load, ttft, decode };
}

async function wllamaPhase(page: Page, o: Opts, shape: string, files: string[], folder: VirtualFolder, fullContext: number) {
  const first = syntheticText(folder.promptIds(16, 7));
  // A context llama.cpp cannot allocate (a 4 GiB browser buffer limit, wasm memory) is retried at half, and said so.
  const loadErrors: { context: number; error: string }[] = [];
  let context = fullContext;
  const tryLoad = () =>
    page.evaluate(
      async ({ files, context, first }) => {
        const { Wllama } = await import(/* @vite-ignore */ ['', 'wllama', 'index.js'].join('/'));
        const t = performance.now();
        const blobs = await Promise.all(files.map(async (f: string) => new File([await (await fetch(`/gguf/${f}`)).blob()], f)));
        const fetchMs = performance.now() - t;
        const log: string[] = [];
        const keep = (...a: unknown[]) => {
          const s = a.join(' ');
          if (/offloaded|webgpu|buffer size|flash_attn|n_batch|n_ubatch|adapter/i.test(s)) log.push(s.slice(0, 300));
        };
        const w = new Wllama(
          { default: '/wllama/wllama.wasm' },
          {
            suppressNativeLog: false,
            logger: {
              debug: keep,
              log: keep,
              info: keep,
              warn: (...a: unknown[]) => {
                keep(...a);
                console.warn(...a);
              },
              error: console.error,
            },
          },
        );
        (window as any).__w = w;
        await w.loadModel(blobs, { n_ctx: context, n_gpu_layers: 999 }).catch(async (e: Error) => {
          await w.exit().catch(() => {});
          throw e;
        });
        const loadMs = performance.now() - t;
        const r = await w.createCompletion({ prompt: first, max_tokens: 2, temperature: 0, cache_prompt: false, n_probs: 1 });
        const toFirstTokenMs = performance.now() - t; // (a second token too: the first 2 ids are compared with sieve's)
        const info = w.getLoadedContextInfo();
        return {
          fetchMs,
          loadMs,
          toFirstTokenMs,
          promptTokens: r.usage.prompt_tokens,
          firstIds: r.choices[0].logprobs?.content?.map((x: any) => x.id) as number[],
          multiThread: w.isMultithread(),
          threads: w.getNumThreads(),
          n_ctx: info.n_ctx,
          n_batch: info.n_batch,
          n_ubatch: info.n_ubatch,
          crossOriginIsolated: self.crossOriginIsolated,
          log,
        };
      },
      { files, context, first },
    );
  let load!: Awaited<ReturnType<typeof tryLoad>>;
  for (;;) {
    try {
      load = await tryLoad();
      break;
    } catch (e) {
      loadErrors.push({ context, error: (e as Error).message.slice(0, 300) });
      console.log(`  wllama ${shape}: load with n_ctx ${context} FAILED: ${(e as Error).message.slice(0, 200)}`);
      context = Math.floor(context / 2);
      if (context < o.decodeContext + 128) throw e;
    }
  }
  console.log(
    `  wllama ${shape}: load ${(load.loadMs / 1000).toFixed(1)} s (fetch ${(load.fetchMs / 1000).toFixed(1)} s), to first token ${(load.toFirstTokenMs / 1000).toFixed(1)} s; threads ${load.threads}, n_batch ${load.n_batch}, n_ubatch ${load.n_ubatch}`,
  );
  for (const l of load.log.filter((x: string) => /offloaded|WebGPU.*buffer|adapter/i.test(x)).slice(0, 6)) console.log(`    llama.cpp: ${l}`);
  // Where llama.cpp put the weights ("WebGPU", or "CPU" when ggml-webgpu registered no device: it needs shader-f16,
  // which NVIDIA's adapter only offers with the vulkan_enable_f16_on_nvidia toggle, and SwiftShader never).
  const backend =
    [
      ...new Set(
        load.log
          .filter((x: string) => /model buffer size/.test(x))
          .map((x: string) =>
            x
              .replace(/^\S+:\s*/, '')
              .split(' model buffer')[0]
              .trim(),
          ),
      ),
    ].join('+') || 'unknown';
  console.log(`  wllama ${shape}: weights on ${backend}`);
  if (!/WebGPU/i.test(backend) && !o.quick && !o.forcePeer) {
    await page.evaluate(async () => {
      await (window as any).__w.exit();
    });
    return {
      load: { ...load, context, loadErrors },
      backend,
      ttft: [],
      decode: [],
      note: `llama.cpp put the weights on ${backend}, not WebGPU: TTFT and decode not measured (the wasm CPU path is not the peer asked for)`,
    };
  }
  if (load.promptTokens !== 16)
    throw new Error(`wllama: the 16-token prompt became ${load.promptTokens} tokens (the synthetic vocabulary's text mapping broke)`);
  const complete = (text: string, maxTokens: number, n: number) =>
    page
      .evaluate(
        async ({ text, maxTokens }) => {
          const w = (window as any).__w;
          const t = performance.now();
          const r = await w.createCompletion({ prompt: text, max_tokens: maxTokens, temperature: 0, cache_prompt: false, ignore_eos: true });
          return { pageMs: performance.now() - t, promptTokens: r.usage.prompt_tokens as number, timings: r.timings };
        },
        { text, maxTokens },
      )
      .then((r) => {
        if (r.promptTokens !== n) throw new Error(`wllama: prompt of ${n} ids became ${r.promptTokens} tokens`);
        return r;
      });
  const ttft: { length: number; pageTtftMs: number; promptMs: number; runs: number[] }[] = [];
  for (const length of o.lengths) {
    if (length + 64 > fullContext) continue;
    if (length + 64 > context) {
      ttft.push({ length, pageTtftMs: NaN, promptMs: NaN, runs: [], error: `n_ctx ${2 * context} did not load: ${loadErrors.at(-1)?.error}` } as never);
      continue;
    }
    const ids = folder.promptIds(length, length);
    try {
      await complete(syntheticText(ids.slice(0, Math.min(ids.length, 512))), 1, Math.min(ids.length, 512));
      const runs = [];
      for (let r = 0; r < o.repeat; r++) runs.push(await complete(syntheticText(ids), 1, length));
      const row = {
        length,
        pageTtftMs: median(runs.map((x) => x.pageMs)),
        promptMs: median(runs.map((x) => x.timings?.prompt_ms)),
        runs: runs.map((x) => x.pageMs),
      };
      ttft.push(row);
      console.log(`  wllama ${shape} ${length}: TTFT ${row.pageTtftMs.toFixed(1)} ms (prompt_ms ${row.promptMs.toFixed(1)})`);
    } catch (e) {
      ttft.push({ length, pageTtftMs: NaN, promptMs: NaN, runs: [], error: (e as Error).message } as never);
      console.log(`  wllama ${shape} ${length}: FAILED ${(e as Error).message}`);
    }
  }
  const d = await complete(syntheticText(folder.promptIds(o.decodeContext, 3)), o.decodeTokens + 1, o.decodeContext);
  const decode = [{ context: o.decodeContext, tokPerS: d.timings?.predicted_per_second, completionTokens: d.timings?.predicted_n }];
  console.log(`  wllama ${shape}: decode after ${o.decodeContext}: ${decode[0].tokPerS?.toFixed(1)} tok/s (${decode[0].completionTokens} tokens)`);
  await page.evaluate(async () => {
    await (window as any).__w.exit();
  });
  return { load: { ...load, context, loadErrors }, backend, ttft, decode };
}

// ---------- parallel GGUF encoding ----------
interface EncodeSpec {
  shape: string;
  context: number;
}

/** Worker threads (this file again) that synthesize and quantize blocks of GGUF rows; see writeGguf's encode. */
class EncodePool {
  private idle: Worker[] = [];
  private all: Worker[] = [];
  private queue: { msg: { id: number; i: number; r0: number; n: number }; ok: (b: Uint8Array) => void; fail: (e: Error) => void }[] = [];
  private waiting = new Map<number, { ok: (b: Uint8Array) => void; fail: (e: Error) => void; w: Worker }>();
  private next = 1;
  constructor(n: number, spec: EncodeSpec) {
    for (let k = 0; k < n; k++) {
      const w = new Worker(new URL(import.meta.url), { workerData: { ggufEncodeWorker: spec } });
      w.on('message', (m: { id: number; bytes?: Uint8Array; error?: string }) => {
        const job = this.waiting.get(m.id)!;
        this.waiting.delete(m.id);
        if (m.error) job.fail(new Error(m.error));
        else job.ok(m.bytes!);
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (e: Error) => {
        for (const [id, j] of this.waiting)
          if (j.w === w) {
            this.waiting.delete(id);
            j.fail(e);
          }
      });
      this.all.push(w);
      this.idle.push(w);
    }
  }
  encode(i: number, r0: number, n: number): Promise<Uint8Array> {
    return new Promise((ok, fail) => {
      this.queue.push({ msg: { id: this.next++, i, r0, n }, ok, fail });
      this.pump();
    });
  }
  private pump() {
    while (this.idle.length && this.queue.length) {
      const job = this.queue.shift()!,
        w = this.idle.pop()!;
      this.waiting.set(job.msg.id, { ok: job.ok, fail: job.fail, w });
      w.postMessage(job.msg);
    }
  }
  async close() {
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}

async function runEncodeWorker(spec: EncodeSpec): Promise<void> {
  const { ck, opts } = await syntheticCheckpoint(spec.shape, { dtype: 'F16' });
  const { tensors } = ggufModel(ck, syntheticVocab(opts.vocabSize), 'internlm2', 'Q4_0', spec.context);
  parentPort!.on('message', async (m: { id: number; i: number; r0: number; n: number }) => {
    try {
      const t = tensors[m.i];
      const bytes = encodeTensorData(t.type, await t.rows(m.r0, m.n));
      parentPort!.postMessage({ id: m.id, bytes }, [bytes.buffer as ArrayBuffer]);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
}

// ---------- main ----------
async function main() {
  const o = options();
  if (o.bundle) {
    await bundleSelf(o.bundle);
    return;
  }
  if (!existsSync(join(o.app, 'sieve-chat.js'))) throw new Error(`${o.app}/sieve-chat.js is missing: run \`npm run build\` (or pass --app)`);
  const wasmFile = [join(o.wllama, 'wllama.wasm'), join(o.wllama, 'wasm/wllama.wasm'), join(o.wllama, 'wllama.wasm.gz')].find(existsSync);
  if (!wasmFile) throw new Error(`no wllama.wasm(.gz) under ${o.wllama}`);
  const wasm = wasmFile.endsWith('.gz') ? gunzipSync(readFileSync(wasmFile)) : readFileSync(wasmFile);
  mkdirSync(o.out, { recursive: true });
  const context = Math.max(...o.lengths, o.decodeContext) + 128;
  const served: Served = { virtual: new Map(), gguf: new Map(), wasm };
  const shapes: Record<string, { files: string[]; folder: VirtualFolder; exportS: number; ggufBytes: number }> = {};
  for (const shape of o.shapes) {
    const dir = join(o.ggufDir, shape);
    const t0 = performance.now();
    let files = existsSync(join(dir, 'done.json')) ? (JSON.parse(readFileSync(join(dir, 'done.json'), 'utf8')) as { files: string[] }).files : undefined;
    if (!files) {
      const { ck, opts } = await syntheticCheckpoint(shape, { dtype: 'F16' });
      console.log(`writing ${shape} as Q4_0 GGUF (internlm2) to ${dir} ...`);
      const pool = o.synthWorkers > 0 ? new EncodePool(o.synthWorkers, { shape, context }) : undefined;
      try {
        const r = await exportToDir({
          ck,
          vocab: syntheticVocab(opts.vocabSize),
          arch: 'internlm2',
          weights: 'Q4_0',
          dir,
          prefix: `${shape}-q4_0`,
          maxFileBytes: o.maxFileBytes,
          contextLength: context,
          encode: pool && ((i, r0, n) => pool.encode(i, r0, n)),
          ahead: pool ? 2 * o.synthWorkers : 1,
        });
        files = r.files;
      } finally {
        await pool?.close();
      }
      writeFileSync(join(dir, 'done.json'), JSON.stringify({ files }));
    }
    for (const f of files) served.gguf.set(f, join(dir, f));
    const folder = await prepareSynthetic(
      shape,
      { dtype: 'F16' },
      context,
      o.synthWorkers > 0 ? { mode: 'auto', workers: o.synthWorkers, workerUrl: new URL(import.meta.url) } : undefined,
    );
    served.virtual.set(folder.name, folder);
    shapes[shape] = { files, folder, exportS: (performance.now() - t0) / 1000, ggufBytes: files.reduce((a, f) => a + statSync(join(dir, f)).size, 0) };
    console.log(
      `${shape}: GGUF ${files.length} file(s), ${(shapes[shape].ggufBytes / 1e9).toFixed(2)} GB (${shapes[shape].exportS.toFixed(0)} s); sieve checkpoint ${(folder.stats.totalBytes / 1e9).toFixed(2)} GB F16, synthesized on request`,
    );
  }
  const server = await startServer(o, served);
  const base = process.env.CHROMIUM_GPU_ARGS ? process.env.CHROMIUM_GPU_ARGS.split(' ').filter(Boolean) : SWIFTSHADER;
  const flagSets = o.flags === 'both' ? [[...base, F16_FLAG], base] : o.flags === 'f16' ? [[...base, F16_FLAG]] : [base];
  const result: Record<string, unknown> = {
    bench: 'peer-llama',
    date: new Date().toISOString(),
    wllama: '3.8.1',
    options: { ...o, bundle: undefined },
    context,
    runs: [] as unknown[],
  };
  const save = () => writeFileSync(join(o.out, 'peer-llama.json'), JSON.stringify(result, null, 1));
  const table: string[][] = [];
  const mem = new GpuMemory();
  try {
    for (const args of flagSets) {
      const flags = args.includes(F16_FLAG) ? 'f16 toggle' : 'no f16 toggle';
      const browser: Browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
      const run: Record<string, unknown> = { flags, args, shapes: {} as Record<string, unknown> };
      (result.runs as unknown[]).push(run);
      try {
        for (const shape of o.shapes) {
          const s = shapes[shape];
          const entry: Record<string, unknown> = {};
          (run.shapes as Record<string, unknown>)[shape] = entry;
          console.log(`\n== ${shape}, ${flags}`);
          for (const side of ['sieve', 'wllama'] as const) {
            const page = await newPage(browser);
            page.setDefaultTimeout(o.timeoutMs);
            page.on('console', (m) => {
              const t = m.text();
              if (m.type() === 'error' || /ggml_webgpu|error|fail/i.test(t)) console.log(`  [page ${side}] ${t.slice(0, 400)}`);
            });
            page.on('pageerror', (e) => console.log(`  [page ${side}] ${e.message}`));
            await page.goto(`http://127.0.0.1:${server.port}/`);
            await page.waitForFunction(() => customElements.get('sieve-chat') !== undefined);
            run.adapter ??= await page.evaluate(async () => {
              const ad = await navigator.gpu?.requestAdapter();
              return ad
                ? {
                    vendor: ad.info.vendor,
                    architecture: ad.info.architecture,
                    description: ad.info.description,
                    f16: ad.features.has('shader-f16'),
                    subgroups: ad.features.has('subgroups'),
                  }
                : null;
            });
            const adapter = run.adapter as { f16?: boolean } | null;
            if (side === 'wllama' && !o.quick && !o.forcePeer && adapter && !adapter.f16) {
              entry[side] = {
                backend: 'skipped: no shader-f16',
                note: "llama.cpp's WebGPU backend needs shader-f16 (on NVIDIA: the vulkan_enable_f16_on_nvidia toggle); without it llama.cpp runs on its wasm CPU backend",
              };
              console.log(`  wllama ${shape}: skipped (the adapter has no shader-f16: llama.cpp would run on the CPU)`);
              await page.close();
              continue;
            }
            await mem.start();
            try {
              entry[side] =
                side === 'sieve' ? await sievePhase(page, o, shape, s.folder, context) : await wllamaPhase(page, o, shape, s.files, s.folder, context);
            } catch (e) {
              entry[side] = { error: (e as Error).message };
              console.log(`  ${side} ${shape} FAILED: ${(e as Error).message}`);
            }
            (entry[side] as Record<string, unknown>).gpuMemory = await mem.stop();
            await page.close();
            save();
          }
          const ids = (x: any) => x?.load?.firstIds as number[] | undefined;
          entry.sameFirstTokens = ids(entry.sieve) && ids(entry.wllama) ? JSON.stringify(ids(entry.sieve)) === JSON.stringify(ids(entry.wllama)) : undefined;
          console.log(
            `  greedy tokens after the 16-token prompt: sieve q4 ${JSON.stringify(ids(entry.sieve))}, llama.cpp Q4_0 ${JSON.stringify(ids(entry.wllama))}`,
          );
          rowsFor(table, shape, flags, entry as Record<'sieve' | 'wllama', any>, o);
        }
      } finally {
        await browser.close();
      }
    }
  } finally {
    save();
    server.close();
    for (const s of Object.values(shapes)) await s.folder.close();
  }
  const header = ['shape', 'flags', 'metric', 'sieve dense', 'sieve sample', 'llama.cpp', 'dense/peer', 'sample/peer'];
  console.log(
    `\n# sieve vs llama.cpp (wllama 3.8.1 WebGPU) on ${JSON.stringify((result.runs as any[])[0]?.adapter)}; time ratios < 1 and tok/s ratios > 1: sieve ahead`,
  );
  console.log(header.join('\t'));
  for (const r of table) console.log(r.join('\t'));
  result.table = { header, rows: table };
  save();
  console.log(`wrote ${join(o.out, 'peer-llama.json')}`);
}

function rowsFor(table: string[][], shape: string, flags: string, e: Record<'sieve' | 'wllama', any>, o: Opts) {
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? (a / b).toFixed(2) : '-');
  const s = e.sieve ?? {},
    w = e.wllama ?? {};
  if (s.error || w.error) table.push([shape, flags, 'error', s.error ?? '', '', w.error ?? '', '', '']);
  table.push([shape, flags, 'llama.cpp weights on', '', '', w.backend ?? '-', '', '']);
  table.push([
    shape,
    flags,
    'load to first token (s)',
    f(s.load?.toFirstTokenMs / 1000),
    '',
    f(w.load?.toFirstTokenMs / 1000),
    ratio(s.load?.toFirstTokenMs, w.load?.toFirstTokenMs),
    '',
  ]);
  for (const length of o.lengths) {
    const d = s.ttft?.find((r: any) => r.length === length && r.mode === 'dense'),
      sp = s.ttft?.find((r: any) => r.length === length && r.mode === 'sample');
    const p = w.ttft?.find((r: any) => r.length === length);
    if (!d && !sp && !p) continue;
    const cell = (r: any) => (r?.error ? `failed: ${String(r.error).slice(0, 60)}` : f(r?.pageTtftMs));
    table.push([shape, flags, `TTFT ${length} (ms)`, cell(d), cell(sp), cell(p), ratio(d?.pageTtftMs, p?.pageTtftMs), ratio(sp?.pageTtftMs, p?.pageTtftMs)]);
  }
  const sd = s.decode?.[0],
    wd = w.decode?.[0];
  table.push([shape, flags, `decode tok/s @${o.decodeContext}`, f(sd?.tokPerS), '', f(wd?.tokPerS), ratio(sd?.tokPerS, wd?.tokPerS), '']);
  table.push([
    shape,
    flags,
    'peak GPU MiB (delta)',
    f(s.gpuMemory?.deltaMiB, 0),
    '',
    f(w.gpuMemory?.deltaMiB, 0),
    ratio(s.gpuMemory?.deltaMiB, w.gpuMemory?.deltaMiB),
    '',
  ]);
}

/** --bundle OUT.mjs: this script as one ES module (externals: playwright-core, Node built-ins), for the GPU machine. */
async function bundleSelf(out: string) {
  const name = 'vite';
  const { build } = await import(/* @vite-ignore */ name);
  const { builtinModules } = await import('node:module');
  await build({
    configFile: false,
    logLevel: 'warn',
    ssr: { noExternal: true, external: ['playwright-core'] },
    build: {
      ssr: fileURLToPath(import.meta.url),
      outDir: dirname(resolve(out)),
      emptyOutDir: false,
      minify: false,
      target: 'node20',
      rollupOptions: {
        external: ['playwright-core', 'vite', 'webgpu', /^tsx/, ...builtinModules, ...builtinModules.map((m) => `node:${m}`)],
        output: { entryFileNames: basename(out), format: 'es', codeSplitting: false },
      },
    },
  });
  console.log(`wrote ${out}`);
}

if (!isMainThread && workerData?.ttftSynthWorker) {
  runSynthWorker(workerData.ttftSynthWorker);
} else if (!isMainThread && workerData?.ggufEncodeWorker) {
  void runEncodeWorker(workerData.ggufEncodeWorker);
} else if (isMainThread) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(`peer-llama: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
