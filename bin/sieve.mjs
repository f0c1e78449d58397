#!/usr/bin/env node
// The `sieve` CLI: runs the TypeScript sources directly (tsx), with WGSL
// `?raw` imports handled by a small loader hook, so no build step is needed.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('../src/cli/raw-loader.mjs', import.meta.url);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
