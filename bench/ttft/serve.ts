/**
 * The HTTP side of the Chromium runners (bench/ttft/chromium.ts, bench/conformance-chromium.ts): static files and
 * synthesized model folders (bench/ttft/synthetic.ts) with Range support, served on 127.0.0.1, and the browser's
 * launch flags.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { VirtualFolder } from './synthetic.ts';

/** WebGPU on SwiftShader (the flags of playwright.config.ts): the browser's flags where $CHROMIUM_GPU_ARGS is not set. */
export const SWIFTSHADER_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-vulkan-surface',
  '--no-sandbox',
];

/**
 * Chromium's flags: $CHROMIUM_GPU_ARGS (../shared/gpu/setup-browser.sh, the GPU machine) or SWIFTSHADER_ARGS, with
 * --enable-unsafe-webgpu (subgroup matrices) and Dawn's vulkan_enable_f16_on_nvidia toggle added when missing: without
 * the toggle Dawn hides shader-f16 on NVIDIA's Vulkan driver, and with it the f16 subgroup matrices of the 'tensor' tier
 * (what getGpu sets in Node). A --enable-dawn-features flag already given gets the toggle appended.
 */
export function chromiumArgs(env: Record<string, string | undefined> = process.env): string[] {
  const args = env.CHROMIUM_GPU_ARGS ? env.CHROMIUM_GPU_ARGS.split(' ').filter(Boolean) : [...SWIFTSHADER_ARGS];
  if (!args.includes('--enable-unsafe-webgpu')) args.push('--enable-unsafe-webgpu');
  const F16 = 'vulkan_enable_f16_on_nvidia';
  const at = args.findIndex((a) => a.startsWith('--enable-dawn-features='));
  if (at < 0) args.push(`--enable-dawn-features=${F16}`);
  else if (!args[at].split('=')[1].split(',').includes(F16)) args[at] += `,${F16}`;
  return args;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** Writes the status and headers of a (Range) response; returns [start, end], or undefined when the response is done. */
export function head(req: IncomingMessage, res: ServerResponse, size: number, type: string): [number, number] | undefined {
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

export function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
}

/** Static files with HTTP Range support (the URL model source reads shards by ranges). */
export function serveFile(req: IncomingMessage, res: ServerResponse, file: string): void {
  const st = existsSync(file) ? statSync(file) : undefined;
  if (!st?.isFile()) return notFound(res);
  const r = head(req, res, st.size, extname(file));
  if (r) createReadStream(file, { start: r[0], end: r[1] }).pipe(res);
}

/** A synthesized file (bench/ttft/synthetic.ts), streamed in bounded chunks with backpressure. */
export async function serveVirtual(req: IncomingMessage, res: ServerResponse, folder: VirtualFolder, rel: string): Promise<void> {
  const size = folder.size(rel);
  if (size === undefined) return notFound(res);
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
    console.error(`server: ${rel}: ${(e as Error).message}`);
    res.destroy();
  }
}
