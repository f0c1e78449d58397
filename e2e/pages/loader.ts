// In-browser loader test page: loads a checkpoint folder from a URL through
// urlSource (Cache API) onto the page's real WebGPU device, and can corrupt
// or clear the cache, for e2e/cache.spec.ts.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { DEFAULT_CACHE, urlSource } from '../../src/loader/url-source.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { readWeightRaw } from '../../src/loader/readback.ts';
import { Checksum } from '../../src/loader/url-source.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

const api = {
  /** Loads `url` (a folder) in f16; returns what was loaded, cache hits and a digest of every weight's GPU bytes. */
  async load(url: string) {
    const c = await gpu();
    let downloaded = 0;
    const src = urlSource(url, { onProgress: (p) => { downloaded = Math.max(downloaded, p.bytesDone); } });
    const m = await readModel(src);
    const w = await loadWeights(c, src, m.spec, m.plan, { format: 'f16' });
    const sum = new Checksum();
    for (const [, g] of [...w].sort(([a], [b]) => a.localeCompare(b))) {
      for (const part of await readWeightRaw(c, g)) sum.update(new Uint8Array(part.data.buffer));
    }
    const out = { tensors: w.size, bytes: w.bytes, cacheHits: src.cacheHits, downloaded, digest: sum.digest(), family: m.spec.family };
    releaseWeights(c, w.values());
    return out;
  },
  /** Replaces the cached body of `fileUrl` with garbage of the same size (its checksum entry is kept). */
  async corrupt(fileUrl: string) {
    const cache = await caches.open(DEFAULT_CACHE);
    const abs = new URL(fileUrl, location.href).href;
    const res = await cache.match(abs);
    if (!res) return false;
    const bytes = new Uint8Array(await res.arrayBuffer());
    bytes[bytes.length >> 1] ^= 0xff;
    await cache.put(abs, new Response(bytes));
    return true;
  },
  async clear() { return caches.delete(DEFAULT_CACHE); },
};
(window as unknown as { sieveLoader: typeof api }).sieveLoader = api;
document.getElementById('log')!.textContent = 'ready';
