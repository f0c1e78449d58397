/**
 * Fuzz: shard indexes (model.safetensors.index.json, pytorch_model.bin.index.json)
 * read through Node folder sources and URL sources (a real HTTP server on
 * 127.0.0.1, plus a second "other origin" server that must never be asked
 * for anything). 1,000 seeded cases per source kind: hostile shard names
 * (traversal, encoded dots, backslashes, absolute URLs, schemes...), broken
 * structure and byte mutations. Each case ends in a result or a typed error
 * within the harness's bounds; URL cases request nothing outside the folder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPytorchCheckpoint } from '../../src/loader/pytorch/checkpoint.ts';
import { readCheckpoint } from '../../src/loader/safetensors.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { urlSource } from '../../src/loader/url-source.ts';
import type { Rng } from '../../src/util/rng.ts';
import { rawSafetensors } from '../loader/mem-source.ts';
import { mutateBytes, pick, runFuzz } from './harness.ts';

const S1 = 'model-00001-of-00002.safetensors';
const S2 = 'model-00002-of-00002.safetensors';
const shard1 = rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8);
const shard2 = rawSafetensors({ c: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 8);

let root = '';
let dir = '';
let folder: Server;
let other: Server;
let base = '';
let otherBase = '';
const folderLog: string[] = [];
const otherLog: string[] = [];
let indexName = 'model.safetensors.index.json';
let indexBody = Buffer.alloc(0);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sieve-fuzz-index-'));
  dir = join(root, 'm');
  mkdirSync(dir);
  writeFileSync(join(dir, S1), shard1);
  writeFileSync(join(dir, S2), shard2);
  writeFileSync(join(root, 'secret.safetensors'), shard2);
  folder = createServer((req, res) => {
    folderLog.push(req.url!);
    let body: Buffer | undefined;
    if (req.url === `/m/${indexName}`) body = indexBody;
    else if (req.url === `/m/${S1}` || req.url === `/m/${S2}`) body = readFileSync(join(dir, req.url.slice(3)));
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': body.byteLength }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m) {
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.byteLength - 1)];
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${body.byteLength}` }).end(body.subarray(a, b + 1));
    } else res.writeHead(200).end(body);
  });
  other = createServer((req, res) => {
    otherLog.push(req.url!);
    res.writeHead(200, { 'content-length': shard2.byteLength }).end(Buffer.from(shard2));
  });
  await new Promise<void>((r) => folder.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(folder.address() as { port: number }).port}/m/`;
  otherBase = `http://127.0.0.1:${(other.address() as { port: number }).port}/`;
});

afterAll(async () => {
  await new Promise<void>((r) => folder.close(() => r()));
  await new Promise<void>((r) => other.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

const SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E',
  '%2f',
  '%5c',
  S1,
  S2,
  'x',
  '',
  '\\',
  '\\\\host',
  'http:',
  'evil',
  'C:',
  '?q',
  '#f',
  '\u0000',
  'ü',
  '~',
  ' ',
  'm',
  'secret.safetensors',
];

function shardName(rng: Rng): unknown {
  const r = rng.next();
  if (r < 0.45) return pick(rng, [S1, S2]);
  if (r < 0.55)
    return pick(rng, [
      `${otherBase}secret.safetensors`,
      `//${otherBase.slice(7)}x`,
      `${base}${S1}`,
      `file://${root}/secret.safetensors`,
      `${root}/secret.safetensors`,
    ]);
  if (r < 0.6) return pick(rng, [null, 7, [], {}, true, 'a'.repeat(3000)]);
  const n = 1 + rng.int(4);
  return Array.from({ length: n }, () => pick(rng, SEGMENTS)).join(rng.next() < 0.8 ? '/' : '\\');
}

function indexText(rng: Rng): string {
  const map: Record<string, unknown> = { a: S1, b: S1, c: S2 };
  const edits = rng.int(4);
  for (let k = 0; k < edits; k++) {
    const r = rng.int(6);
    if (r <= 2) map[pick(rng, ['a', 'b', 'c'])] = shardName(rng);
    else if (r === 3) map[`extra${k}`] = shardName(rng);
    else if (r === 4) delete map[pick(rng, ['a', 'b', 'c'])];
    else for (let i = 0; i < rng.int(2000); i++) map[`t${i}`] = S1;
  }
  let top: unknown = { metadata: { total_size: 16 }, weight_map: map };
  if (rng.next() < 0.05) top = pick(rng, [{ weight_map: [] }, { weight_map: null }, [], 'x', { weight_map: 'm' }, {}]);
  const text = JSON.stringify(top);
  return rng.next() < 0.15 ? new TextDecoder().decode(mutateBytes(rng, new TextEncoder().encode(text))) : text;
}

/**
 * fetch for the URL cases: serves the folder from memory (no sockets: 1,000
 * cases in a second or two) and records every URL asked for; any URL outside
 * the folder's origin and path is recorded as such. A share of the cases goes
 * over the real HTTP servers instead.
 */
const fetchLog: string[] = [];
const stubFetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  fetchLog.push(url.href);
  if (!url.href.startsWith(base)) return new Response(null, { status: 404 });
  const name = url.pathname.slice(3);
  const body = name === indexName ? indexBody : name === S1 ? Buffer.from(shard1) : name === S2 ? Buffer.from(shard2) : undefined;
  if (!body) return new Response(null, { status: 404 });
  if (init?.method === 'HEAD') return new Response(null, { status: 200, headers: { 'content-length': String(body.byteLength) } });
  const range = new Headers(init?.headers).get('range');
  const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
  if (m) {
    const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.byteLength - 1)];
    return new Response(body.subarray(a, b + 1), { status: 206, headers: { 'content-range': `bytes ${a}-${b}/${body.byteLength}` } });
  }
  return new Response(body, { status: 200 });
}) as typeof fetch;

async function readIndex(src: FileSource, pytorch: boolean): Promise<string[]> {
  return pytorch ? (await readPytorchCheckpoint(src)).files : (await readCheckpoint(src)).files;
}

describe('fuzz: shard indexes', () => {
  it('1,000 seeded indexes through a Node folder: a result inside the folder or a typed error', async () => {
    let okFiles = 0;
    const stats = await runFuzz('shard index (Node folder)', 1000, 23, { perCaseMs: 2000, heapMiB: 512 }, async (rng) => {
      const pytorch = rng.next() < 0.2;
      rmSync(join(dir, 'model.safetensors.index.json'), { force: true });
      rmSync(join(dir, 'pytorch_model.bin.index.json'), { force: true });
      writeFileSync(join(dir, pytorch ? 'pytorch_model.bin.index.json' : 'model.safetensors.index.json'), indexText(rng));
      const files = await readIndex(nodeSource(dir), pytorch);
      for (const f of files) expect([S1, S2]).toContain(f);
      okFiles++;
    });
    expect(stats.ok).toBe(okFiles);
    expect(stats.ok).toBeGreaterThan(50);
    expect(stats.errors.get('ModelFormatError') ?? 0).toBeGreaterThan(100);
  });

  it('1,000 seeded indexes through a URL source: nothing requested outside the folder', async () => {
    const stats = await runFuzz('shard index (URL)', 1000, 24, { perCaseMs: 2000, heapMiB: 512 }, async (rng, i) => {
      const pytorch = rng.next() < 0.2;
      indexName = pytorch ? 'pytorch_model.bin.index.json' : 'model.safetensors.index.json';
      indexBody = Buffer.from(indexText(rng));
      folderLog.length = 0;
      fetchLog.length = 0;
      // Every 20th case over real sockets, the rest through the in-memory fetch.
      const overHttp = i % 20 === 0;
      try {
        const files = await readIndex(urlSource(base, { cache: false, retries: 0, fetch: overHttp ? undefined : stubFetch }), pytorch);
        for (const f of files) expect([S1, S2]).toContain(f);
      } finally {
        for (const u of folderLog) expect(u.startsWith('/m/'), u).toBe(true);
        for (const u of fetchLog) expect(u.startsWith(base), u).toBe(true);
        expect(otherLog).toEqual([]);
      }
    });
    expect(stats.ok).toBeGreaterThan(50);
    expect(stats.errors.get('ModelFormatError') ?? 0).toBeGreaterThan(100);
  });
});
