/**
 * The one cache of compute pipelines: keyed by WGSL source, entry point and
 * override constants, one per device. Compilation errors surface as
 * SieveError with the shader's label and the compiler's messages.
 *
 * Nothing compiles on a request: each kernel launcher exports the
 * PipelineSpecs it may need for an engine configuration, the engine's load
 * hands their union to precompile() (createComputePipelineAsync, all in
 * parallel, during the weight upload), and launchers take the built
 * pipelines synchronously with pipeline(). A spec missing from the cache there
 * is compiled synchronously and counted in lateCompiles (a test asserts it
 * stays 0 after load).
 */
import { SieveError } from '../errors.ts';
import type { GpuContext } from './device.ts';
import type { KernelTier } from './tier.ts';

export interface PipelineSpec {
  label: string;
  code: string;
  entryPoint?: string;
  /** WGSL override constants (fixed tile shapes, feature switches). */
  constants?: Record<string, number>;
  /**
   * The kernel tier whose generated header (src/gpu/wgsl-header.ts) `code` starts with; part of
   * the cache key (the header already makes the code differ; this keeps keys apart by name too).
   * Absent: a tier-independent kernel.
   */
  tier?: KernelTier;
}

interface Entry {
  promise: Promise<GPUComputePipeline>;
  /** Set once the pipeline is built. */
  pipeline?: GPUComputePipeline;
}

interface DeviceCache {
  entries: Map<string, Entry>;
  late: number;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();

function cacheOf(ctx: GpuContext): DeviceCache {
  let c = caches.get(ctx.device);
  if (!c) caches.set(ctx.device, (c = { entries: new Map(), late: 0 }));
  return c;
}

function keyOf(s: PipelineSpec): string {
  const consts = s.constants
    ? Object.keys(s.constants)
        .sort()
        .map((k) => `${k}=${s.constants![k]}`)
        .join(',')
    : '';
  return `${s.tier ?? '-'}|${s.entryPoint ?? 'main'}|${consts}|${s.code}`;
}

function compileError(spec: PipelineSpec, info: GPUCompilationInfo): SieveError | undefined {
  const errors = info.messages.filter((m) => m.type === 'error');
  if (!errors.length) return undefined;
  return new SieveError('INTERNAL', `WGSL compile error in '${spec.label}': ` + errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; '), {
    label: spec.label,
  });
}

/** Returns the cached pipeline for this spec, compiling it (asynchronously) on first use. */
export function getPipeline(ctx: GpuContext, spec: PipelineSpec): Promise<GPUComputePipeline> {
  const cache = cacheOf(ctx);
  const key = keyOf(spec);
  let e = cache.entries.get(key);
  if (!e) {
    const entry: Entry = { promise: build(ctx, spec) };
    entry.promise.then(
      (p) => {
        entry.pipeline = p;
      },
      () => cache.entries.delete(key),
    );
    cache.entries.set(key, (e = entry));
  }
  return e.promise;
}

/**
 * The built pipeline for this spec, synchronously (launchers' prepare paths).
 * Precompiled specs return at once; any other is compiled here, synchronously,
 * and counted in lateCompiles().
 */
export function pipeline(ctx: GpuContext, spec: PipelineSpec): GPUComputePipeline {
  const cache = cacheOf(ctx);
  const key = keyOf(spec);
  const e = cache.entries.get(key);
  if (e?.pipeline) return e.pipeline;
  cache.late++;
  const { device } = ctx;
  const module = device.createShaderModule({ label: spec.label, code: spec.code });
  device.pushErrorScope('validation');
  const p = device.createComputePipeline({
    label: spec.label,
    layout: 'auto',
    compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
  });
  // (Validation errors of a synchronous pipeline arrive later; the scope keeps them off the device's uncaptured errors
  // and getCompilationInfo reports them with the label.)
  void device.popErrorScope().then(async (err) => {
    if (err) console.error(`pipeline '${spec.label}': ${err.message}`, String(compileError(spec, await module.getCompilationInfo()) ?? ''));
  });
  cache.entries.set(key, { promise: Promise.resolve(p), pipeline: p });
  return p;
}

async function build(ctx: GpuContext, spec: PipelineSpec): Promise<GPUComputePipeline> {
  const { device } = ctx;
  const module = device.createShaderModule({ label: spec.label, code: spec.code });
  const err0 = compileError(spec, await module.getCompilationInfo());
  if (err0) throw err0;
  device.pushErrorScope('validation');
  const pipeline = await device
    .createComputePipelineAsync({
      label: spec.label,
      layout: 'auto',
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
    })
    .catch((e: Error) => {
      throw new SieveError('INTERNAL', `pipeline '${spec.label}' failed: ${e.message}`, { label: spec.label });
    });
  const err = await device.popErrorScope();
  if (err) throw new SieveError('INTERNAL', `pipeline '${spec.label}' failed: ${err.message}`, { label: spec.label });
  return pipeline;
}

/** Progress of precompile(): pipelines built of those asked for, and the time since it started. */
export interface CompileProgress {
  done: number;
  total: number;
  ms: number;
}

/**
 * Builds every spec (duplicates once) in parallel with createComputePipelineAsync;
 * resolves when all are built, rejects with the first compile error.
 */
export async function precompile(ctx: GpuContext, specs: PipelineSpec[], onProgress?: (p: CompileProgress) => void): Promise<CompileProgress> {
  const t0 = performance.now();
  const unique = new Map<string, PipelineSpec>();
  for (const s of specs) unique.set(keyOf(s), s);
  const total = unique.size;
  let done = 0;
  onProgress?.({ done, total, ms: 0 });
  await Promise.all(
    [...unique.values()].map(async (s) => {
      await getPipeline(ctx, s);
      done++;
      onProgress?.({ done, total, ms: performance.now() - t0 });
    }),
  );
  return { done, total, ms: performance.now() - t0 };
}

/** Number of pipelines compiled (or compiling) on this device. */
export function pipelineCount(ctx: GpuContext): number {
  return caches.get(ctx.device)?.entries.size ?? 0;
}

/** Pipelines compiled synchronously on a prepare path because no precompile asked for them. */
export function lateCompiles(ctx: GpuContext): number {
  return caches.get(ctx.device)?.late ?? 0;
}

/** Bind group for `pipeline` with buffers bound at 0..n-1 of group 0. */
export function bindBuffers(ctx: GpuContext, pipeline: GPUComputePipeline, buffers: (GPUBuffer | GPUBufferBinding)[], label?: string): GPUBindGroup {
  return ctx.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((b, i) => ({ binding: i, resource: 'buffer' in b ? b : { buffer: b } })),
  });
}

/** Splits a workgroup count over x/y so no dimension exceeds the device limit. */
export function dispatchDims(ctx: GpuContext, groups: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}
