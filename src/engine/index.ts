/**
 * The engine: a model's forward pass on WebGPU with its KV cache.
 *   createEngine(ctx, {spec, weights, contextLength, kvDtype, prefillChunk, attention}) -> DenseEngine
 *   loadEngine(ctx, dirOrSource, {weights: format, contextLength, kvDtype, ...}) -> DenseEngine
 * A token's journey: engine.ts (prefill / decodeStep) -> forward.ts (one
 * layer after another) -> kernels/*.ts.
 */
export * from './types.ts';
export { createEngine, DenseEngine, type EngineOptions } from './engine.ts';
export { loadEngine, type LoadEngineOptions } from './load.ts';
export { KvCache } from './kv-cache.ts';
export { releaseWeight } from './weights.ts';
