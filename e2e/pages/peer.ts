// Test page of e2e/peer-llama.spec.ts: stories260k greedy text and tokenization
// in sieve (this page's WebGPU) and in llama.cpp through wllama (its wasm CPU
// build: n_gpu_layers 0), one after the other. The spec serves wllama's files
// and the GGUF it exported under /peer-assets/ (page.route), so neither goes
// through vite.
import { loadModel } from '../../src/index.ts';
import type { WeightFormat } from '../../src/loader/formats.ts';

const MODEL = '/models/stories260k/';

interface Side {
  fromBos: number[];
  prompts: { promptTokens: number; ids?: number[]; next: number[] }[];
  ms: number;
}

const api = {
  /** Greedy `n` tokens from BOS, then for each text: its ids (with BOS) and `k` greedy tokens after it. */
  async sieve(weights: WeightFormat, texts: string[], n: number, k: number): Promise<Side> {
    const t0 = performance.now();
    const engine = await loadModel(MODEL, { weights, contextLength: 512, cache: false });
    const run = async (input: { ids: number[] }, maxTokens: number) => {
      const ids: number[] = [];
      for await (const c of engine.generate(input, { maxTokens, temperature: 0 })) ids.push(...c.tokenIds);
      await engine.resetChat();
      return ids;
    };
    let t = performance.now();
    const fromBos = await run({ ids: [1] }, n);
    console.log(`sieve ${weights}: load ${(t - t0).toFixed(0)} ms, ${n} tokens ${(performance.now() - t).toFixed(0)} ms`);
    t = performance.now();
    const prompts = [];
    for (const t of texts) {
      const ids = engine.tokenize(t);
      prompts.push({ promptTokens: ids.length, ids, next: await run({ ids }, k) });
    }
    console.log(`sieve ${weights}: ${texts.length} prompts ${(performance.now() - t).toFixed(0)} ms`);
    await engine.unload();
    return { fromBos, prompts, ms: performance.now() - t0 };
  },
  /** `files`: one GGUF, or gguf-split files in order. */
  async wllama(files: string[], texts: string[], n: number, k: number): Promise<Side & { info: unknown }> {
    const t0 = performance.now();
    const wasm = '/peer-assets/wllama/wasm/wllama.wasm';
    const lib = ['', 'peer-assets', 'wllama', 'index.js'].join('/'); // not a literal: vite must leave it to the browser
    const { Wllama } = await import(/* @vite-ignore */ lib);
    const w = new Wllama({ default: wasm }, { suppressNativeLog: true });
    const blobs = await Promise.all(files.map(async (f) => new File([await (await fetch(`/peer-assets/gguf/${f}`)).blob()], f)));
    await w.loadModel(blobs, { n_ctx: 512, n_gpu_layers: 0, n_threads: 1 });
    // Raw completion of a text (BOS added by the model's add_bos_token); ids of the new tokens from logprobs.
    const run = async (prompt: string, maxTokens: number) => {
      const r = await w.createCompletion({ prompt, max_tokens: maxTokens, temperature: 0, n_probs: 1, cache_prompt: false });
      return { promptTokens: r.usage.prompt_tokens as number, next: (r.choices[0].logprobs.content as { id: number }[]).map((x) => x.id) };
    };
    const fromBos = (await run('', n)).next;
    const prompts = [];
    for (const t of texts) prompts.push(await run(t, k));
    const info = w.getLoadedContextInfo();
    await w.exit();
    return {
      fromBos,
      prompts,
      ms: performance.now() - t0,
      info: { files: files.length, arch: info.metadata['general.architecture'], n_vocab: info.n_vocab, bos: info.token_bos, eos: info.token_eos },
    };
  },
};
(window as unknown as { peer: typeof api }).peer = api;
document.getElementById('log')!.textContent = 'ready';
