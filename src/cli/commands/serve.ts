/**
 * `sieve serve --model DIR [--port 8080] [--host 127.0.0.1]`: an OpenAI-compatible
 * endpoint (GET /v1/models, POST /v1/chat/completions, streamed as SSE) over one
 * model, on loopback unless --host says otherwise. Ctrl-C stops it.
 */
import { loadModel } from '../../api/load.ts';
import { startServer } from '../../api/http.ts';
import { InvalidOptionError } from '../../errors.ts';
import type { Command } from '../util.ts';
import { parseOptions } from '../options.ts';
import { loadOptionsFromArgs, LOAD_ARGS } from './chat.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API',
  usage: 'sieve serve --model DIR [options]',
  options: {
    ...LOAD_ARGS,
    port: { type: 'string', value: 'N', default: '8080', group: 'Server', help: 'TCP port (0: any free port)' },
    host: { type: 'string', value: 'ADDR', default: '127.0.0.1', group: 'Server', help: 'address to listen on' },
    'max-body': { type: 'string', value: 'BYTES', default: '1048576', shownOnly: true, group: 'Server', help: 'largest request body accepted' },
  },
  async run(argv) {
    const values = parseOptions('serve', argv, serve.options) as Record<string, string | undefined>;
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
