#!/usr/bin/env node
// The CLI, as `sieve-llm` (and `sieve` inside this repository). In the
// repository it runs the TypeScript sources (tsx, with WGSL `?raw` imports
// handled by a small loader hook), so no build step is needed; in an installed
// package, where only dist/ ships, it runs the built dist/cli.js.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const sources = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(sources)) {
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  register('../src/cli/raw-loader.mjs', import.meta.url);
  ({ main } = await import(sources.href));
} else {
  ({ main } = await import('../dist/cli.js'));
}
process.exitCode = await main(process.argv.slice(2));
