/**
 * Compute pipelines built once and cached, keyed by WGSL source, entry point
 * and override constants. Compilation errors surface with the shader's label
 * and the compiler's messages.
 */
import { SieveError } from '../errors.ts';
import type { GpuContext } from './device.ts';

const caches = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

export interface PipelineSpec {
  label: string;
  code: string;
  entryPoint?: string;
  constants?: Record<string, number>;
}

function keyOf(s: PipelineSpec): string {
  const consts = s.constants ? Object.keys(s.constants).sort().map((k) => `${k}=${s.constants![k]}`).join(',') : '';
  return `${s.entryPoint ?? 'main'}|${consts}|${s.code}`;
}

/** Returns the cached pipeline for this spec, compiling it on first use. */
export function getPipeline(ctx: GpuContext, spec: PipelineSpec): Promise<GPUComputePipeline> {
  let cache = caches.get(ctx.device);
  if (!cache) caches.set(ctx.device, (cache = new Map()));
  const key = keyOf(spec);
  let p = cache.get(key);
  if (!p) {
    p = build(ctx, spec);
    cache.set(key, p);
    p.catch(() => cache!.delete(key));
  }
  return p;
}

async function build(ctx: GpuContext, spec: PipelineSpec): Promise<GPUComputePipeline> {
  const { device } = ctx;
  const module = device.createShaderModule({ label: spec.label, code: spec.code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) {
    throw new SieveError('INTERNAL', `WGSL compile error in '${spec.label}': ` +
      errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; '), { label: spec.label });
  }
  device.pushErrorScope('validation');
  const pipeline = await device.createComputePipelineAsync({
    label: spec.label,
    layout: 'auto',
    compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
  }).catch((e: Error) => {
    throw new SieveError('INTERNAL', `pipeline '${spec.label}' failed: ${e.message}`, { label: spec.label });
  });
  const err = await device.popErrorScope();
  if (err) throw new SieveError('INTERNAL', `pipeline '${spec.label}' failed: ${err.message}`, { label: spec.label });
  return pipeline;
}

/** Number of pipelines compiled (or compiling) on this device. */
export function pipelineCount(ctx: GpuContext): number {
  return caches.get(ctx.device)?.size ?? 0;
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
