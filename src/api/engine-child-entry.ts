// Entry of `sieve serve`'s model process in the built package (dist/engine-child.js; vite --mode cli):
// what src/api/engine-child.mjs does in the source tree, without tsx.
import { runHost } from './engine-host.ts';

await runHost(process.argv[2] || undefined);
