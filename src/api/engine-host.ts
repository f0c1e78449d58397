/**
 * The child-process side of src/api/engine-process.ts: the Web Worker's host (src/worker/host.ts)
 * answering the same protocol over the IPC channel instead of a MessagePort. Exits when the parent
 * goes away.
 */
import type { Serializable } from 'node:child_process';
import { hostEngine } from '../worker/host.ts';
import type { Port } from '../worker/protocol.ts';
import type { LocalEngine } from './engine.ts';
import type { LoadOptions } from './types.ts';

type Loader = (source: unknown, options?: LoadOptions) => Promise<LocalEngine>;

/** `loaderModule`: a module URL exporting loadModel (tests run a scripted engine this way). */
export async function runHost(loaderModule?: string): Promise<void> {
  const load = loaderModule ? ((await import(loaderModule)) as { loadModel: Loader }).loadModel : undefined;
  const port: Port = {
    postMessage: (m) => {
      if (process.connected) process.send!(m as Serializable);
    },
    addEventListener: (_type, fn) => {
      process.on('message', (data) => fn({ data } as MessageEvent));
    },
  };
  hostEngine(port, load);
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C in a terminal reaches the whole process group: the parent decides when this process ends
  process.on('SIGINT', () => {});
  port.postMessage({ type: 'done', id: -1 }); // ready for messages
}
