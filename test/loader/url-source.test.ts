import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { firstDiff } from './mem-source.ts';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';
import { urlSource, Checksum } from '../../src/loader/url-source.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { readWeightRaw } from '../helpers/readback.ts';
import { MissingFileError, NetworkError } from '../../src/errors.ts';

// A real HTTP server over the fixtures with Range support; `failNext` makes
// the next N range requests fail with 503 (to exercise retries).
let server: Server;
let base = '';
let failNext = 0;
const log: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    // /nolen/...: HEAD without Content-Length (as a compressing server may answer).
    const noLen = req.url!.startsWith('/nolen/');
    const path = FIXTURES + decodeURIComponent(req.url!.slice(noLen ? 7 : 1));
    log.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`);
    if (!existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const size = statSync(path).size;
    if (req.method === 'HEAD') {
      res.writeHead(200, noLen ? { etag: '"x"' } : { 'content-length': size, etag: '"x"' }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m && failNext > 0) {
      failNext--;
      res.writeHead(503).end();
      return;
    }
    const body = readFileSync(path);
    if (m) {
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), size - 1)];
      res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${size}` }).end(body.subarray(a, b + 1));
    } else res.writeHead(200, { 'content-length': size }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('urlSource over HTTP (Range requests)', () => {
  it('loads internlm2-tiny (sharded) from a URL identically to the local folder, retrying failed ranges', async () => {
    const ctx = await testGpu();
    const progress: { file: string; bytesDone: number; bytesTotal: number }[] = [];
    const url = urlSource(`${base}golden/internlm2-tiny`, { retries: 2 });
    const m = await readModel(url);
    failNext = 2; // the first two data ranges fail once each
    log.length = 0;
    const wUrl = await loadWeights(ctx, url, m.spec, m.plan, { format: 'f16', onProgress: (p) => progress.push(p) });
    expect(log.filter((l) => l.includes('bytes=')).length).toBeGreaterThan(m.plan.recipes.length);
    const local = nodeSource(`${FIXTURES}golden/internlm2-tiny`);
    const wLocal = await loadWeights(ctx, local, m.spec, (await readModel(local)).plan, { format: 'f16' });
    for (const [name, w] of wUrl)
      expect(firstDiff((await readWeightRaw(ctx, w))[0].data, (await readWeightRaw(ctx, wLocal.get(name)!))[0].data), name).toBe(-1);
    releaseWeights(ctx, wUrl.values());
    releaseWeights(ctx, wLocal.values());
    await local.close();
    expect(progress.some((p) => p.file === 'model-00002-of-00002.safetensors')).toBe(true);
    expect(progress.at(-1)!.bytesDone).toBe(progress.at(-1)!.bytesTotal);
  });
  it('a missing file is MissingFileError; a range that keeps failing is NetworkError naming the file', async () => {
    const url = urlSource(`${base}golden/nowhere`, { retries: 1 });
    await expect(readModel(url)).rejects.toThrow(MissingFileError);
    const s = urlSource(`${base}stories260k`, { retries: 1 });
    failNext = 10;
    await expect(s.read('model.safetensors', 0, 8)).rejects.toThrow(NetworkError);
    await expect(s.read('model.safetensors', 0, 8)).rejects.toThrow(/^model\.safetensors: range 0\+8 failed after 2 attempts/);
    failNext = 0;
  });
});

describe('urlSource sizes', () => {
  it('without Content-Length on HEAD, the size comes from a one-byte Range request', async () => {
    const s = urlSource(`${base}nolen/stories260k`);
    expect(await s.size('model.safetensors')).toBe(1175032);
    expect(await s.has('nope.safetensors')).toBe(false);
  });
});

describe('cache checksum', () => {
  it('is independent of how the bytes are chunked and detects a flipped byte', () => {
    const b = new Uint8Array(readFileSync(`${FIXTURES}stories260k/tokenizer.model`));
    const whole = new Checksum();
    whole.update(b);
    const parts = new Checksum();
    for (let o = 0; o < b.length;) {
      const n = 1 + ((o * 7919) % 1013);
      parts.update(b.subarray(o, o + n));
      o += n;
    }
    expect(parts.digest()).toBe(whole.digest());
    b[1234] ^= 1;
    const flipped = new Checksum();
    flipped.update(b);
    expect(flipped.digest()).not.toBe(whole.digest());
  });
});
