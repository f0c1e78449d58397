/**
 * Node-only modules, reached by names that bundlers cannot see: a browser
 * bundle of the runtime (the package's `.`, `./component`, `./worker` and the
 * single-file component) then carries no `import('node:...')` or
 * `import('webgpu')` for a consumer's bundler to resolve, while Node and
 * vitest load them as usual.
 */

type Proc = { getBuiltinModule?: (id: string) => unknown; env: Record<string, string | undefined> };

/** A Node built-in (`fs`, `fs/promises`, ...). */
export async function nodeBuiltin<T>(name: string): Promise<T> {
  const proc = (globalThis as { process?: Proc }).process;
  const mod = proc?.getBuiltinModule?.(name); // Node >= 20.16
  if (mod) return mod as T;
  return import(/* @vite-ignore */ ['node', name].join(':')) as Promise<T>;
}

/** An npm package that only Node uses (Dawn's `webgpu`). */
export function nodePackage<T>(...parts: string[]): Promise<T> {
  return import(/* @vite-ignore */ parts.join('')) as Promise<T>;
}
