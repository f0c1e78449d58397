/**
 * An OpenAI-compatible HTTP endpoint over one engine (Node only; used by
 * `sieve serve`):
 *   GET  /health                  liveness (open even with an API key)
 *   GET  /v1/models, /v1/models/{id}
 *   POST /v1/chat/completions     JSON, or server-sent events ending in `data: [DONE]`
 *   POST /v1/completions          legacy text completion, streamed or not
 * Bad requests get a 4xx JSON error naming the field; a client that
 * disconnects aborts its generation; requests queue on the engine one after
 * another.
 *
 * Security defaults: binds 127.0.0.1; the Host header must name the bound
 * address (DNS rebinding); a request carrying an Origin other than the
 * server's own or the `cors` origin is refused (CSRF); POST bodies must be
 * `application/json` (no form or text/plain "simple requests"); an optional
 * API key is checked as a bearer token; slow senders are cut off
 * (headersTimeoutMs, requestTimeoutMs).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { networkInterfaces, hostname } from 'node:os';
import { timingSafeEqual, createHash } from 'node:crypto';
import { ContextOverflowError, InvalidOptionError, SieveError } from '../errors.ts';
import { runCompletion, validateCompletionRequest, type TextCompletion } from './completions.ts';
import type { ChatCompletion, ChatCompletionChunk, CompletionUsage, SieveEngine } from './types.ts';

export interface ServeOptions {
  port?: number;
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Largest request body accepted (default 1 MiB). */
  maxBodyBytes?: number;
  /** Bearer token every route but /health (and CORS preflights) requires. */
  apiKey?: string;
  /** The one cross-origin site allowed to call (CORS headers and preflight), e.g. http://localhost:5173. Off by default. */
  cors?: string;
  /** Called once per finished request with one line: method, path, status, tokens, ms. */
  log?: (line: string) => void;
  /** Time to receive the request headers (default 20 s); slower clients get a 408 and are disconnected. */
  headersTimeoutMs?: number;
  /** Time to receive the whole request, body included (default 60 s). */
  requestTimeoutMs?: number;
}

export interface RunningServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Marks errors of the engine layer that map to their own HTTP status (e.g. 503 after a restart, 504 past the budget). */
export interface HttpStatusError {
  httpStatus: number;
  httpCode: string;
}
const hasStatus = (e: unknown): e is Error & HttpStatusError => typeof e === 'object' && e !== null && typeof (e as HttpStatusError).httpStatus === 'number';

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function errorBody(e: unknown): { status: number; body: { error: { message: string; type: string; param: string | null; code: string } } } {
  let status = 500;
  let code = 'internal_error';
  let param: string | null = null;
  let type = 'server_error';
  if (e instanceof HttpError) {
    status = e.status;
    code = e.code;
    param = e.param;
    type = status < 500 ? 'invalid_request_error' : 'server_error';
  } else if (hasStatus(e)) {
    status = e.httpStatus;
    code = e.httpCode;
  } else if (e instanceof InvalidOptionError) {
    status = 400;
    code = 'invalid_option';
    param = String(e.details.option ?? '');
    type = 'invalid_request_error';
  } else if (e instanceof ContextOverflowError) {
    status = 400;
    code = 'context_length_exceeded';
    type = 'invalid_request_error';
  } else if (e instanceof SieveError) {
    code = e.code.toLowerCase();
    // a typed error about the request's content (its chat template, tokenizer limits) is the request's fault
    if (e.code === 'TOKENIZER') {
      status = 422;
      type = 'invalid_request_error';
    }
  }
  let message = (e as Error)?.message ?? String(e);
  if (message.length > 2000) message = `${message.slice(0, 2000)}...`;
  return { status, body: { error: { message, type, param, code } } };
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, 'body_too_large'));
      return;
    }
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

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];
const bracket = (a: string) => (a.includes(':') && !a.startsWith('[') ? `[${a}]` : a).toLowerCase();
const isLoopback = (h: string) => h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);

/**
 * Host header values that name this server: for a loopback bind 127.0.0.1, localhost and [::1]
 * (with the port; bare when the port is 80); for a wildcard bind (0.0.0.0, ::) also every local
 * interface address and the host name; otherwise the bound address itself.
 */
export function allowedHosts(bound: string, port: number): Set<string> {
  const names = new Set<string>();
  const h = bound.toLowerCase();
  if (isLoopback(h)) {
    for (const n of LOOPBACK_NAMES) names.add(n);
    names.add(bracket(h));
  } else if (h === '0.0.0.0' || h === '::' || h === '[::]') {
    for (const n of LOOPBACK_NAMES) names.add(n);
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(bracket(a.address.split('%')[0]));
    names.add(hostname().toLowerCase());
  } else names.add(bracket(h));
  const out = new Set<string>();
  for (const n of names) {
    out.add(`${n}:${port}`);
    if (port === 80) out.add(n);
  }
  return out;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** OpenAI message content given as parts: text parts joined with '\n'; other part types refused naming the part. */
function normalizeMessages(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null) return m;
    const msg = m as Record<string, unknown>;
    const out: Record<string, unknown> = { ...msg };
    if (msg.role === 'developer') out.role = 'system'; // the newer SDKs' name for the system role
    if (Array.isArray(msg.content)) {
      out.content = msg.content
        .map((p: unknown, j: number) => {
          const where = `messages[${i}].content[${j}]`;
          if (typeof p !== 'object' || p === null || Array.isArray(p))
            throw new HttpError(400, `invalid option '${where}': must be an object {type: 'text', text}`, 'invalid_option', where);
          const part = p as Record<string, unknown>;
          if (part.type !== 'text') {
            throw new HttpError(
              400,
              `invalid option '${where}.type': ${JSON.stringify(part.type) ?? 'undefined'} content parts are not supported; this server takes text parts only`,
              'unsupported_content_part',
              `${where}.type`,
            );
          }
          if (typeof part.text !== 'string') throw new HttpError(400, `invalid option '${where}.text': must be a string`, 'invalid_option', `${where}.text`);
          return part.text;
        })
        .join('\n');
    }
    return out;
  });
}

interface Exchange {
  tokens?: CompletionUsage;
}

export function createHandler(engine: SieveEngine, opts: ServeOptions & { hosts: Set<string> }) {
  const limit = opts.maxBodyBytes ?? 1 << 20;
  const started = Math.floor(Date.now() / 1000);
  const keyDigest = opts.apiKey ? digest(opts.apiKey) : undefined;
  const ownOrigins = new Set([...opts.hosts].map((h) => `http://${h}`));
  const modelObject = () => ({ id: engine.model.id, object: 'model', created: started, owned_by: 'sieve' });
  const modelNotFound = (id: string, param: string | null) =>
    new HttpError(404, `The model '${id}' does not exist; this server serves '${engine.model.id}'`, 'model_not_found', param);

  async function handle(req: IncomingMessage, res: ServerResponse, path: string, ex: Exchange, ac: AbortController): Promise<void> {
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1 still sends Host: evil.example
    const host = req.headers.host?.toLowerCase();
    if (!host) throw new HttpError(400, 'the Host header is required', 'missing_host');
    if (!opts.hosts.has(host))
      throw new HttpError(403, `Host '${host.slice(0, 200)}' is not this server's address; use ${[...opts.hosts][0]}`, 'host_not_allowed');
    const origin = req.headers.origin;
    const corsOk = opts.cors !== undefined && origin === opts.cors;
    if (corsOk) {
      res.setHeader('access-control-allow-origin', opts.cors!);
      res.setHeader('vary', 'origin');
    }
    if (req.method === 'OPTIONS') {
      if (origin !== undefined && !corsOk && !ownOrigins.has(origin))
        throw new HttpError(403, `cross-origin requests from ${origin.slice(0, 200)} are not allowed (see --cors)`, 'origin_not_allowed');
      const headers: Record<string, string> = { allow: 'GET, POST, OPTIONS' };
      if (corsOk) {
        headers['access-control-allow-methods'] = 'GET, POST, OPTIONS';
        headers['access-control-allow-headers'] = String(req.headers['access-control-request-headers'] ?? 'authorization, content-type').slice(0, 1000);
        headers['access-control-max-age'] = '600';
      }
      res.writeHead(204, headers);
      res.end();
      return;
    }
    // CSRF: a browser names the page's origin; only our own pages and the --cors site may call
    if (origin !== undefined && !corsOk && !ownOrigins.has(origin)) {
      throw new HttpError(
        403,
        `cross-origin requests from ${origin.slice(0, 200)} are not allowed${opts.cors ? `; only ${opts.cors}` : ' (see --cors)'}`,
        'origin_not_allowed',
      );
    }
    if (path === '/health') {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on ${path}; use GET`, 'method_not_allowed', null, { allow: 'GET' });
      const extra = (engine as { health?: () => Record<string, unknown> }).health?.() ?? {};
      sendJson(res, 200, { status: 'ok', model: engine.model.id, ...extra });
      return;
    }
    if (keyDigest) {
      const auth = req.headers.authorization;
      const m = typeof auth === 'string' ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
      if (!m)
        throw new HttpError(401, 'this server needs an API key: send Authorization: Bearer KEY', 'missing_api_key', null, { 'www-authenticate': 'Bearer' });
      if (!timingSafeEqual(digest(m[1]), keyDigest))
        throw new HttpError(401, 'the API key is not valid', 'invalid_api_key', null, { 'www-authenticate': 'Bearer' });
    }
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on ${path}; use GET`, 'method_not_allowed', null, { allow: 'GET' });
      if (path === '/v1/models') {
        sendJson(res, 200, { object: 'list', data: [modelObject()] });
        return;
      }
      let id: string;
      try {
        id = decodeURIComponent(path.slice('/v1/models/'.length));
      } catch {
        id = path.slice('/v1/models/'.length);
      }
      if (id !== engine.model.id) throw modelNotFound(id.slice(0, 200), null);
      sendJson(res, 200, modelObject());
      return;
    }
    const chat = path === '/v1/chat/completions';
    if (!chat && path !== '/v1/completions') {
      throw new HttpError(404, `no route ${path.slice(0, 200)}; try /v1/models, /v1/chat/completions or /v1/completions`, 'not_found');
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed on ${path}; use POST`, 'method_not_allowed', null, { allow: 'POST' });
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim()
      .toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(
        415,
        `the request body must be JSON sent as Content-Type: application/json${type ? `, not ${type.slice(0, 100)}` : ''}`,
        'unsupported_media_type',
      );
    }
    const text = await readBody(req, limit);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object', 'invalid_request');
    const b = body as Record<string, unknown>;
    if ('signal' in b) throw new HttpError(400, "invalid option 'signal': is not supported", 'invalid_option', 'signal');
    if (typeof b.model === 'string' && b.model !== engine.model.id) throw modelNotFound(b.model.slice(0, 200), 'model');

    let result: unknown;
    let stream: boolean;
    if (chat) {
      const request = { ...b, messages: normalizeMessages(b.messages), signal: ac.signal } as Parameters<SieveEngine['chat']['completions']['create']>[0];
      stream = request.stream === true;
      result = await engine.chat.completions.create(request);
    } else {
      const v = validateCompletionRequest(b, engine.model.vocabSize);
      stream = v.stream;
      result = await runCompletion(engine, v.input, { ...v.options, signal: ac.signal }, v.stream);
    }
    if (!stream) {
      ex.tokens = (result as ChatCompletion | TextCompletion).usage;
      sendJson(res, 200, result);
      return;
    }
    const iter = (result as AsyncIterable<ChatCompletionChunk | TextCompletion>)[Symbol.asyncIterator]();
    const first = await iter.next(); // errors before the first token (context overflow...) still get a 4xx
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }); // Connection as the client asked
    try {
      for (let r = first; !r.done; r = await iter.next()) {
        if (r.value.usage) ex.tokens = r.value.usage;
        if (ac.signal.aborted) continue; // drain: the engine ends at its next step
        res.write(`data: ${JSON.stringify(r.value)}\n\n`);
      }
    } catch (e) {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(errorBody(e).body)}\n\n`);
    }
    if (!res.destroyed) res.end('data: [DONE]\n\n');
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const rawUrl = req.url ?? '/';
    const path = rawUrl.split('?')[0];
    const ex: Exchange = {};
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
      if (opts.log) {
        const t = ex.tokens;
        const tokens = t ? `${t.prompt_tokens}+${t.completion_tokens}` : '-';
        const shown = path.length > 200 ? `${path.slice(0, 200)}...` : path;
        opts.log(
          `${req.method} ${JSON.stringify(shown).slice(1, -1)} ${res.writableFinished ? res.statusCode : `${res.statusCode} (closed)`} tokens=${tokens} ${Math.round(performance.now() - t0)}ms`,
        );
      }
    });
    try {
      await handle(req, res, path, ex, ac);
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, body } = errorBody(e);
      const headers = e instanceof HttpError ? e.headers : {};
      // a refused request may still be sending its body: answer, then close instead of reading it
      if (!req.complete) headers.connection = 'close';
      sendJson(res, status, body, headers);
    }
  };
}

/** Checks the options startServer takes (InvalidOptionError naming the option); the CLI calls it before loading the model. */
export function validateServeOptions(opts: ServeOptions, names: { cors?: string; apiKey?: string } = {}): void {
  if (opts.cors !== undefined && !/^https?:\/\/[^/\s?#]+$/.test(opts.cors)) {
    throw new InvalidOptionError(
      names.cors ?? 'cors',
      `must be an origin like http://localhost:5173 (scheme and host, no path), got ${JSON.stringify(opts.cors)}`,
    );
  }
  if (opts.apiKey !== undefined && (typeof opts.apiKey !== 'string' || opts.apiKey.length === 0 || /\s/.test(opts.apiKey))) {
    throw new InvalidOptionError(names.apiKey ?? 'apiKey', 'must be a non-empty string without spaces');
  }
}

export function startServer(engine: SieveEngine, opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const headersTimeout = opts.headersTimeoutMs ?? 20_000;
  const requestTimeout = Math.max(opts.requestTimeoutMs ?? 60_000, headersTimeout);
  validateServeOptions(opts);
  const server = createServer({
    headersTimeout,
    requestTimeout,
    // how often Node checks those two timeouts (default 30 s): a fraction of the shorter one
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(headersTimeout / 4))),
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
      const handler = createHandler(engine, { ...opts, hosts: allowedHosts(host, port) });
      server.on('request', (req, res) => {
        void handler(req, res);
      });
      server.off('error', reject);
      resolve({
        server,
        port,
        url: `http://${bracket(host)}:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}
