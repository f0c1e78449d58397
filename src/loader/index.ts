/**
 * The loader's public API (everything the engine, CLI and demo need):
 *
 *   openSource(x)                 path | URL | FileList | File[] | directory handle | FileSource -> FileSource
 *   nodeSource(dir), urlSource(url, {cache, revalidate, onProgress, retries, signal}),
 *   fileListSource(files), dirHandleSource(handle)
 *   readModel(source)             -> { spec: ModelSpec, checkpoint: {files, entries}, plan: {recipes, dropped} }
 *                                    (config.json + tensor headers only; safetensors, or PyTorch .bin without
 *                                    running the pickle; typed errors naming file and fault)
 *   readCheckpoint(source)        safetensors headers, single file or sharded via model.safetensors.index.json
 *   readSafetensorsHeader(source, file), parseHeader(...)   the strict header reader
 *   writeSafetensors(tensors), safetensorsLayout(specs)      small writer (tests, generators, `sieve logits --out`)
 *   planMemory / checkPlan(spec, plan, limitsOf(ctx), {format, groupSize, contextLength, kvDtype, prefillChunk, budgetBytes})
 *                                 weights (exactly what loadWeights allocates) + KV cache + activations;
 *                                 checkPlan throws GpuLimitError with the numbers and a format/context that fits
 *   loadWeights(ctx, source, spec, plan | entries, {format, groupSize, quantizeOn, maxPartBytes, onProgress, onNote, signal})
 *                                 -> WeightMap (Map<canonical name, GpuWeight>, keptF32, notes, bytes): streamed in
 *                                 bounded row blocks, converted/quantized to f16/q8/q4/f32 (q8/q4 on the GPU or CPU),
 *                                 split by rows past maxStorageBufferBindingSize; releases everything on failure
 *   releaseWeights(ctx, weights), readTensorF32(source, entry), readRecipeF32(source, recipe),
 *   readWeightF32(ctx, weight) / readWeightRaw(ctx, weight)   (tests, debugging)
 *
 * Generated checkpoints for tests and benchmarks live outside the runtime: bench/synthetic/.
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
