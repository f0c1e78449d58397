// A synthesis worker of bench/ttft/synthetic.ts (--presynth) when the TTFT harness runs from its .ts
// sources: Node 20 workers get tsx's --import flag but not its hooks, so this registers tsx, then serves
// chunks (runSynthWorker) until terminated. A bundled harness (npm run gpu:bundle) is its own worker.
import { workerData } from 'node:worker_threads';

const tsxApi = ['tsx', 'esm', 'api'].join('/'); // not a literal: a bundler must not inline tsx
(await import(tsxApi)).register();
(await import('./synthetic.ts')).runSynthWorker(workerData.ttftSynthWorker);
