/**
 * `sieve serve --model DIR [--port 8080] [--host 127.0.0.1]`: an OpenAI-compatible
 * endpoint (GET /v1/models, POST /v1/chat/completions, streamed as SSE) over one
 * model, on loopback unless --host says otherwise. Ctrl-C stops it.
 */
import { parseArgs } from 'node:util';
import { loadModel } from '../../api/load.ts';
import { startServer } from '../../api/http.ts';
import { InvalidOptionError } from '../../errors.ts';
import type { Command } from '../util.ts';
import { loadOptionsFromArgs, LOAD_ARGS } from './chat.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API',
  usage: 'sieve serve --model DIR [--port 8080] [--host 127.0.0.1] [--weights f16|q8|q4] [--context N]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { ...LOAD_ARGS, port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' }, 'max-body': { type: 'string' } },
    });
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError('--port', `must be an integer in [0, 65535], got ${values.port}`);
    const maxBody = values['max-body'] === undefined ? undefined : Number(values['max-body']);
    if (maxBody !== undefined && !(Number.isInteger(maxBody) && maxBody > 0)) throw new InvalidOptionError('--max-body', 'must be a positive integer (bytes)');
    const engine = await loadModel(values.model!, loadOptionsFromArgs(values));
    const running = await startServer(engine, {
      port, host: values.host, maxBodyBytes: maxBody,
      onRequest: (line) => console.error(`${new Date().toISOString()} ${line}`),
    });
    console.log(`sieve: serving ${engine.model.id} at ${running.url}/v1 (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await running.close();
    await engine.unload();
    return 0;
  },
};
