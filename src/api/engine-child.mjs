// Entry of the child process that runs `sieve serve`'s model (src/api/engine-process.ts forks it):
// TypeScript through tsx and WGSL `?raw` imports through the CLI's loader hook, as bin/sieve.mjs does.
// argv[2]: an optional module URL exporting loadModel (tests run a scripted engine this way).
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('../cli/raw-loader.mjs', import.meta.url);
const { runHost } = await import('./engine-host.ts');
await runHost(process.argv[2] || undefined);
