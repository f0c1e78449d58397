/**
 * `sieve serve --model DIR`: an OpenAI-compatible endpoint (GET /health,
 * /v1/models, /v1/models/{id}; POST /v1/chat/completions, /v1/completions,
 * streamed as SSE) over one model, on loopback unless --host says otherwise.
 * The model runs in a child process with a per-request time budget, so a
 * request that trips a limit fails alone. Ctrl-C stops it.
 */
import { ProcessEngine } from '../../api/engine-process.ts';
import { startServer, validateServeOptions } from '../../api/http.ts';
import { InvalidOptionError } from '../../errors.ts';
import type { Command } from '../util.ts';
import { parseOptions, type OptionSpecs } from '../options.ts';
import { loadOptionsFromArgs, LOAD_ARGS } from './chat.ts';

const SERVE_OPTIONS: OptionSpecs = {
  ...LOAD_ARGS,
  port: { type: 'string', value: 'N', default: '8080', group: 'Server', help: 'TCP port (0: any free port)' },
  host: { type: 'string', value: 'ADDR', default: '127.0.0.1', group: 'Server', help: 'address to listen on (loopback by default)' },
  'max-body': { type: 'string', value: 'BYTES', default: '1048576', shownOnly: true, group: 'Server', help: 'largest request body accepted' },
  'api-key': {
    type: 'string',
    value: 'KEY',
    group: 'Server',
    help: 'require "Authorization: Bearer KEY"; when not given, the SIEVE_API_KEY environment variable is used, and no key is required if it is unset',
  },
  cors: { type: 'string', value: 'ORIGIN', group: 'Server', help: 'allow cross-origin requests from this one origin (off by default; other origins get 403)' },
  timeout: {
    type: 'string',
    value: 'S',
    default: '300',
    group: 'Server',
    help: 'per-request time budget in seconds; past it the request gets 504, a stuck engine is restarted',
  },
};

/** `sieve serve`'s arguments, checked before the model loads (env: SIEVE_API_KEY is the key's fallback). */
export function parseServeArgs(argv: string[], env: Record<string, string | undefined>) {
  const values = parseOptions('serve', argv, SERVE_OPTIONS) as Record<string, string | undefined>;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError('--port', `must be an integer in [0, 65535], got ${values.port}`);
  const maxBody = values['max-body'] === undefined ? undefined : Number(values['max-body']);
  if (maxBody !== undefined && !(Number.isInteger(maxBody) && maxBody > 0)) throw new InvalidOptionError('--max-body', 'must be a positive integer (bytes)');
  const timeout = Number(values.timeout);
  if (!(Number.isFinite(timeout) && timeout > 0)) throw new InvalidOptionError('--timeout', `must be a positive number of seconds, got ${values.timeout}`);
  const apiKey = values['api-key'] ?? (env.SIEVE_API_KEY || undefined);
  validateServeOptions({ apiKey, cors: values.cors }, { apiKey: values['api-key'] !== undefined ? '--api-key' : 'SIEVE_API_KEY', cors: '--cors' });
  return { values, port, maxBody, timeout, apiKey };
}

export const serve: Command = {
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API',
  usage: 'sieve serve --model DIR [options]',
  options: SERVE_OPTIONS,
  async run(argv) {
    const { values, port, maxBody, timeout, apiKey } = parseServeArgs(argv, process.env);
    const { onProgress, signal: _s, gpu: _g, ...load } = loadOptionsFromArgs(values);
    const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);
    const engine = await ProcessEngine.start(values.model!, load, { budgetMs: Math.round(timeout * 1000), log, onProgress });
    let running;
    try {
      running = await startServer(engine, { port, host: values.host, maxBodyBytes: maxBody, apiKey, cors: values.cors, log });
    } catch (e) {
      await engine.unload();
      throw e;
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(
      `sieve: serving ${engine.model.id} (kernels ${engine.model.kernels}) at ${running.url}/v1 (Ctrl-C to stop)` +
        `${apiKey ? '; API key required' : ''}${values.cors ? `; CORS for ${values.cors}` : ''}`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await running.close();
    await engine.unload();
    return 0;
  },
};
