// Builds a bench page (an HTML file and the module scripts it loads) for the browser with Vite into a folder:
// OUTDIR/page.html and OUTDIR/assets/*.js (relative URLs, so any server root works). Used by
// scripts/gpu-bundle.mjs for .html entries (the GPU machine has no npm: the page travels built, under .gpu/) and
// by the Chromium conformance runner when it runs from its .ts sources.
import { build } from 'vite';
import { basename, dirname, resolve } from 'node:path';

/** Builds `html` into `outDir` (emptied first); returns the built page's path. */
export async function buildPage(html, outDir) {
  const root = dirname(resolve(html));
  await build({
    configFile: false,
    root,
    base: './',
    publicDir: false,
    logLevel: 'warn',
    worker: { format: 'es' },
    build: {
      outDir: resolve(outDir),
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      reportCompressedSize: false,
      rolldownOptions: { input: resolve(html) },
    },
  });
  return resolve(outDir, basename(html));
}
