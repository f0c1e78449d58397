// The TTFT harness's Chromium runner (bench/ttft/chromium.ts; table and JSON shared with bench/ttft/node.ts) end to end on a small scale: it serves
// the built component (dist/sieve-chat.js, one script tag on bench/ttft/page.html)
// itself, drives its own Chromium, and writes JSON + SVG.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { ensureDist, STORIES } from './component-helpers.ts';

test('TTFT harness: dense vs sample on stories260k, JSON + SVG + table', async ({}, info) => {
  ensureDist();
  const out = info.outputPath('ttft');
  const stdout = execFileSync(
    'node',
    [
      '--import',
      'tsx',
      '--import',
      './src/cli/raw-register.mjs',
      'bench/ttft/chromium.ts',
      '--lengths',
      '96,200',
      '--modes',
      'dense,sample',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--model',
      STORIES,
      '--out',
      out,
    ],
    { encoding: 'utf8', timeout: 240_000 },
  );
  console.log(stdout);
  const result = JSON.parse(readFileSync(join(out, 'ttft.json'), 'utf8')) as {
    bench: string;
    runner: string;
    adapter: { vendor: string };
    model: { contextLength: number };
    seedIds: number[];
    load: { pageMs: number; bytes: number; mbPerS: number; firstByteMs: number; lastByteMs: number };
    rows: { length: number; mode: string; promptTokens: number; pageTtftMs: number; ttftMs: number; prefillRan?: string; cachedTokens: number }[];
  };
  expect([result.bench, result.runner]).toEqual(['ttft', 'chromium']);
  // The harness's first act is a greedy run from BOS in the page, through the built module: llama2.c's own ids.
  const golden = JSON.parse(readFileSync(join(STORIES, 'generation.golden.json'), 'utf8')) as { cases: { name: string; greedy_ids_first_100?: number[] }[] };
  expect(result.seedIds).toEqual(golden.cases.find((c) => c.name === 'from_bos')!.greedy_ids_first_100!.slice(0, 64));
  // The load, page-measured: every weight byte reported, within the load's time.
  expect(result.load.bytes).toBeGreaterThan(0);
  expect(result.load.firstByteMs).toBeLessThanOrEqual(result.load.lastByteMs);
  expect(result.load.lastByteMs).toBeLessThanOrEqual(result.load.pageMs);
  expect(stdout).toMatch(/load: [\d.]+ s page-measured/);
  expect(result.model.contextLength).toBe(200 + 64); // the longest prompt plus room, within the model's 512
  expect(result.rows.map((r) => `${r.length}/${r.mode}`)).toEqual(['96/dense', '96/sample', '200/dense', '200/sample']);
  for (const r of result.rows) {
    expect(r.promptTokens).toBe(r.length);
    expect(r.cachedTokens).toBe(0); // each run prefilled the whole prompt
    // The page sees the first token after the engine produced it.
    expect(r.pageTtftMs).toBeGreaterThanOrEqual(r.ttftMs);
    expect(r.ttftMs).toBeGreaterThan(0);
  }
  expect(result.rows.find((r) => r.length === 200 && r.mode === 'sample')?.prefillRan).toBe('sample');
  const svg = readFileSync(join(out, 'ttft.svg'), 'utf8');
  expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  expect(svg.match(/<polyline /g)?.length).toBe(2);
  expect(stdout).toMatch(/length +mode +TTFT ms +page TTFT ms/); // the table bench/ttft/node.ts prints too
});
