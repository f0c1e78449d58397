/**
 * FileSource implementations (src/loader/source.ts): a Node folder (positional
 * reads on fs handles), browser files (a FileList from <input webkitdirectory>
 * or File[]), a File System Access directory handle, and a URL of a folder
 * (url-source.ts: HTTP Range requests, retries, Cache API). `openSource(x)`
 * picks one by the type of `x`.
 */
import { InvalidOptionError, MissingFileError, ModelFormatError } from '../errors.ts';
import { checkFolderPath } from './paths.ts';
import type { FileSource } from './source.ts';
import { urlSource, type UrlSourceOptions } from './url-source.ts';
import { nodeBuiltin } from '../util/node-only.ts';

export function checkRange(file: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new ModelFormatError(file, `read of ${length} bytes at offset ${offset} is past the end of the file (${size} bytes)`, { offset, length, size });
  }
}

type FsPromises = typeof import('node:fs/promises');
type FileHandle = Awaited<ReturnType<FsPromises['open']>>;

/**
 * Node: a folder on disk. Each read opens the file, reads at a position and
 * closes it again (a few microseconds against a multi-MB block), so a source
 * nobody closes leaks no descriptors; close() is kept for symmetry.
 */
export interface NodeSource extends FileSource {
  close(): Promise<void>;
}

export function nodeSource(dir: string): NodeSource {
  const sizes = new Map<string, number>();
  let fsp: Promise<FsPromises> | undefined;
  const fs = () => (fsp ??= nodeBuiltin<FsPromises>('fs/promises'));
  // Only plain relative paths inside the folder (paths.ts): no '..', no absolute paths, no backslashes.
  const full = (p: string) => `${dir.replace(/\/+$/, '')}/${checkFolderPath(p)}`;
  const missing = (p: string) => new MissingFileError(p, `not found in ${dir}`, { folder: dir });
  const fsError = (p: string, e: unknown) => (['ENOENT', 'EISDIR'].includes((e as { code?: string }).code ?? '') ? missing(p) : e);
  async function withHandle<T>(p: string, f: (h: FileHandle) => Promise<T>): Promise<T> {
    let h: FileHandle;
    try {
      h = await (await fs()).open(full(p), 'r');
    } catch (e) {
      throw fsError(p, e);
    }
    try {
      return await f(h);
    } finally {
      await h.close();
    }
  }
  const src: NodeSource = {
    name: dir,
    async has(p) {
      const path = full(p);
      try {
        return (await (await fs()).stat(path)).isFile();
      } catch {
        return false;
      }
    },
    async size(p) {
      const known = sizes.get(p);
      if (known !== undefined) return known;
      let st;
      try {
        st = await (await fs()).stat(full(p));
      } catch (e) {
        throw fsError(p, e);
      }
      if (!st.isFile()) throw missing(p);
      sizes.set(p, st.size);
      return st.size;
    },
    async read(p, offset, length) {
      checkRange(p, offset, length, await src.size(p));
      const out = new Uint8Array(length);
      await withHandle(p, async (h) => {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await h.read(out, done, length - done, offset + done);
          if (bytesRead === 0) throw new ModelFormatError(p, `file ended at ${offset + done} while reading ${length} bytes at ${offset}`);
          done += bytesRead;
        }
      });
      return out;
    },
    async text(p) {
      try {
        return await (await fs()).readFile(full(p), 'utf8');
      } catch (e) {
        throw fsError(p, e);
      }
    },
    async list() {
      return (await (await fs()).readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
    },
    async close() {},
  };
  return src;
}

/** Browser: File objects (from <input webkitdirectory>, drag and drop, or a File[]). */
export function fileListSource(files: FileList | File[], name = 'selected files'): FileSource {
  const byName = new Map<string, File>();
  for (const f of Array.from(files)) {
    // webkitRelativePath is "folder/sub/file"; the checkpoint's files are the
    // ones directly in the selected folder (the first path component).
    const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    const parts = rel.split('/');
    const key = parts.length > 1 ? parts.slice(1).join('/') : parts[0];
    byName.set(key, f);
  }
  return browserFiles(
    name,
    async (p) => byName.get(p) ?? Promise.reject(new MissingFileError(p, `not among the ${name}`)),
    async () => [...byName.keys()],
  );
}

/** Browser: a File System Access directory handle (showDirectoryPicker()). */
export function dirHandleSource(dirHandle: FileSystemDirectoryHandle): FileSource {
  const files = new Map<string, Promise<File>>();
  const get = (p: string): Promise<File> => {
    let f = files.get(p);
    if (!f) {
      f = (async () => {
        let d = dirHandle;
        const parts = p.split('/');
        try {
          for (const part of parts.slice(0, -1)) d = await d.getDirectoryHandle(part);
          return await (await d.getFileHandle(parts[parts.length - 1])).getFile();
        } catch {
          throw new MissingFileError(p, `not found in folder '${dirHandle.name}'`);
        }
      })();
      files.set(p, f);
      f.catch(() => files.delete(p));
    }
    return f;
  };
  return browserFiles(dirHandle.name, get, async () => {
    const names: string[] = [];
    for await (const [n, h] of (dirHandle as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
      if (h.kind === 'file') names.push(n);
    }
    return names;
  });
}

/** A FileSource over browser File objects; `get` finds one by its checked path (a MissingFileError when absent). */
function browserFiles(name: string, get: (p: string) => Promise<File>, list: () => Promise<string[]>): FileSource {
  const file = (p: string) => get(checkFolderPath(p));
  return {
    name,
    async has(p) {
      return file(p).then(
        () => true,
        (e) => (e instanceof MissingFileError ? false : Promise.reject(e)),
      );
    },
    async size(p) {
      return (await file(p)).size;
    },
    async read(p, offset, length) {
      const f = await file(p);
      checkRange(p, offset, length, f.size);
      return new Uint8Array(await f.slice(offset, offset + length).arrayBuffer());
    },
    async text(p) {
      return (await file(p)).text();
    },
    list,
  };
}

export type SourceInput = string | URL | FileList | File[] | FileSystemDirectoryHandle | FileSource;

function isFileSource(x: unknown): x is FileSource {
  return !!x && typeof x === 'object' && typeof (x as FileSource).read === 'function' && typeof (x as FileSource).size === 'function';
}

/**
 * Picks a source by type: a FileSource as is; a URL or an http(s)/relative
 * URL string -> urlSource (in a browser every string is a URL); another
 * string in Node -> nodeSource; FileList/File[] -> fileListSource; a
 * directory handle -> dirHandleSource.
 */
export function openSource(x: SourceInput, opts: UrlSourceOptions = {}): FileSource {
  if (isFileSource(x)) return x;
  if (x instanceof URL) return urlSource(x.href, opts);
  if (typeof x === 'string') {
    const inBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
    if (/^https?:\/\//i.test(x) || inBrowser) return urlSource(x, opts);
    return nodeSource(x.startsWith('file://') ? new URL(x).pathname : x);
  }
  if (Array.isArray(x) || (typeof FileList !== 'undefined' && x instanceof FileList)) return fileListSource(x as File[]);
  if (x && typeof x === 'object' && (x as FileSystemDirectoryHandle).kind === 'directory') return dirHandleSource(x as FileSystemDirectoryHandle);
  throw new InvalidOptionError('source', 'expected a folder path, a URL, a FileList or File[], a directory handle or a FileSource');
}
