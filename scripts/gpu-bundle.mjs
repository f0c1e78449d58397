// Bundles bench entry points into single ESM files under .gpu/ whose only
// external imports are `webgpu`, `playwright-core` (the browser runners: ../shared/gpu/setup-browser.sh
// puts it under node_modules there) and Node built-ins, for the GPU machine
// (see ../shared/gpu/README.md). Usage: npm run gpu:bundle -- bench/gemm.ts [more...]
// An .html entry is a page for a browser runner: it is built with its scripts (scripts/build-page.mjs) into
// .gpu/<its folder's name>-page/ (bench/conformance/page.html -> .gpu/conformance-page/).
import { build } from 'vite';
import { basename, dirname } from 'node:path';
import { builtinModules } from 'node:module';
import { buildPage } from './build-page.mjs';

const entries = process.argv.slice(2);
if (entries.length === 0) {
  console.error('usage: npm run gpu:bundle -- bench/NAME.ts [...]');
  process.exit(2);
}
const external = ['webgpu', 'playwright-core', ...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
for (const entry of entries) {
  if (entry.endsWith('.html')) {
    const out = `.gpu/${basename(dirname(entry))}-page`;
    await buildPage(entry, out);
    console.log(`${out}/`);
    continue;
  }
  const name = basename(entry).replace(/\.ts$/, '');
  await build({
    configFile: false,
    logLevel: 'warn',
    ssr: { noExternal: true, external: ['webgpu', 'playwright-core'] },
    build: {
      ssr: entry,
      outDir: '.gpu',
      emptyOutDir: false,
      minify: false,
      target: 'node20',
      rollupOptions: { external, output: { entryFileNames: `${name}.mjs`, format: 'es', codeSplitting: false } },
    },
  });
  console.log(`.gpu/${name}.mjs`);
}
