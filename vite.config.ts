import { posix } from 'node:path';
import { defineConfig, type Plugin, type UserConfig } from 'vite';
import LongestFirst from './test/sequencer.ts';

// The demo lives at /demo/; `/` redirects there so `npm start` opens it.
const demoAtRoot: Plugin = {
  name: 'sieve-demo-at-root',
  configureServer(server) {
    server.middlewares.use((req, res, next) => {
      if (req.url === '/' || req.url?.startsWith('/?')) {
        res.statusCode = 302;
        res.setHeader('Location', `/demo/${req.url.slice(1)}`);
        res.end();
        return;
      }
      next();
    });
  },
};

// `npm run build` inlines the engine's worker into dist/sieve-chat.js (the
// component passes it to loadModelInWorker as its port); the copy that
// src/worker/client.ts's own `new Worker(new URL(...))` would add as a second
// file is never loaded from the bundle, so it is left out, as is the shim for
// node:fs that only Dawn's Node path imports: one file ships.
const oneFileLib: Plugin = {
  name: 'sieve-one-file-lib',
  apply: 'build',
  enforce: 'post',
  generateBundle(_options, bundle) {
    for (const name of Object.keys(bundle)) {
      if (/^assets\/(worker|__vite-browser-external)-[\w-]+\.js$/.test(name)) delete bundle[name];
    }
  },
};

// `--mode lib`: src/worker/client.ts's default worker (`new Worker(new URL('./worker.ts', ...))`)
// becomes the package's own ./worker entry, dist/worker.js, referenced as
// `new URL('<relative path>/worker.js', import.meta.url)`: the pattern a consumer's bundler
// (Vite, webpack) follows to bundle the worker. Vite does not bundle a second copy of the worker:
// the URL is hidden from it as a placeholder until the chunks are written.
const WORKER_URL = '__SIEVE_WORKER_ENTRY_URL__';
const libWorkerEntry: Plugin = {
  name: 'sieve-lib-worker-entry',
  apply: 'build',
  enforce: 'pre',
  transform(code, id) {
    if (!id.endsWith('/src/worker/client.ts')) return null;
    const out = code.replace("new URL('./worker.ts', import.meta.url)", `new URL(${WORKER_URL}, import.meta.url)`);
    if (out === code) this.error("src/worker/client.ts: new URL('./worker.ts', import.meta.url) not found");
    return out;
  },
  renderChunk(code, chunk) {
    if (!code.includes(WORKER_URL)) return null;
    const rel = posix.relative(posix.dirname(chunk.fileName), 'worker.js');
    return code.replaceAll(WORKER_URL, JSON.stringify(rel.startsWith('.') ? rel : `./${rel}`));
  },
};

// Dependencies stay imports in the package's library and CLI builds (npm installs them).
const PACKAGE_DEPS = [/^@huggingface\//, /^@zip\.js\//, /^webgpu$/];

/**
 * `vite build` (mode production): the <sieve-chat> component as one ES module, dist/sieve-chat.js.
 * `vite build --mode lib`: the package's browser entry points as ES modules sharing chunks:
 * dist/index.js (`.`, the runtime API), dist/component.js (`./component`, worker inlined) and
 * dist/worker.js (`./worker`, the engine's Web Worker entry).
 * `vite build --mode cli`: the `sieve-llm` CLI for Node, dist/cli.js (bin/sieve.mjs runs it
 * when the TypeScript sources are not there, as in an installed package).
 * `npm run build` runs all three, then the declarations (tsconfig.build.json).
 */
function buildFor(mode: string) {
  const base = { outDir: 'dist', copyPublicDir: false, target: 'es2022', emptyOutDir: false } as const;
  if (mode === 'lib') {
    return {
      ...base,
      lib: {
        entry: { index: 'src/index.ts', component: 'src/component/index.ts', worker: 'src/worker/worker.ts' },
        formats: ['es'],
      },
      minify: false,
      rolldownOptions: { external: PACKAGE_DEPS, output: { chunkFileNames: 'chunks/[name]-[hash].js' } },
    };
  }
  if (mode === 'cli') {
    return {
      ...base,
      ssr: true,
      minify: false,
      rolldownOptions: {
        // the CLI, and the child process `sieve serve` runs its model in (src/api/engine-process.ts)
        input: { cli: 'src/cli/main.ts', 'engine-child': 'src/api/engine-child-entry.ts' },
        external: PACKAGE_DEPS,
        output: { entryFileNames: '[name].js', chunkFileNames: 'chunks/cli-[name]-[hash].js' },
      },
    };
  }
  return {
    ...base,
    emptyOutDir: true,
    lib: { entry: 'src/component/index.ts', formats: ['es'], fileName: () => 'sieve-chat.js' },
    rolldownOptions: { output: { codeSplitting: false } },
  };
}

// One config for the demo (root: demo/), the e2e test pages, the library builds
// (above) and the unit tests (vitest, Node + Dawn).
export default defineConfig(
  ({ mode }) =>
    ({
      // (the `test` block is vitest's; vite's own type does not know it)
      root: '.',
      // demo/public/models/ (filled by scripts/setup.sh) is served at /models/.
      publicDir: 'demo/public',
      plugins: [demoAtRoot, ...(mode === 'lib' ? [libWorkerEntry] : mode === 'cli' ? [] : [oneFileLib])],
      build: buildFor(mode),
      worker: { format: 'es' },
      server: {
        host: '127.0.0.1',
        port: 5173,
        strictPort: false,
        fs: { allow: ['.'] },
        // Playwright's server (SIEVE_E2E=1): no HMR and no file watching, so edits
        // elsewhere in the shared checkout never reload a page mid-test.
        ...(process.env.SIEVE_E2E ? { hmr: false, watch: null } : {}),
      },
      // Pre-bundled at startup (the worker's imports are found late otherwise, and
      // discovering them reloads the page).
      optimizeDeps: { include: ['@huggingface/jinja', '@huggingface/tokenizers', '@zip.js/zip.js'] },
      test: {
        include: ['test/**/*.test.ts'],
        pool: 'forks',
        testTimeout: 120_000,
        hookTimeout: 120_000,
        // Two test files at once: one file's SwiftShader work used ~1.1 of CI's 2 cores
        // (sequential: 916 s of vitest; two at a time: 577 s, every test passing).
        fileParallelism: true,
        maxWorkers: 2,
        // longest files first, so the two workers end together (test/sequencer.ts)
        sequence: { sequencer: LongestFirst },
      },
    }) as UserConfig,
);
