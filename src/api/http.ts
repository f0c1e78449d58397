/**
 * An OpenAI-compatible HTTP endpoint over one engine (Node only; used by
 * `sieve serve`): GET /v1/models, POST /v1/chat/completions (JSON, or
 * server-sent events ending in `data: [DONE]`). Bad requests get a 4xx JSON
 * error naming the field; a client that disconnects aborts its generation;
 * requests queue on the engine one after another. Binds 127.0.0.1 unless told
 * otherwise.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ContextOverflowError, InvalidOptionError, SieveError } from '../errors.ts';
import type { ChatCompletion, ChatCompletionChunk, SieveEngine } from './types.ts';

export interface ServeOptions {
  port?: number;
  host?: string;
  /** Largest request body accepted (default 1 MiB). */
  maxBodyBytes?: number;
  /** Called once per request (logging). */
  onRequest?: (line: string) => void;
}

export interface RunningServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code: string, readonly param: string | null = null) { super(message); }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(e: unknown): { status: number; body: unknown } {
  let status = 500;
  let code = 'internal_error';
  let param: string | null = null;
  let type = 'server_error';
  if (e instanceof HttpError) { status = e.status; code = e.code; param = e.param; type = 'invalid_request_error'; }
  else if (e instanceof InvalidOptionError) { status = 400; code = 'invalid_option'; param = String(e.details.option ?? ''); type = 'invalid_request_error'; }
  else if (e instanceof ContextOverflowError) { status = 400; code = 'context_length_exceeded'; type = 'invalid_request_error'; }
  else if (e instanceof SieveError) { code = e.code.toLowerCase(); }
  return { status, body: { error: { message: (e as Error)?.message ?? String(e), type, param, code } } };
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) { reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, 'body_too_large')); return; }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > limit) {
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`, 'body_too_large'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      parts.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export function createHandler(engine: SieveEngine, opts: ServeOptions = {}) {
  const limit = opts.maxBodyBytes ?? 1 << 20;
  const started = Math.floor(Date.now() / 1000);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    opts.onRequest?.(`${req.method} ${path}`);
    const ac = new AbortController();
    res.on('close', () => { if (!res.writableFinished) ac.abort(); });
    try {
      if (path === '/v1/models') {
        if (req.method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on ${path}; use GET`, 'method_not_allowed');
        sendJson(res, 200, { object: 'list', data: [{ id: engine.model.id, object: 'model', created: started, owned_by: 'sieve' }] });
        return;
      }
      if (path !== '/v1/chat/completions') throw new HttpError(404, `no route ${path}; try /v1/models or /v1/chat/completions`, 'not_found');
      if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed on ${path}; use POST`, 'method_not_allowed');
      const text = await readBody(req, limit);
      let body: unknown;
      try { body = JSON.parse(text); } catch (e) {
        throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object', 'invalid_request');
      if ('signal' in body) throw new HttpError(400, "field 'signal' is not supported", 'invalid_option', 'signal');
      const request = { ...(body as object), signal: ac.signal } as Parameters<SieveEngine['chat']['completions']['create']>[0];
      const result = await engine.chat.completions.create(request);
      if (!(request as { stream?: boolean }).stream) {
        sendJson(res, 200, result as ChatCompletion);
        return;
      }
      const iter = (result as AsyncIterable<ChatCompletionChunk>)[Symbol.asyncIterator]();
      const first = await iter.next(); // errors before the first token (context overflow...) still get a 4xx
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      try {
        const rest = { [Symbol.asyncIterator]: () => iter };
        if (!first.done) res.write(`data: ${JSON.stringify(first.value)}\n\n`);
        for await (const chunk of rest) {
          if (ac.signal.aborted) continue; // drain: the engine ends at its next step
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        }
      } catch (e) {
        if (!res.destroyed) res.write(`data: ${JSON.stringify(errorBody(e).body)}\n\n`);
      }
      if (!res.destroyed) res.end('data: [DONE]\n\n');
    } catch (e) {
      if (res.headersSent) { res.destroy(); return; }
      const { status, body } = errorBody(e);
      sendJson(res, status, body);
    }
  };
}

export function startServer(engine: SieveEngine, opts: ServeOptions = {}): Promise<RunningServer> {
  const handler = createHandler(engine, opts);
  const server = createServer((req, res) => { void handler(req, res); });
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
      resolve({
        server, port, url: `http://${host}:${port}`,
        close: () => new Promise<void>((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}
