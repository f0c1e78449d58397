/**
 * `sieve serve` end to end on a real model: stories260k loaded by Dawn
 * (SwiftShader here) in the engine's child process, over 127.0.0.1. The
 * folder's tokenizer_config.json carries a hostile chat template
 * (`range(1000000000)`, issue 20 failure 1): a chat request fails with a typed
 * JSON error (the template's own limit, or 503 after the engine process died
 * and was restarted) and the server answers on. One model load only (the
 * restart's reload is left to run in the background; that later requests are
 * served after a restart is tested in engine-process.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/gpu.ts';
import { ProcessEngine } from '../../src/api/engine-process.ts';
import { startServer, type RunningServer } from '../../src/api/http.ts';

const STORIES = `${FIXTURES}stories260k`;
let dir: string;
let engine: ProcessEngine;
let srv: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sieve-serve-'));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.model']) symlinkSync(join(STORIES, f), join(dir, f));
  const cfg = JSON.parse(readFileSync(join(STORIES, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ ...cfg, chat_template: '{% for i in range(1000000000) %}{% endfor %}{{ messages[0].content }}' }),
  );
  engine = await ProcessEngine.start(
    dir,
    { weights: 'f32', kvDtype: 'f32', contextLength: 64, modelId: 'stories260k' },
    { budgetMs: 30_000, graceMs: 5_000, maxHeapMb: 256 },
  );
  srv = await startServer(engine, { port: 0 });
});
afterAll(async () => {
  await srv?.close();
  await engine?.unload();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const post = async (path: string, body: object) => {
  const r = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};
const completion = { model: 'stories260k', prompt: 'Once upon a time', max_tokens: 4, temperature: 0 };

describe('sieve serve on stories260k in the engine process', () => {
  let first = '';
  it('/v1/completions: real text, streamed and not, the same greedy continuation', async () => {
    const r = await post('/v1/completions', completion);
    expect(r.status).toBe(200);
    const j = JSON.parse(r.text);
    expect(j.choices[0].finish_reason).toBe('length');
    expect(j.usage.completion_tokens).toBe(4);
    first = j.choices[0].text;
    expect(first.trim().length).toBeGreaterThan(0);
    const s = await post('/v1/completions', { ...completion, stream: true });
    const events = s.text.trim().split('\n\n');
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(
      events
        .slice(0, -1)
        .map((e) => JSON.parse(e.slice(6)).choices[0].text)
        .join(''),
    ).toBe(first);
  });

  it('the official openai client gets the same greedy continuation, plain and streamed', async () => {
    const oa = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    expect((await oa.models.retrieve('stories260k')).id).toBe('stories260k');
    const r = await oa.completions.create(completion);
    expect(r.choices[0].text).toBe(first);
    expect(r.usage?.completion_tokens).toBe(4);
    let text = '';
    for await (const c of await oa.completions.create({ ...completion, stream: true })) text += c.choices[0]?.text ?? '';
    expect(text).toBe(first);
  });

  it('a chat request whose template loops 1e9 times fails with a typed error; the server lives on', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 2 });
    expect([422, 503]).toContain(r.status);
    const err = JSON.parse(r.text).error;
    expect(typeof err.message).toBe('string');
    expect(['tokenizer', 'engine_restarted']).toContain(err.code);
    const h = await (await fetch(`${srv.url}/health`)).json();
    expect(h.status).toBe('ok');
    expect(h.model).toBe('stories260k');
    const bad = await post('/v1/completions', { ...completion, model: 'gpt-4o' });
    expect(bad.status).toBe(404);
    expect(first.length).toBeGreaterThan(0);
  });
});
