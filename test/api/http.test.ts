/**
 * The HTTP layer of `sieve serve` on loopback: routing, validation (4xx JSON
 * naming the field), SSE framing, disconnect -> abort, and still serving
 * afterwards. The engine here is a scripted generator (no model): the same
 * endpoints run on stories260k in test/api/engine.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { startServer, type RunningServer } from '../../src/api/http.ts';
import { makeChatCompletions } from '../../src/api/openai.ts';
import { resolveGenerate } from '../../src/api/options.ts';
import { ContextOverflowError } from '../../src/errors.ts';
import type { GenerateChunk, GenerateInput, GenerateOptions, SieveEngine } from '../../src/api/types.ts';

const aborted: boolean[] = [];
async function* scripted(input: GenerateInput, o: GenerateOptions): AsyncGenerator<GenerateChunk> {
  const r = resolveGenerate(o);
  if (Array.isArray(input) && input[0].content === 'overflow') throw new ContextOverflowError(999, 64);
  for (let i = 0; i < r.maxTokens; i++) {
    if (o.signal?.aborted) { aborted.push(true); yield { text: '', tokenIds: [], finishReason: 'abort' }; return; }
    await new Promise((res) => setTimeout(res, 5));
    yield { text: `t${i} `, tokenIds: [i] };
  }
  yield { text: '', tokenIds: [], finishReason: 'length', stats: { promptTokens: 3, cachedTokens: 0, prefillTokens: 3, completionTokens: r.maxTokens, ttftMs: 1, prefillTokPerS: 1, decodeTokPerS: 1, totalMs: 1 } };
}
const engine: SieveEngine = {
  model: { id: 'scripted', family: 'internlm2', vocabSize: 10, contextLength: 64, hasChatFormat: true },
  generate: (i, o = {}) => scripted(i, o),
  chat: { completions: makeChatCompletions((i, o) => scripted(i, o), () => 'scripted') },
  cachedTokens: async () => 0, resetChat: async () => {}, unload: async () => {},
};

let srv: RunningServer;
beforeAll(async () => { srv = await startServer(engine, { port: 0, maxBodyBytes: 4096 }); });
afterAll(async () => { await srv.close(); });

function http(method: string, path: string, body?: string): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
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
      const req = request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
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
