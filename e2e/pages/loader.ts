// In-browser loader test page: loads a checkpoint folder from a URL through
// urlSource (Cache API) onto the page's real WebGPU device, and can corrupt
// or clear the cache, and loads the same folder from a FileList
// (<input webkitdirectory>) and a directory handle (OPFS), for e2e/cache.spec.ts.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { DEFAULT_CACHE, urlSource } from '../../src/loader/url-source.ts';
import { dirHandleSource, fileListSource } from '../../src/loader/sources.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { readModel } from '../../src/loader/model.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { readWeightRaw } from '../../test/helpers/readback.ts';
import { Checksum } from '../../src/loader/url-source.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

/** Loads a source in f16; returns the tensor count, bytes and a digest of every weight's GPU bytes. */
async function loadFrom(src: FileSource) {
  const c = await gpu();
  const m = await readModel(src);
  const w = await loadWeights(c, src, m.spec, m.plan, { format: 'f16' });
  const sum = new Checksum();
  for (const [, g] of [...w].sort(([a], [b]) => a.localeCompare(b))) {
    for (const part of await readWeightRaw(c, g)) sum.update(new Uint8Array(part.data.buffer));
  }
  const out = { tensors: w.size, bytes: w.bytes, digest: sum.digest(), family: m.spec.family };
  releaseWeights(c, w.values());
  return out;
}

const api = {
  /** Loads `url` (a folder) in f16; returns what was loaded, cache hits and a digest of every weight's GPU bytes. */
  async load(url: string, revalidate = false) {
    let downloaded = 0;
    const src = urlSource(url, {
      revalidate,
      onProgress: (p) => {
        downloaded = Math.max(downloaded, p.bytesDone);
      },
    });
    return { ...(await loadFrom(src)), cacheHits: src.cacheHits, downloaded };
  },
  /** Loads the folder picked in <input webkitdirectory id=dir> (a FileList). */
  async loadInput() {
    const files = (document.getElementById('dir') as HTMLInputElement).files!;
    return loadFrom(fileListSource(files));
  },
  /** Copies the files of `url` into the origin-private file system, then loads them through a directory handle. */
  async loadOpfs(url: string, names: string[]) {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('stories260k', { create: true });
    for (const n of names) {
      const w = await (await dir.getFileHandle(n, { create: true })).createWritable();
      await w.write(await (await fetch(new URL(n, new URL(url, location.href)))).arrayBuffer());
      await w.close();
    }
    return loadFrom(dirHandleSource(dir));
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
  async clear() {
    return caches.delete(DEFAULT_CACHE);
  },
};
(window as unknown as { sieveLoader: typeof api }).sieveLoader = api;
document.getElementById('log')!.textContent = 'ready';
