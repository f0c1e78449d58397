// `node --import tsx --import ./src/cli/raw-register.mjs FILE.ts` runs a TS
// entry point (bench, script) with WGSL `?raw` imports working.
import { register } from 'node:module';
register('./raw-loader.mjs', import.meta.url);
