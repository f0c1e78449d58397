/**
 * `sieve serve`'s engine in a child process (src/api/engine-process.ts): a
 * request past its time budget fails alone with a 504; a stuck or crashed
 * engine process is killed and restarted, its request answered 503, and the
 * server keeps serving. The child runs a scripted engine (no model) so these
 * paths are exact and fast; test/api/serve-model.test.ts runs stories260k.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessEngine } from '../../src/api/engine-process.ts';
import { startServer, type RunningServer } from '../../src/api/http.ts';
import { ModelFormatError } from '../../src/errors.ts';

const LOADER = new URL('./fixtures/scripted-engine.ts', import.meta.url).href;
let engine: ProcessEngine;
let srv: RunningServer;
const log: string[] = [];

beforeAll(async () => {
  engine = await ProcessEngine.start(
    'scripted',
    {},
    { loader: LOADER, budgetMs: 1000, graceMs: 500, maxHeapMb: 128, log: (l) => log.push(l), stderr: 'ignore' },
  );
  srv = await startServer(engine, { port: 0 });
});
afterAll(async () => {
  await srv?.close();
  await engine?.unload();
});

const post = async (content: string, extra: object = {}) => {
  const t0 = Date.now();
  const r = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 3, ...extra }),
  });
  return { status: r.status, text: await r.text(), ms: Date.now() - t0 };
};
const health = async () => (await (await fetch(`${srv.url}/health`)).json()) as { engine: string; restarts: number };

describe('engine process: budget, restart, and the server stays up', () => {
  it('serves chat from the child process', async () => {
    const r = await post('hi');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).choices[0].message.content).toBe('t0 t1 t2 ');
    expect(await health()).toMatchObject({ engine: 'ready', restarts: 0 });
  });

  it('a request past its budget is aborted through the signal: 504 timeout, no restart', async () => {
    const r = await post('slow', { max_tokens: 100 });
    expect(r.status).toBe(504);
    expect(JSON.parse(r.text).error.code).toBe('timeout');
    expect(r.ms).toBeLessThan(1000 + 500 + 1500);
    const s = await post('slow', { max_tokens: 100, stream: true });
    expect(s.status).toBe(200); // headers went out with the first token
    const events = s.text.trim().split('\n\n');
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(JSON.parse(events.at(-2)!.slice(6)).error.code).toBe('timeout');
    expect((await post('hi')).status).toBe(200);
    expect((await health()).restarts).toBe(0);
  });

  it('a stuck engine (a loop that never yields) is killed and restarted: 503 for it, later requests served', async () => {
    const stuck = post('spin');
    const queued = post('hi'); // waits behind the stuck one, then runs on the restarted child
    const r = await stuck;
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error.code).toBe('engine_restarted');
    expect(r.ms).toBeLessThan(1000 + 500 + 1500);
    const q = await queued;
    expect(q.status).toBe(200);
    expect(JSON.parse(q.text).choices[0].message.content).toBe('t0 t1 t2 ');
    expect(await health()).toMatchObject({ engine: 'ready', restarts: 1 });
    expect(log.some((l) => /did not stop within 500 ms/.test(l))).toBe(true);
  });

  it('a V8 fatal error in the engine (template range(1e9)) kills only the child: 503, then served again', async () => {
    const r = await post('fatal');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error.code).toBe('engine_restarted');
    const after = await post('hi');
    expect(after.status).toBe(200);
    expect((await health()).restarts).toBe(2);
    expect((await (await fetch(`${srv.url}/v1/models`)).json()).data[0].id).toBe('scripted');
  });

  it('an engine process killed from outside while idle is restarted; the next request waits for it and is served', async () => {
    const before = (await health()).restarts;
    (engine as unknown as { child: { proc: { kill(s: string): void } } }).child.proc.kill('SIGKILL');
    // (a request sent in the instant before the exit is seen is answered 503 engine_restarted)
    for (let i = 0; i < 200 && (await health()).restarts === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await health()).engine).toBe('loading');
    const r = await post('hi');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).choices[0].message.content).toBe('t0 t1 t2 ');
    expect((await health()).restarts).toBe(before + 1);
  });

  it('a client that disconnects aborts its generation in the child; the next request is served at once', async () => {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      signal: ac.signal,
      body: JSON.stringify({ messages: [{ role: 'user', content: 'slow' }], max_tokens: 100, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const t0 = Date.now();
    expect((await post('hi')).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(900); // not the slow request's remaining budget
  });

  it('a load error crosses the process with its class', async () => {
    const err = await ProcessEngine.start('fail-load', {}, { loader: LOADER, stderr: 'ignore' }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toContain('model.safetensors');
  });
});
