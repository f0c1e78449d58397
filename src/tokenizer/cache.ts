/**
 * Cache of tokenizer.json objects converted from tokenizer.model, keyed by
 * the SHA-256 of the model bytes (and a format version). Node: process
 * memory. Browser: the Cache API as well, so a page reload skips the
 * conversion (a 92k-piece model's merge derivation takes a noticeable moment).
 */
import type { TokenizerJson } from './convert.ts';

const FORMAT = 'spm-v1';
const CACHE_NAME = 'sieve-tokenizers';
const memory = new Map<string, Promise<TokenizerJson>>();

/**
 * SHA-256 of the bytes (hex). Pages served over plain http (not localhost) have
 * no crypto.subtle: they get a 64-bit FNV-1a of the bytes and their length instead.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (globalThis.crypto?.subtle) {
    const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i], 0x01000193);
    h2 = Math.imul(h2 ^ bytes[i] ^ (i & 0xff), 0x5bd1e995);
  }
  return `fnv-${(h1 >>> 0).toString(16)}${(h2 >>> 0).toString(16)}-${bytes.length}`;
}

function browserCache(): CacheStorage | undefined {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  return !isNode && typeof caches !== 'undefined' ? caches : undefined;
}

/** Returns the cached conversion of `bytes`, or runs `convert` and caches its result. */
export async function cachedConversion(bytes: Uint8Array, convert: () => TokenizerJson): Promise<TokenizerJson> {
  const key = `${FORMAT}-${await sha256Hex(bytes)}`;
  const hit = memory.get(key);
  if (hit) return hit;
  const job = (async () => {
    const storage = browserCache();
    const url = `https://sieve.invalid/tokenizer/${key}.json`;
    if (storage) {
      try {
        const cache = await storage.open(CACHE_NAME);
        const res = await cache.match(url);
        if (res) return (await res.json()) as TokenizerJson;
      } catch {
        /* the Cache API can be unavailable (private mode, opaque origins): convert instead */
      }
    }
    const json = convert();
    if (storage) {
      try {
        const cache = await storage.open(CACHE_NAME);
        await cache.put(url, new Response(JSON.stringify(json), { headers: { 'content-type': 'application/json' } }));
      } catch {
        /* best effort */
      }
    }
    return json;
  })();
  memory.set(key, job);
  job.catch(() => memory.delete(key));
  return job;
}

/** Number of conversions held in memory (for tests). */
export function cachedConversions(): number {
  return memory.size;
}
