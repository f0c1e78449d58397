/**
 * File names inside a model folder. Every path a source is asked for (and
 * every shard an index names) must be a plain relative path that stays in
 * the folder: segments of ordinary characters joined by '/', no '.' or '..'
 * segment, no leading '/', no backslash, no '%' (encoded dots and slashes),
 * no ':' (schemes, drive letters), no '?' or '#', no control characters.
 * Anything else is a ModelFormatError naming the path, before any request or
 * file access is made. URL sources check the resolved URL again: same origin,
 * path under the folder's.
 */
import { ModelFormatError } from '../errors.ts';

export const MAX_PATH_CHARS = 1024;

/** Why `p` is not a safe relative path, or undefined when it is. */
export function unsafePathReason(p: unknown): string | undefined {
  if (typeof p !== 'string' || p.length === 0) return 'not a non-empty string';
  if (p.length > MAX_PATH_CHARS) return `longer than ${MAX_PATH_CHARS} characters`;
  if (p.startsWith('/')) return 'an absolute path';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'a control character';
  }
  if (p.includes('\\')) return 'a backslash';
  if (p.includes('%')) return "a '%' (percent-encoding)";
  if (p.includes(':')) return "a ':' (a scheme or drive)";
  if (p.includes('?') || p.includes('#')) return "a '?' or '#'";
  for (const seg of p.split('/')) {
    if (seg === '') return 'an empty path segment';
    if (seg === '.' || seg === '..') return `a '${seg}' segment`;
  }
  return undefined;
}

/** Throws a ModelFormatError unless `p` is a safe path inside the folder; `where` names who asked (e.g. the index file). */
export function checkFolderPath(p: unknown, where?: string): string {
  const why = unsafePathReason(p);
  if (why) {
    const shown = typeof p === 'string' ? JSON.stringify(p.length > 200 ? `${p.slice(0, 200)}...` : p) : String(p);
    throw new ModelFormatError(
      where ?? (typeof p === 'string' ? p.slice(0, 200) : 'path'),
      `${where ? `names ${shown}, which` : `path ${shown}`} is not a file inside the model folder (it has ${why})`,
      { path: typeof p === 'string' ? p.slice(0, 200) : String(p) },
    );
  }
  return p as string;
}

/**
 * Resolves `p` against a folder URL (ending in '/') and checks the result is
 * still inside it: same origin, path under the folder's path.
 */
export function resolveInFolder(base: string, p: string): string {
  checkFolderPath(p);
  const b = new URL(base);
  const u = new URL(p, b);
  if (u.origin !== b.origin || !u.pathname.startsWith(b.pathname) || u.search !== '' || u.hash !== '') {
    throw new ModelFormatError(p, `resolves to ${u.href}, outside the model folder ${b.href}`, { path: p });
  }
  return u.href;
}
