/**
 * The child-process side of src/api/engine-process.ts: loads one engine and
 * answers the worker protocol's messages (src/worker/protocol.ts) over the
 * IPC channel. Generations run one after another (the engine's own queue);
 * an 'abort' message stops one through its AbortSignal. Exits when the
 * parent goes away.
 */
import { SieveError } from '../errors.ts';
import { errorToWire, type FromWorker, type ToWorker } from '../worker/protocol.ts';
import type { LoadOptions, SieveEngine } from './types.ts';

type Loader = (source: string, options: LoadOptions) => Promise<SieveEngine>;

export async function runHost(loaderModule?: string): Promise<void> {
  const mod = (loaderModule ? await import(loaderModule) : await import('./load.ts')) as { loadModel: Loader };
  let engine: SieveEngine | undefined;
  const controllers = new Map<number, AbortController>();
  const send = (m: FromWorker) => {
    if (process.connected) process.send!(m);
  };
  const need = (): SieveEngine => {
    if (!engine) throw new SieveError('INTERNAL', 'no model is loaded in the engine process');
    return engine;
  };

  async function handle(m: ToWorker): Promise<void> {
    switch (m.type) {
      case 'load':
        engine = await mod.loadModel(m.source as string, m.options);
        send({ type: 'loaded', id: m.id, model: engine.model });
        return;
      case 'generate': {
        const ac = new AbortController();
        controllers.set(m.id, ac);
        try {
          for await (const chunk of need().generate(m.input, { ...m.options, signal: ac.signal })) send({ type: 'chunk', id: m.id, chunk });
        } finally {
          controllers.delete(m.id);
        }
        send({ type: 'done', id: m.id });
        return;
      }
      case 'abort':
        controllers.get(m.id)?.abort();
        return;
      case 'cached':
        send({ type: 'done', id: m.id, value: await need().cachedTokens() });
        return;
      case 'reset':
        await need().resetChat();
        send({ type: 'done', id: m.id });
        return;
      case 'unload':
        await engine?.unload();
        engine = undefined;
        send({ type: 'done', id: m.id });
        return;
      default:
        throw new SieveError('INTERNAL', `unknown message type ${JSON.stringify((m as { type: unknown }).type)}`);
    }
  }

  process.on('message', (m: ToWorker) => {
    handle(m).catch((err) => send({ type: 'error', id: m.id, error: errorToWire(err) }));
  });
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C in a terminal reaches the whole process group: the parent decides when this process ends
  process.on('SIGINT', () => {});
  send({ type: 'done', id: -1 }); // ready for messages
}
