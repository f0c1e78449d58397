/**
 * urlSource: a checkpoint folder at a URL. Without a cache, every read is an
 * HTTP Range request (a failed range is retried with backoff). In a browser
 * with the Cache API, each binary file is downloaded once, streamed straight
 * into the cache (never held in JS memory), and then read as slices of the
 * cached Blob; a second visit reads nothing from the network. Cache entries
 * are keyed by URL plus size/ETag and carry a checksum written after the body
 * completed, so a truncated or corrupt entry is detected and refetched.
 */
import { AbortedError, MissingFileError, ModelFormatError, NetworkError } from '../errors.ts';
import type { FileSource } from './source.ts';
import { resolveInFolder } from './paths.ts';
import { checkRange } from './sources.ts';

export interface ByteProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface UrlSourceOptions {
  /** Use the Cache API when available (default true). */
  cache?: boolean;
  /** Cache name (default 'sieve-models-v1'). */
  cacheName?: string;
  /**
   * Check a cached file against the server (one HEAD request: size and ETag)
   * and refetch it when it changed. Default false: a cached file is used
   * without any request, so a second visit works offline.
   */
  revalidate?: boolean;
  /** Retries of a failed request (default 3). */
  retries?: number;
  /**
   * Download progress of each file cached whole (Cache API). Uncached Range
   * reads are not reported here: loadWeights' onProgress counts those bytes.
   */
  onProgress?: (p: ByteProgress) => void;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /**
   * Row blocks loadWeights reads ahead (its `readAhead`): uncached Range
   * requests are latency-bound, so several are kept in flight. Default 3.
   */
  readAhead?: number;
}

export const DEFAULT_CACHE = 'sieve-models-v1';

/** FNV-1a over 32-bit little-endian words (tail bytes padded with zero): cheap corruption check. */
export class Checksum {
  private h = 0x811c9dc5;
  private tail = new Uint8Array(4);
  private tailLen = 0;
  update(b: Uint8Array): void {
    let i = 0;
    while (this.tailLen > 0 && this.tailLen < 4 && i < b.length) this.tail[this.tailLen++] = b[i++];
    if (this.tailLen === 4) {
      this.word(this.tail[0] | (this.tail[1] << 8) | (this.tail[2] << 16) | (this.tail[3] << 24));
      this.tailLen = 0;
    }
    const n = (b.length - i) & ~3;
    if (n > 0) {
      const al = (b.byteOffset + i) % 4 === 0;
      const words = al ? new Uint32Array(b.buffer, b.byteOffset + i, n / 4) : new Uint32Array(b.slice(i, i + n).buffer);
      for (let k = 0; k < words.length; k++) this.word(words[k]);
      i += n;
    }
    while (i < b.length) this.tail[this.tailLen++] = b[i++];
  }
  private word(w: number): void {
    this.h = Math.imul(this.h ^ w, 0x01000193) >>> 0;
  }
  digest(): string {
    const h = new Checksum();
    h.h = this.h;
    if (this.tailLen) {
      for (let k = this.tailLen; k < 4; k++) this.tail[k] = 0;
      h.word(this.tail[0] | (this.tail[1] << 8) | (this.tail[2] << 16) | (this.tail[3] << 24));
    }
    return h.h.toString(16).padStart(8, '0');
  }
}

interface CacheMeta {
  url: string;
  size: number;
  etag: string;
  checksum: string;
}

export function urlSource(baseUrl: string, opts: UrlSourceOptions = {}): FileSource & { cacheHits: string[]; readAhead: number } {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const doFetch = opts.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const retries = opts.retries ?? 3;
  const cacheApi = (globalThis as { caches?: CacheStorage }).caches;
  const useCache = (opts.cache ?? true) && !!cacheApi;
  const openCache = () => cacheApi!.open(opts.cacheName ?? DEFAULT_CACHE);
  const sizes = new Map<string, number>();
  const blobs = new Map<string, Promise<Blob>>();
  const cacheHits: string[] = [];
  let baseHref: string | undefined;
  const folderHref = () => (baseHref ??= typeof location !== 'undefined' ? new URL(base, location.href).href : new URL(base).href);
  // Every file is resolved inside the folder: same origin, path under the folder's (paths.ts).
  const urlOf = (p: string) => resolveInFolder(folderHref(), p);

  function checkAbort(): void {
    if (opts.signal?.aborted) throw new AbortedError('loading was aborted');
  }

  async function withRetry<T>(what: string, p: string, f: () => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      checkAbort();
      try {
        return await f();
      } catch (e) {
        if (e instanceof MissingFileError || e instanceof AbortedError || e instanceof ModelFormatError || isQuota(e)) throw e;
        last = e;
        if (attempt < retries) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
    throw new NetworkError(`${p}: ${what} failed after ${retries + 1} attempts: ${(last as Error)?.message ?? last}`, { file: p, url: urlOf(p) });
  }

  async function head(p: string): Promise<{ size: number; etag: string }> {
    return withRetry('HEAD', p, async () => {
      const r = await doFetch(urlOf(p), { method: 'HEAD', signal: opts.signal });
      if (r.status === 404) throw new MissingFileError(p, `not found at ${urlOf(p)} (HTTP 404)`, { url: urlOf(p) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const etag = r.headers.get('etag') ?? '';
      const cl = r.headers.get('content-length');
      if (cl !== null && Number.isSafeInteger(Number(cl))) return { size: Number(cl), etag };
      // No usable Content-Length (e.g. a compressing server): ask for one byte and read the total from Content-Range.
      const probe = await doFetch(urlOf(p), { headers: { Range: 'bytes=0-0' }, signal: opts.signal });
      const total = /\/(\d+)$/.exec(probe.headers.get('content-range') ?? '')?.[1];
      await probe.body?.cancel();
      if (probe.status !== 206 || total === undefined) throw new Error('the server reports neither Content-Length nor Content-Range');
      return { size: Number(total), etag };
    });
  }

  /** Cached Blob of a file, downloading it into the cache first if needed. */
  async function cachedBlob(p: string): Promise<Blob> {
    const cache = await openCache();
    const url = urlOf(p);
    const metaKey = `${url}${url.includes('?') ? '&' : '?'}sieve-meta`; // not '#': the Cache API ignores fragments, so a '#' key would overwrite the file itself
    const metaRes = await cache.match(metaKey);
    if (metaRes) {
      const meta = (await metaRes.json()) as CacheMeta;
      const res = await cache.match(url);
      if (res) {
        const blob = await res.blob();
        const fresh =
          !opts.revalidate ||
          (await head(p).then(
            (h) => h.size === meta.size && h.etag === meta.etag,
            () => true,
          ));
        if (fresh && blob.size === meta.size && (await blobChecksum(blob)) === meta.checksum) {
          cacheHits.push(p);
          return blob;
        }
      }
      // Corrupt, incomplete or changed on the server: drop both and refetch.
      await cache.delete(url);
      await cache.delete(metaKey);
    }
    const { size, etag } = await head(p);
    await withRetry('download', p, async () => {
      const r = await doFetch(url, { signal: opts.signal });
      if (r.status === 404) throw new MissingFileError(p, `not found at ${url} (HTTP 404)`, { url });
      if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
      const sum = new Checksum();
      let done = 0;
      const counted = r.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            sum.update(chunk);
            done += chunk.byteLength;
            opts.onProgress?.({ file: p, bytesDone: done, bytesTotal: size });
            ctl.enqueue(chunk);
          },
        }),
      );
      await cache.put(url, new Response(counted, { headers: { 'content-type': 'application/octet-stream', 'x-sieve-size': String(size), etag } }));
      if (done !== size) {
        await cache.delete(url);
        throw new Error(`received ${done} of ${size} bytes`);
      }
      const meta: CacheMeta = { url, size, etag, checksum: sum.digest() };
      await cache.put(metaKey, new Response(JSON.stringify(meta), { headers: { 'content-type': 'application/json' } }));
    });
    const res = await cache.match(url);
    if (!res) throw new NetworkError(`${p}: the browser cache dropped the file right after storing it`, { file: p });
    return res.blob();
  }

  // Which files of the folder exist, so a second visit needs no probe requests
  // (e.g. for model.safetensors.index.json); kept in the cache beside the files.
  const manifestKey = () => `${folderHref()}?sieve-manifest`; // a query, not '#': the Cache API ignores fragments
  let manifest: Promise<Record<string, boolean>> | undefined;
  function loadManifest(): Promise<Record<string, boolean>> {
    return (manifest ??= (async () => {
      if (!useCache) return {};
      const r = await (await openCache()).match(manifestKey());
      try {
        return r ? ((await r.json()) as Record<string, boolean>) : {};
      } catch {
        return {};
      }
    })());
  }
  async function manifestHas(p: string): Promise<boolean | undefined> {
    return (await loadManifest())[p];
  }
  async function remember(p: string, found: boolean): Promise<void> {
    if (!useCache) return;
    const m = await loadManifest();
    if (m[p] === found) return;
    m[p] = found;
    await (await openCache()).put(manifestKey(), new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json' } }));
  }

  /** Files kept in the Cache API: weights, unless the cache refused them (quota). */
  const refused = new Set<string>();
  const cachedFile = (p: string) => useCache && /\.(safetensors|bin)$/.test(p) && !refused.has(p);
  /** A full cache (QuotaExceededError) is not fatal: that file is read with Range requests instead. */
  function uncache<T>(p: string, e: unknown, fallback: () => Promise<T> | T): Promise<T> | T {
    if (!isQuota(e)) throw e;
    refused.add(p);
    return fallback();
  }

  function blob(p: string): Promise<Blob> {
    let b = blobs.get(p);
    if (!b) {
      b = cachedBlob(p);
      blobs.set(p, b);
      b.catch(() => blobs.delete(p));
    }
    return b;
  }

  const src = {
    name: base,
    cacheHits,
    readAhead: opts.readAhead ?? 3,
    async has(p: string) {
      urlOf(p);
      const known = await manifestHas(p);
      if (known !== undefined) return known;
      let found: boolean;
      try {
        await src.size(p);
        found = true;
      } catch (e) {
        if (!(e instanceof MissingFileError)) throw e;
        found = false;
      }
      await remember(p, found);
      return found;
    },
    async size(p: string) {
      urlOf(p);
      const known = sizes.get(p);
      if (known !== undefined) return known;
      const n = cachedFile(p)
        ? await blob(p).then(
            (b) => b.size,
            (e) => uncache(p, e, () => head(p).then((h) => h.size)),
          )
        : (await head(p)).size;
      sizes.set(p, n);
      return n;
    },
    async read(p: string, offset: number, length: number) {
      checkRange(p, offset, length, await src.size(p));
      if (length === 0) return new Uint8Array(0);
      if (cachedFile(p)) {
        const b = await blob(p).catch((e) => uncache(p, e, () => undefined));
        if (b) return new Uint8Array(await b.slice(offset, offset + length).arrayBuffer());
      }
      return withRetry(`range ${offset}+${length}`, p, async () => {
        const r = await doFetch(urlOf(p), { headers: { Range: `bytes=${offset}-${offset + length - 1}` }, signal: opts.signal });
        if (r.status === 404) throw new MissingFileError(p, `not found at ${urlOf(p)} (HTTP 404)`);
        if (r.status !== 206 && !(r.status === 200 && offset === 0 && length === sizes.get(p))) throw new Error(`HTTP ${r.status} for a Range request`);
        const buf = new Uint8Array(await r.arrayBuffer());
        if (buf.byteLength !== length) throw new Error(`received ${buf.byteLength} of ${length} bytes`);
        return buf;
      });
    },
    async text(p: string) {
      urlOf(p);
      if (useCache) {
        const cache = await openCache();
        const hit = await cache.match(urlOf(p));
        if (hit) return hit.text();
      }
      const text = await withRetry('GET', p, async () => {
        const r = await doFetch(urlOf(p), { signal: opts.signal });
        if (r.status === 404) throw new MissingFileError(p, `not found at ${urlOf(p)} (HTTP 404)`);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.text();
      });
      if (useCache) await (await openCache()).put(urlOf(p), new Response(text));
      return text;
    },
  };
  return src;
}

function isQuota(e: unknown): boolean {
  return (e as { name?: string })?.name === 'QuotaExceededError';
}

async function blobChecksum(blob: Blob): Promise<string> {
  const sum = new Checksum();
  const chunk = 16 << 20;
  for (let o = 0; o < blob.size; o += chunk) sum.update(new Uint8Array(await blob.slice(o, o + chunk).arrayBuffer()));
  return sum.digest();
}
