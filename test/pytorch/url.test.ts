/**
 * A PyTorch checkpoint at a URL is indexed with HTTP Range requests only
 * (central directory, data.pkl, local headers), never a whole-file GET, and
 * gives the same TensorEntry records as the local folder.
 */
import { createServer, type Server } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPytorchCheckpoint } from '../../src/loader/pytorch/checkpoint.ts';
import { urlSource } from '../../src/loader/url-source.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { dirSource } from './helpers.ts';

let server: Server;
let base = '';
const requests: { path: string; range?: string; bytes: number }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = `${FIXTURES}pytorch/${decodeURIComponent(req.url!.slice(1))}`;
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': size }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const body = readFileSync(path);
    if (m) {
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), size - 1)];
      requests.push({ path: req.url!, range: req.headers.range, bytes: b - a + 1 });
      res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${size}` }).end(body.subarray(a, b + 1));
    } else {
      requests.push({ path: req.url!, bytes: size });
      res.writeHead(200, { 'content-length': size }).end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('PyTorch checkpoint over HTTP', () => {
  it('sharded-bf16: Range requests only, a fraction of the bytes, same entries as on disk', async () => {
    const url = urlSource(`${base}sharded-bf16`, { cache: false });
    const ck = await readPytorchCheckpoint(url);
    const local = await readPytorchCheckpoint(dirSource(`${FIXTURES}pytorch/sharded-bf16`));
    expect(ck.entries).toEqual(local.entries);
    const bins = requests.filter((r) => r.path.endsWith('.bin'));
    expect(bins.length).toBeGreaterThan(0);
    expect(bins.every((r) => r.range !== undefined)).toBe(true);
    const served = bins.reduce((a, r) => a + r.bytes, 0);
    const total = ck.files.reduce((a, f) => a + statSync(`${FIXTURES}pytorch/sharded-bf16/${f}`).size, 0);
    expect(served).toBeLessThan(total * 0.5);
  });
});
