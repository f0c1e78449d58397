/**
 * The loader's public API (everything the engine, CLI and demo need):
 *
 *   openSource(x)                 path | URL | FileList | File[] | directory handle -> FileSource
 *   nodeSource(dir), urlSource(url, {cache, onProgress, retries}), fileListSource(files), dirHandleSource(h)
 *   readModel(source)             -> { spec: ModelSpec, checkpoint: {files, entries}, plan: {recipes, dropped} }
 *                                    (config.json + safetensors headers only; typed errors on any fault)
 *   readCheckpoint(source)        safetensors headers, single file or sharded via model.safetensors.index.json
 *   readSafetensorsHeader(source, file), parseHeader(...)   strict header reader
 *   writeSafetensors(...)         small writer (tests, generators, `sieve logits --out`)
 *   planMemory(spec, plan, opts)  weights + KV cache + activations vs adapter limits / budget (GpuLimitError)
 *   loadWeights(ctx, source, spec, plan, opts) -> WeightMap (Map<canonical name, GpuWeight>), streamed in
 *                                    bounded row blocks, converted/quantized to f16/q8/q4/f32, split by rows
 *                                    past maxStorageBufferBindingSize; releases everything on failure
 *   readTensorF32(source, entry)  one checkpoint tensor as f32 (tests, references)
 *   releaseWeights(ctx, weights)
 */
export * from './source.ts';
export * from './formats.ts';
export * from './safetensors.ts';
export * from './sources.ts';
export * from './url-source.ts';
export * from './model.ts';
export * from './safetensors-write.ts';
export * from './layout.ts';
export * from './weights.ts';
export * from './memory-plan.ts';
export * from './readback.ts';
