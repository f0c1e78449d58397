// A second implementation, written by others, agreeing with ours (issue 19):
// stories260k exported to GGUF by bench/peer/export-gguf.ts and run by
// llama.cpp (wllama's wasm CPU build, in this Chromium) gives the same greedy
// tokens as sieve, computed in the same page: 64 tokens from BOS, and for each
// golden tokenizer text the same prompt length and the same first greedy token
// after it (llama.cpp's tokenizer on one side, ours on the other; wllama 3.8
// exposes no tokenize call, so the prompt's token count and the model's
// continuation of it carry the check; texts with runs of spaces go in as
// SentencePiece normalizes them, a step llama.cpp's SPM tokenizer lacks). F16 GGUF as `llama` (q/k rows
// un-permuted to Meta's layout) and as `internlm2`, the latter also as
// gguf-split files. Q4_0 (llama.cpp) against sieve's f32 is printed; sieve's
// q4 against Q4_0 is compared by the peer benchmark (bench/peer/llama.ts: the
// first greedy tokens on each synthetic shape), not here: a second sieve load
// costs CI time.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { nodeSource } from '../src/loader/sources.ts';
import { ggufModel, folderCheckpoint, sentencePieceVocab, type Arch } from '../bench/peer/export-gguf.ts';
import { writeGguf, type GgmlTypeName } from '../bench/peer/gguf.ts';
import { STORIES, watchConsole } from './component-helpers.ts';

const WLLAMA = join(process.cwd(), 'node_modules/@wllama/wllama/esm');

/** The GGUF file(s) of stories260k: name -> bytes (maxFileBytes: gguf-split files). */
async function gguf(prefix: string, arch: Arch, weights: GgmlTypeName, maxFileBytes?: number): Promise<Map<string, Uint8Array>> {
  const ck = await folderCheckpoint(nodeSource(STORIES));
  const vocab = sentencePieceVocab(readFileSync(join(STORIES, 'tokenizer.model')));
  const { meta, tensors } = ggufModel(ck, vocab, arch, weights);
  const out = new Map<string, Uint8Array[]>();
  await writeGguf({
    prefix,
    meta,
    tensors,
    maxFileBytes,
    open: (name) => {
      out.set(name, []);
      return {
        write: (b) => {
          out.get(name)!.push(b.slice());
        },
        close() {},
      };
    },
  });
  return new Map([...out].map(([k, v]) => [k, Buffer.concat(v)]));
}

type Side = { fromBos: number[]; prompts: { promptTokens: number; ids?: number[]; next: number[] }[]; ms: number; info?: unknown };
const call = (page: Page, fn: 'sieve' | 'wllama', ...args: unknown[]): Promise<Side> =>
  page.evaluate(([f, a]) => ((window as any).peer[f as string] as (...x: unknown[]) => Promise<Side>)(...(a as unknown[])), [fn, args] as const);

test("llama.cpp (wllama) runs stories260k exported to GGUF with sieve's greedy tokens and tokenization", async ({ page }) => {
  test.setTimeout(300_000); // 3.8 min at load average 30 on 2 cores; sieve's part (SwiftShader compiles its pipelines at load) is api.spec's load + 60 tokens plus 13 prefills
  const errors = watchConsole(page);
  page.on('console', (m) => {
    if (m.type() === 'log') console.log(`[page] ${m.text()}`);
  });
  const models = {
    llama: await gguf('stories-llama-f16', 'llama', 'F16'),
    internlm2: await gguf('stories-internlm2-f16', 'internlm2', 'F16'),
    // gguf-split: 3 files of <= 256 KiB of tensor data, as llama.cpp's split loader reads them
    split: await gguf('stories-split-f16', 'internlm2', 'F16', 256 << 10),
  };
  expect([...models.split.keys()]).toEqual([
    'stories-split-f16-00001-of-00003.gguf',
    'stories-split-f16-00002-of-00003.gguf',
    'stories-split-f16-00003-of-00003.gguf',
  ]);
  const files = new Map([...models.llama, ...models.internlm2, ...models.split, ...(await gguf('stories-llama-q4_0', 'llama', 'Q4_0'))]);
  await page.route('**/peer-assets/**', async (route) => {
    const path = new URL(route.request().url()).pathname.replace('/peer-assets/', '');
    if (path.startsWith('gguf/')) return route.fulfill({ body: Buffer.from(files.get(path.slice(5))!), contentType: 'application/octet-stream' });
    const body = readFileSync(join(WLLAMA, path.replace(/^wllama\//, '')));
    return route.fulfill({ body, contentType: path.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
  });
  await page.goto('/e2e/pages/peer.html');
  await expect(page.locator('#log')).toHaveText('ready');

  const golden = JSON.parse(readFileSync(join(STORIES, 'tokenizer.golden.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
  const cases = golden.cases.filter((c) => c.text.length > 0);
  // stories260k's tokenizer.model has remove_extra_whitespaces (runs of spaces become one, the ends are trimmed);
  // llama.cpp's `llama` tokenizer has no such step (it keeps every space), so it gets the text SentencePiece sees.
  const spmNormalized = (t: string) => t.replace(/ {2,}/g, ' ').replace(/^ | $/g, '');
  const texts = cases.map((c) => c.text);
  const N = 64,
    K = 1;

  const ours = await call(page, 'sieve', 'f32', texts, N, K);
  // Ours agrees with SentencePiece first (BOS + spm_encode's ids), so the peer is compared with the reference too.
  cases.forEach((c, i) => expect(ours.prompts[i].ids, c.text).toEqual([1, ...c.ids]));
  for (const [name, m] of Object.entries(models)) {
    const file = `${name} (${[...m.keys()].join(', ')})`;
    // The split model only repeats the greedy run (its tensors are the internlm2 ones).
    const peer = await call(page, 'wllama', [...m.keys()], name === 'split' ? [] : texts.map(spmNormalized), N, K);
    console.log(`${file}: ${JSON.stringify(peer.info)}; wllama ${peer.ms.toFixed(0)} ms, sieve ${ours.ms.toFixed(0)} ms`);
    expect(peer.fromBos.length).toBe(N);
    expect(peer.fromBos, `${file}: greedy from BOS`).toEqual(ours.fromBos);
    if (name !== 'split')
      cases.forEach((c, i) => {
        expect(peer.prompts[i].promptTokens, `${file}: token count of ${JSON.stringify(c.text)}`).toBe(ours.prompts[i].promptTokens);
        expect(peer.prompts[i].next, `${file}: greedy after ${JSON.stringify(c.text)}`).toEqual(ours.prompts[i].next);
      });
  }

  // Information (printed): llama.cpp on Q4_0 weights against sieve's f32 tokens (sieve's q4 vs Q4_0: bench/peer/llama.ts).
  const q4 = await call(page, 'wllama', [...(await gguf('stories-llama-q4_0', 'llama', 'Q4_0')).keys()], [], N, K);
  let agree = 0;
  while (agree < N && q4.fromBos[agree] === ours.fromBos[agree]) agree++;
  console.log(`llama.cpp Q4_0 greedy from BOS agrees with sieve f32 for ${agree}/${N} tokens`);

  // 404s: the loaders probing optional files (tokenizer.json, a shard index).
  expect(errors.filter((e) => !/ggml_webgpu|WebGPU|status of 404/.test(e))).toEqual([]);
});
