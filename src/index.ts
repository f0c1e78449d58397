/**
 * sieve-llm: a WebGPU LLM runtime (ChatGLM2, InternLM2) with SampleAttention
 * sparse prefill. The package root: load a model in this thread or in a Web
 * Worker, generate, chat with OpenAI-shaped objects.
 *
 *   import { loadModel } from 'sieve-llm';
 *   const engine = await loadModel('/models/internlm2-chat-1_8b/', { weights: 'q4', onProgress });
 *   for await (const c of engine.generate([{ role: 'user', content: 'Hi' }], { maxTokens: 64 })) out(c.text);
 *   const r = await engine.chat.completions.create({ messages, temperature: 0.7, seed: 1 });
 *   await engine.unload();
 *
 * In a browser, loadModelInWorker(...) gives the same engine interface with the
 * model in a dedicated worker. Node's HTTP server lives in src/api/http.ts
 * (`sieve serve`), not here, so this module stays browser-safe.
 */
export * from './api/index.ts';
export { loadModelInWorker, WorkerEngine } from './worker/client.ts';
export * from './errors.ts';
export { getGpu, type GpuContext, type GpuOptions } from './gpu/device.ts';
export { openSource, type SourceInput } from './loader/sources.ts';
export type { AttentionOptions, KvDtype, SparsityReport } from './engine/types.ts';
export type { WeightFormat } from './loader/formats.ts';
