/**
 * The HTTP layer of `sieve serve` on loopback: routing, validation (4xx JSON
 * naming the field), SSE framing, disconnect -> abort, and still serving
 * afterwards. The engine here is a scripted generator (no model): the same
 * endpoints run on stories260k in test/api/engine.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { request } from 'node:http';
import { connect } from 'node:net';
import { allowedHosts, startServer, type RunningServer, type ServeOptions } from '../../src/api/http.ts';
import { hostname } from 'node:os';
import { makeChatCompletions } from '../../src/api/openai.ts';
import { resolveGenerate } from '../../src/api/options.ts';
import { ContextOverflowError } from '../../src/errors.ts';
import { parseServeArgs } from '../../src/cli/commands/serve.ts';
import type { GenerateChunk, GenerateInput, GenerateOptions, SieveEngine } from '../../src/api/types.ts';

const aborted: boolean[] = [];
const prompts: string[] = [];
async function* scripted(input: GenerateInput, o: GenerateOptions): AsyncGenerator<GenerateChunk> {
  const r = resolveGenerate(o);
  if (Array.isArray(input) && input[0].content === 'overflow') throw new ContextOverflowError(999, 64);
  if (typeof input === 'string') prompts.push(input);
  else if (Array.isArray(input)) prompts.push(input.map((m) => `${m.role}:${m.content}`).join('|'));
  for (let i = 0; i < r.maxTokens; i++) {
    if (o.signal?.aborted) {
      aborted.push(true);
      yield { text: '', tokenIds: [], finishReason: 'abort' };
      return;
    }
    await new Promise((res) => setTimeout(res, 5));
    yield { text: `t${i} `, tokenIds: [i] };
  }
  yield {
    text: '',
    tokenIds: [],
    finishReason: 'length',
    stats: { promptTokens: 3, cachedTokens: 0, prefillTokens: 3, completionTokens: r.maxTokens, ttftMs: 1, prefillTokPerS: 1, decodeTokPerS: 1, totalMs: 1 },
  };
}
const engine: SieveEngine = {
  model: { id: 'scripted', family: 'internlm2', vocabSize: 10, contextLength: 64, hasChatFormat: true, kernels: 'f32' },
  generate: (i, o = {}) => scripted(i, o),
  chat: {
    completions: makeChatCompletions(
      (i, o) => scripted(i, o),
      () => 'scripted',
    ),
  },
  cachedTokens: async () => 0,
  resetChat: async () => {},
  unload: async () => {},
};

let srv: RunningServer;
const logLines: string[] = [];
beforeAll(async () => {
  srv = await startServer(engine, { port: 0, maxBodyBytes: 4096, log: (l) => logLines.push(l) });
});
afterAll(async () => {
  await srv.close();
});

interface Reply {
  status: number;
  text: string;
  type: string;
  headers: Record<string, string | string[] | undefined>;
}
function call(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const h = { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers };
    const req = request({ host: '127.0.0.1', port, method, path, headers: h }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type']), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const http = (method: string, path: string, body?: string, headers?: Record<string, string>) => call(srv.port, method, path, body, headers);
async function withServer(o: ServeOptions, fn: (port: number, s: RunningServer) => Promise<void>): Promise<void> {
  const s = await startServer(engine, { port: 0, ...o });
  try {
    await fn(s.port, s);
  } finally {
    await s.close();
  }
}
const errorOf = (r: Reply) => {
  expect(r.type).toContain('application/json');
  return JSON.parse(r.text).error as { message: string; code: string; param: string | null };
};
const msgs = [{ role: 'user', content: 'hi' }];

describe('sieve serve HTTP layer (127.0.0.1)', () => {
  it('binds loopback and lists the model', async () => {
    expect(srv.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await http('GET', '/v1/models');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).data[0].id).toBe('scripted');
  });
  it('non-streamed completion', async () => {
    const r = await http('POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, max_tokens: 3 }));
    expect(r.status).toBe(200);
    const j = JSON.parse(r.text);
    expect(j.choices[0].message.content).toBe('t0 t1 t2 ');
    expect(j.choices[0].finish_reason).toBe('length');
    expect(j.usage.completion_tokens).toBe(3);
  });
  it('streamed completion: SSE chunks ending in [DONE]', async () => {
    const r = await http('POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, max_tokens: 4, stream: true }));
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/event-stream');
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('t0 t1 t2 t3 ');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
  });
  it('4xx JSON errors: malformed JSON, wrong types, unknown fields, oversize body, bad routes', async () => {
    const cases: [string, string, string | undefined, number, string | null][] = [
      ['POST', '/v1/chat/completions', '{"messages": [', 400, null],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, temperature: 'hot' }), 400, 'temperature'],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: 'hi' }), 400, 'messages'],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, max_tokens: 1.5 }), 400, 'max_tokens'],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, stream: 1 }), 400, 'stream'],
      ['POST', '/v1/chat/completions', JSON.stringify([1]), 400, null],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] }), 413, null],
      ['GET', '/v1/chat/completions', undefined, 405, null],
      ['GET', '/nope', undefined, 404, null],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'overflow' }], stream: true }), 400, null],
      ['POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'overflow' }] }), 400, null],
    ];
    for (const [method, path, body, status, param] of cases) {
      const r = await http(method, path, body);
      expect(r.status, `${method} ${path} ${body?.slice(0, 40)}`).toBe(status);
      expect(r.type).toContain('application/json');
      const j = JSON.parse(r.text);
      expect(typeof j.error.message).toBe('string');
      if (param) expect(j.error.param).toBe(param);
    }
    expect((await http('GET', '/v1/models')).status).toBe(200); // still serving
  });
  it('closing the connection mid-stream aborts the generation; the server keeps serving', async () => {
    const before = aborted.length;
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: srv.port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => {});
      req.end(JSON.stringify({ messages: msgs, max_tokens: 200, stream: true }));
      setTimeout(() => reject(new Error('no data')), 5000);
    });
    for (let i = 0; i < 100 && aborted.length === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(aborted.length).toBe(before + 1);
    const r = await http('POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, max_tokens: 2 }));
    expect(JSON.parse(r.text).choices[0].message.content).toBe('t0 t1 ');
  });
});

describe('OpenAI compatibility (issue 18)', () => {
  it('content given as parts: text parts joined; other part types a 400 naming the part', async () => {
    const parts = [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'hello' },
          { type: 'text', text: 'world' },
        ],
      },
      { role: 'developer', content: 'be brief' },
    ];
    const r = await http('POST', '/v1/chat/completions', JSON.stringify({ messages: parts, max_tokens: 1 }));
    expect(r.status).toBe(200);
    expect(prompts.at(-1)).toBe('user:hello\nworld|system:be brief');
    const img = await http(
      'POST',
      '/v1/chat/completions',
      JSON.stringify({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'x' },
              { type: 'image_url', image_url: { url: 'data:,' } },
            ],
          },
        ],
      }),
    );
    expect(img.status).toBe(400);
    expect(errorOf(img)).toMatchObject({ code: 'unsupported_content_part', param: 'messages[0].content[1].type' });
    expect(errorOf(img).message).toContain('image_url');
    for (const bad of [[1], [{ type: 'text' }], [{ type: 'text', text: 3 }], [null]]) {
      const b = await http('POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: bad }] }));
      expect(b.status, JSON.stringify(bad)).toBe(400);
      expect(errorOf(b).param).toMatch(/^messages\[0\]\.content\[0\]/);
    }
  });

  it('/health, /v1/models/{id}, and an unknown model is 404 model_not_found', async () => {
    const h = await http('GET', '/health');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text)).toMatchObject({ status: 'ok', model: 'scripted' });
    const m = await http('GET', '/v1/models/scripted');
    expect(m.status).toBe(200);
    expect(JSON.parse(m.text)).toMatchObject({ id: 'scripted', object: 'model', owned_by: 'sieve' });
    const u = await http('GET', '/v1/models/gpt-4o');
    expect(u.status).toBe(404);
    expect(errorOf(u).code).toBe('model_not_found');
    for (const path of ['/v1/chat/completions', '/v1/completions']) {
      const body = path === '/v1/completions' ? { model: 'gpt-4o', prompt: 'x' } : { model: 'gpt-4o', messages: msgs };
      const r = await http('POST', path, JSON.stringify(body));
      expect(r.status).toBe(404);
      expect(errorOf(r)).toMatchObject({ code: 'model_not_found', param: 'model' });
    }
    const ok = await http('POST', '/v1/chat/completions', JSON.stringify({ model: 'scripted', messages: msgs, max_tokens: 1 }));
    expect(ok.status).toBe(200);
  });

  it('/v1/completions: text_completion shapes, streamed and not; default max_tokens 16; unsupported fields named', async () => {
    const r = await http('POST', '/v1/completions', JSON.stringify({ prompt: 'Once', max_tokens: 3 }));
    expect(r.status).toBe(200);
    const j = JSON.parse(r.text);
    expect(j).toMatchObject({
      object: 'text_completion',
      model: 'scripted',
      choices: [{ index: 0, text: 't0 t1 t2 ', finish_reason: 'length', logprobs: null }],
    });
    expect(j.id).toMatch(/^cmpl-/);
    expect(j.usage.completion_tokens).toBe(3);
    expect(prompts.at(-1)).toBe('Once');
    const d = JSON.parse((await http('POST', '/v1/completions', JSON.stringify({ prompt: ['Once'] }))).text);
    expect(d.usage.completion_tokens).toBe(16);
    const s = await http('POST', '/v1/completions', JSON.stringify({ prompt: 'Once', max_tokens: 4, stream: true }));
    expect(s.type).toContain('text/event-stream');
    const events = s.text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')));
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe('t0 t1 t2 t3 ');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1).usage.completion_tokens).toBe(4);
    const ids = await http('POST', '/v1/completions', JSON.stringify({ prompt: [1, 2], max_tokens: 1 }));
    expect(ids.status).toBe(200);
    for (const [body, param] of [
      [{ prompt: 'x', echo: true }, 'echo'],
      [{ prompt: 'x', n: 2 }, 'n'],
      [{ prompt: ['a', 'b'] }, 'prompt'],
      [{ prompt: '' }, 'prompt'],
      [{ prompt: [10] }, 'prompt'],
      [{}, 'prompt'],
      [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
      [{ prompt: 'x', suffix: 'y' }, 'suffix'],
      [{ prompt: 'x', wat: 1 }, 'wat'],
    ] as const) {
      const b = await http('POST', '/v1/completions', JSON.stringify(body));
      expect(b.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(b).param).toBe(param);
    }
  });

  it('--api-key: bearer auth on every route but /health; 401 without or with a wrong key', async () => {
    await withServer({ apiKey: 'sk-test-123' }, async (port) => {
      const body = JSON.stringify({ messages: msgs, max_tokens: 1 });
      const none = await call(port, 'POST', '/v1/chat/completions', body);
      expect(none.status).toBe(401);
      expect(errorOf(none).code).toBe('missing_api_key');
      expect(none.headers['www-authenticate']).toBe('Bearer');
      const wrong = await call(port, 'GET', '/v1/models', undefined, { authorization: 'Bearer sk-test-124' });
      expect(wrong.status).toBe(401);
      expect(errorOf(wrong).code).toBe('invalid_api_key');
      expect((await call(port, 'GET', '/v1/models', undefined, { authorization: 'Basic c2stdGVzdC0xMjM=' })).status).toBe(401);
      expect((await call(port, 'GET', '/v1/models', undefined, { authorization: 'Bearer sk-test-123' })).status).toBe(200);
      expect((await call(port, 'POST', '/v1/chat/completions', body, { authorization: 'Bearer sk-test-123' })).status).toBe(200);
      expect((await call(port, 'GET', '/health')).status).toBe(200);
    });
  });

  it('one log line per request: method, path, status, tokens, ms', async () => {
    logLines.length = 0;
    await http('POST', '/v1/chat/completions', JSON.stringify({ messages: msgs, max_tokens: 2 }));
    await http('GET', '/nope?secret=1');
    await http('POST', '/v1/completions', JSON.stringify({ prompt: 'x', max_tokens: 2, stream: true }));
    await new Promise((r) => setTimeout(r, 20));
    expect(logLines).toHaveLength(3);
    expect(logLines[0]).toMatch(/^POST \/v1\/chat\/completions 200 tokens=3\+2 \d+ms$/);
    expect(logLines[1]).toMatch(/^GET \/nope 404 tokens=- \d+ms$/);
    expect(logLines[2]).toMatch(/^POST \/v1\/completions 200 tokens=3\+2 \d+ms$/);
  });
});

describe('the official openai npm client against sieve serve (issue 18)', () => {
  const client = (baseURL: string, apiKey = 'unused') => new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 10_000 });

  it('chat.completions.create, plain and streamed, content given as text parts', async () => {
    const oa = client(srv.url);
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'be brief' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'hello' },
          { type: 'text', text: 'there' },
        ],
      },
    ];
    const r = await oa.chat.completions.create({ model: 'scripted', messages, max_tokens: 3, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('scripted');
    expect(r.choices[0].message).toMatchObject({ role: 'assistant', content: 't0 t1 t2 ' });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage?.completion_tokens).toBe(3);
    expect(prompts.at(-1)).toBe('system:be brief|user:hello\nthere');

    const stream = await oa.chat.completions.create({ model: 'scripted', messages, max_tokens: 4, stream: true });
    let text = '';
    const finish: (string | null)[] = [];
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.choices[0]) finish.push(chunk.choices[0].finish_reason);
    }
    expect(text).toBe('t0 t1 t2 t3 ');
    expect(finish.at(-1)).toBe('length');
    expect(finish.slice(0, -1).every((f) => f === null)).toBe(true);
  });

  it('completions.create, plain and streamed', async () => {
    const oa = client(srv.url);
    const r = await oa.completions.create({ model: 'scripted', prompt: 'Once', max_tokens: 3 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]).toMatchObject({ text: 't0 t1 t2 ', finish_reason: 'length' });
    expect(r.usage?.completion_tokens).toBe(3);
    expect(prompts.at(-1)).toBe('Once');
    const stream = await oa.completions.create({ model: 'scripted', prompt: 'Twice', max_tokens: 4, stream: true });
    let text = '';
    let last: OpenAI.Completion | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      last = chunk;
    }
    expect(text).toBe('t0 t1 t2 t3 ');
    expect(last?.choices[0].finish_reason).toBe('length');
    expect(prompts.at(-1)).toBe('Twice');
  });

  it('models.list, models.retrieve; an unknown model raises NotFoundError model_not_found', async () => {
    const oa = client(srv.url);
    const ids: string[] = [];
    for await (const m of oa.models.list()) ids.push(m.id);
    expect(ids).toEqual(['scripted']);
    expect(await oa.models.retrieve('scripted')).toMatchObject({ id: 'scripted', object: 'model', owned_by: 'sieve' });
    const notFound = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as InstanceType<typeof OpenAI.NotFoundError>).status).toBe(404);
      expect((e as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
      return e as InstanceType<typeof OpenAI.NotFoundError>;
    };
    await notFound(oa.models.retrieve('gpt-4o'));
    const chat = await notFound(oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }));
    expect(chat.param).toBe('model');
    expect(chat.message).toContain('gpt-4o');
    await notFound(oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }));
    await notFound(oa.completions.create({ model: 'gpt-4o', prompt: 'x' }));
    // a 400 from validation reaches the client typed too, naming the field
    const bad = await oa.chat.completions.create({ model: 'scripted', messages: [{ role: 'user', content: 'hi' }], max_tokens: 0 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('max_tokens');
  });

  it('--api-key: the right key works; a wrong key raises AuthenticationError (401)', async () => {
    await withServer({ apiKey: 'sk-test-123' }, async (port) => {
      const url = `http://127.0.0.1:${port}`;
      const ok = await client(url, 'sk-test-123').chat.completions.create({ model: 'scripted', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      expect(ok.choices[0].message.content).toBe('t0 t1 ');
      expect((await client(url, 'sk-test-123').models.retrieve('scripted')).id).toBe('scripted');
      for (const call of [
        () => client(url, 'sk-test-124').chat.completions.create({ model: 'scripted', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
        () => client(url, 'sk-test-124').models.list(),
      ]) {
        const e = await call().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
        expect((e as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
        expect((e as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
      }
    });
  });
});

describe('server security (issue 20)', () => {
  it('POST bodies must be application/json: text/plain and form bodies get 415', async () => {
    const body = JSON.stringify({ messages: msgs, max_tokens: 1 });
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await http('POST', '/v1/chat/completions', body, { 'content-type': type });
      expect(r.status, type).toBe(415);
      expect(errorOf(r).code).toBe('unsupported_media_type');
    }
    expect((await http('POST', '/v1/chat/completions', body, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
  });

  it('Host must name the bound address (DNS rebinding)', async () => {
    const p = srv.port;
    for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, `[::1]:${p}`, `LOCALHOST:${p}`]) {
      expect((await http('GET', '/v1/models', undefined, { host })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${p}`, 'evil.example', `127.0.0.1:${p + 1}`, '127.0.0.1', `localhost.evil.example:${p}`]) {
      const r = await http('GET', '/health', undefined, { host });
      expect(r.status, host).toBe(403);
      expect(errorOf(r).code).toBe('host_not_allowed');
    }
  });

  it('allowed Host values follow the bound address', () => {
    const loop = allowedHosts('127.0.0.1', 8080);
    expect([...loop].sort()).toEqual(['127.0.0.1:8080', '[::1]:8080', 'localhost:8080']);
    const lan = allowedHosts('192.168.1.5', 80);
    expect([...lan].sort()).toEqual(['192.168.1.5', '192.168.1.5:80']);
    expect(allowedHosts('::1', 9)).toContain('[::1]:9');
    const any = allowedHosts('0.0.0.0', 9);
    expect(any).toContain('127.0.0.1:9');
    expect(any).toContain(`${hostname().toLowerCase()}:9`);
    expect(any).not.toContain('evil.example:9');
  });

  it('Origin other than our own is refused (CSRF); --cors allows exactly one origin, with preflight', async () => {
    const body = JSON.stringify({ messages: msgs, max_tokens: 1 });
    const evil = await http('POST', '/v1/chat/completions', body, { origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(errorOf(evil).code).toBe('origin_not_allowed');
    expect((await http('GET', '/v1/models', undefined, { origin: 'null' })).status).toBe(403);
    expect((await http('POST', '/v1/chat/completions', body, { origin: `http://127.0.0.1:${srv.port}` })).status).toBe(200);
    const pre = await http('OPTIONS', '/v1/chat/completions', undefined, { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' });
    expect(pre.status).toBe(403);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();

    const site = 'http://localhost:5173';
    await withServer({ cors: site, apiKey: 'k' }, async (port) => {
      const pf = await call(port, 'OPTIONS', '/v1/chat/completions', undefined, {
        origin: site,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, x-stainless-os',
      });
      expect(pf.status).toBe(204); // preflights carry no credentials
      expect(pf.headers['access-control-allow-origin']).toBe(site);
      expect(pf.headers['access-control-allow-methods']).toContain('POST');
      expect(pf.headers['access-control-allow-headers']).toContain('authorization');
      const r = await call(port, 'POST', '/v1/chat/completions', body, { origin: site, authorization: 'Bearer k' });
      expect(r.status).toBe(200);
      expect(r.headers['access-control-allow-origin']).toBe(site);
      const denied = await call(port, 'POST', '/v1/chat/completions', body, { origin: site });
      expect(denied.status).toBe(401);
      expect(denied.headers['access-control-allow-origin']).toBe(site); // the page can read why
      const other = await call(port, 'POST', '/v1/chat/completions', body, { origin: 'http://localhost:5174', authorization: 'Bearer k' });
      expect(other.status).toBe(403);
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    });
    expect(() => startServer(engine, { port: 0, cors: 'localhost:5173/x' })).toThrow(/cors/);
  });

  it('slowloris: a client that never finishes its headers or body is cut off; others are served meanwhile', async () => {
    await withServer({ headersTimeoutMs: 400, requestTimeoutMs: 800 }, async (port) => {
      const slow = (data: string) =>
        new Promise<{ text: string; ms: number }>((resolve) => {
          const t0 = Date.now();
          const sock = connect(port, '127.0.0.1', () => sock.write(data));
          let text = '';
          sock.on('data', (d) => {
            text += d;
          });
          sock.on('close', () => resolve({ text, ms: Date.now() - t0 }));
          sock.on('error', () => {});
          const drip = setInterval(() => {
            if (!sock.destroyed) sock.write('X-a: b\r\n'.slice(0, 1));
          }, 100);
          sock.on('close', () => clearInterval(drip));
        });
      const headers = slow(`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
      const body = slow(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
      expect((await call(port, 'GET', '/v1/models')).status).toBe(200);
      const [h, b] = await Promise.all([headers, body]);
      expect(h.text).toMatch(/^HTTP\/1\.1 408/);
      expect(h.ms).toBeLessThan(5000);
      expect(b.ms).toBeLessThan(5000);
      expect(b.text === '' || /^HTTP\/1\.1 408/.test(b.text)).toBe(true);
    });
  });

  it('50 concurrent requests are all answered, in full', async () => {
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        http(
          'POST',
          i % 2 ? '/v1/completions' : '/v1/chat/completions',
          JSON.stringify(i % 2 ? { prompt: `p${i}`, max_tokens: 2 } : { messages: msgs, max_tokens: 2, stream: i % 4 === 0 }),
        ),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual(new Array(50).fill(200));
    for (const [i, r] of replies.entries()) {
      if (i % 4 === 0) expect(r.text.endsWith('data: [DONE]\n\n')).toBe(true);
      else expect(r.text).toContain('t0 t1 ');
    }
  });
});

describe('sieve serve arguments (checked before the model loads)', () => {
  it('--api-key or SIEVE_API_KEY; --cors an origin; --timeout, --port checked and named', () => {
    const base = ['--model', 'm'];
    expect(parseServeArgs(base, {})).toMatchObject({ port: 8080, timeout: 300, apiKey: undefined });
    expect(parseServeArgs(base, {}).values.host).toBe('127.0.0.1');
    expect(parseServeArgs(base, { SIEVE_API_KEY: 'from-env' }).apiKey).toBe('from-env');
    expect(parseServeArgs([...base, '--api-key', 'flag'], { SIEVE_API_KEY: 'from-env' }).apiKey).toBe('flag');
    expect(parseServeArgs([...base, '--cors', 'http://localhost:5173'], {}).values.cors).toBe('http://localhost:5173');
    expect(() => parseServeArgs([...base, '--cors', 'localhost:5173'], {})).toThrow(/--cors/);
    expect(() => parseServeArgs([...base, '--cors', 'http://a.example/path'], {})).toThrow(/--cors/);
    expect(() => parseServeArgs([...base, '--api-key', ''], {})).toThrow(/--api-key/);
    expect(() => parseServeArgs(base, { SIEVE_API_KEY: 'a b' })).toThrow(/SIEVE_API_KEY/);
    expect(() => parseServeArgs([...base, '--timeout', '0'], {})).toThrow(/--timeout/);
    expect(() => parseServeArgs([...base, '--port', '70000'], {})).toThrow(/--port/);
  });
});
