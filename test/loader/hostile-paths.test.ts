/**
 * Issue 20, failure 7: shard names resolve only inside the model folder. An
 * index naming an absolute URL, `\\host\path` or `%2e%2e/` makes no request
 * outside the folder (none at all for the shard) and ends in a
 * ModelFormatError; the same for Node folders.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.ts';
import { checkFolderPath, resolveInFolder, unsafePathReason } from '../../src/loader/paths.ts';
import { readCheckpoint } from '../../src/loader/safetensors.ts';
import { readPytorchCheckpoint } from '../../src/loader/pytorch/checkpoint.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { urlSource } from '../../src/loader/url-source.ts';
import { rawSafetensors } from './mem-source.ts';

const shard = rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4);
const HOSTILE = [
  'http://127.0.0.1:PORT/evil.safetensors',
  '//127.0.0.1:PORT/evil.safetensors',
  '\\\\127.0.0.1\\share\\evil.safetensors',
  '%2e%2e/secret.safetensors',
  '%2E%2E%2Fsecret.safetensors',
  '../secret.safetensors',
  'sub/../../secret.safetensors',
  './model.safetensors',
  '/etc/passwd',
  'C:\\Windows\\evil',
  'file:///etc/passwd',
  'x.safetensors?x=1',
  'a\u0000b',
  '..\\secret.safetensors',
];

let folderServer: Server;
let otherServer: Server;
let base = '';
let otherPort = 0;
const folderLog: string[] = [];
const otherLog: string[] = [];
let index = '';

beforeAll(async () => {
  folderServer = createServer((req, res) => {
    folderLog.push(req.url!);
    const body =
      req.url === '/models/m/model.safetensors.index.json' ? Buffer.from(index) : req.url === '/models/m/model.safetensors' ? Buffer.from(shard) : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': body.byteLength }).end();
      return;
    }
    if (m) {
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.byteLength - 1)];
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${body.byteLength}` }).end(body.subarray(a, b + 1));
    } else res.writeHead(200).end(body);
  });
  otherServer = createServer((req, res) => {
    otherLog.push(req.url!);
    res.writeHead(200, { 'content-length': 4 }).end('evil');
  });
  await new Promise<void>((r) => folderServer.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => otherServer.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(folderServer.address() as { port: number }).port}/models/m/`;
  otherPort = (otherServer.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => folderServer.close(() => r()));
  await new Promise<void>((r) => otherServer.close(() => r()));
});

describe('URL sources: shard names stay in the folder', () => {
  it('each hostile shard name is a ModelFormatError and nothing outside the folder is requested', async () => {
    for (const h of HOSTILE) {
      const name = h.replace('PORT', String(otherPort));
      index = JSON.stringify({ weight_map: { w: name } });
      folderLog.length = 0;
      const src = urlSource(base, { cache: false, retries: 0 });
      const err = await readCheckpoint(src).then(
        () => undefined,
        (e) => e,
      );
      expect(err, name).toBeInstanceOf(ModelFormatError);
      expect((err as Error).message, name).toMatch(/is not a file name in the folder/);
      for (const u of folderLog) expect(u.startsWith('/models/m/'), u).toBe(true);
      expect(
        folderLog.filter((u) => u !== '/models/m/model.safetensors.index.json'),
        name,
      ).toEqual([]);
    }
    expect(otherLog).toEqual([]);
  });

  it('the source itself refuses such paths, whoever asks, without a request', async () => {
    const src = urlSource(base, { cache: false, retries: 0 });
    folderLog.length = 0;
    for (const h of HOSTILE) {
      const p = h.replace('PORT', String(otherPort));
      for (const op of [() => src.size(p), () => src.read(p, 0, 1), () => src.text(p), () => src.has(p)]) {
        await expect(op(), p).rejects.toBeInstanceOf(ModelFormatError);
      }
    }
    expect(folderLog).toEqual([]);
    expect(otherLog).toEqual([]);
    // The resolved URL is checked too: same origin, under the folder's path.
    expect(() => resolveInFolder(base, 'ok.safetensors')).not.toThrow();
    expect(resolveInFolder(base, 'sub/x.json')).toBe(`${base}sub/x.json`);
  });

  it('a good sharded index still loads over HTTP', async () => {
    index = JSON.stringify({ weight_map: { w: 'model.safetensors' } });
    const ck = await readCheckpoint(urlSource(base, { cache: false }));
    expect(ck.entries.map((e) => e.name)).toEqual(['w']);
  });
});

describe('Node folders: shard names stay in the folder', () => {
  it('safetensors and PyTorch indexes naming paths outside are ModelFormatErrors; the source refuses them too', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sieve-paths-'));
    try {
      const dir = join(root, 'model');
      mkdirSync(dir);
      writeFileSync(join(root, 'secret.safetensors'), shard);
      writeFileSync(join(dir, 'model.safetensors'), shard);
      for (const h of HOSTILE) {
        const name = h.replace('PORT', '1');
        writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: name } }));
        await expect(readCheckpoint(nodeSource(dir)), name).rejects.toBeInstanceOf(ModelFormatError);
      }
      rmSync(join(dir, 'model.safetensors.index.json'));
      writeFileSync(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { w: '../secret.bin' } }));
      await expect(readPytorchCheckpoint(nodeSource(dir))).rejects.toThrow(/not a file name in the folder/);
      const src = nodeSource(dir);
      await expect(src.read('../secret.safetensors', 0, 4)).rejects.toBeInstanceOf(ModelFormatError);
      await expect(src.has('../secret.safetensors')).rejects.toBeInstanceOf(ModelFormatError);
      await expect(src.text('/etc/passwd')).rejects.toBeInstanceOf(ModelFormatError);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the path rule: plain relative names pass, everything else has a reason', () => {
    for (const ok of ['model.safetensors', 'model-00001-of-00002.safetensors', 'sub/dir/x.bin', 'ünïcode.bin', 'a..b.bin'])
      expect(unsafePathReason(ok), ok).toBeUndefined();
    for (const h of HOSTILE) expect(unsafePathReason(h), h).toBeDefined();
    expect(() => checkFolderPath('', 'x')).toThrow(ModelFormatError);
  });
});
