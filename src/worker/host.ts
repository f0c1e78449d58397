/**
 * The worker side: runs a LocalEngine and answers ToWorker messages on a
 * port (the worker's global scope in a browser; a MessagePort in tests).
 */
import { loadModel } from '../api/load.ts';
import type { LocalEngine } from '../api/engine.ts';
import { InvalidOptionError, SieveError } from '../errors.ts';
import { errorToWire, type FromWorker, type Port, type ToWorker } from './protocol.ts';

/** `load`: how a 'load' message opens a model (loadModel; the serve child's tests pass a scripted one). */
export function hostEngine(port: Port, load: (source: unknown, options: Parameters<typeof loadModel>[1]) => Promise<LocalEngine> = loadModel as never): void {
  let engine: LocalEngine | undefined;
  const controllers = new Map<number, AbortController>();
  const send = (m: FromWorker) => port.postMessage(m);
  const need = (): LocalEngine => {
    if (!engine) throw new SieveError('INTERNAL', 'no model is loaded in this worker; call loadModel first');
    return engine;
  };

  async function handle(m: ToWorker): Promise<void> {
    switch (m.type) {
      case 'load': {
        if (engine) await engine.unload();
        engine = undefined;
        const ac = new AbortController();
        controllers.set(m.id, ac);
        engine = await load(m.source, {
          ...m.options,
          signal: ac.signal,
          onProgress: (progress) => send({ type: 'progress', id: m.id, progress }),
        });
        send({ type: 'loaded', id: m.id, model: engine.model });
        return;
      }
      case 'generate': {
        const ac = new AbortController();
        controllers.set(m.id, ac);
        for await (const chunk of need().generate(m.input, { ...m.options, signal: ac.signal })) {
          send({ type: 'chunk', id: m.id, chunk });
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
      case 'destroyDevice':
        need().engine.ctx.device.destroy();
        send({ type: 'done', id: m.id });
        return;
      default: {
        const never: never = m;
        throw new InvalidOptionError('type', `unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  port.addEventListener('message', (e: MessageEvent) => {
    const m = e.data as ToWorker;
    handle(m)
      .catch((err) => send({ type: 'error', id: m.id, error: errorToWire(err) }))
      .finally(() => {
        if (m.type !== 'abort') controllers.delete(m.id);
      });
  });
}
