/**
 * Kernel tiers (issue 17). An engine runs one tier, chosen once at load from the device's
 * features (`kernels: 'auto'`) or forced by the `kernels` option for comparison:
 *  - 'f32': f32 storage and arithmetic everywhere; the reference, and what CI tests on
 *    SwiftShader.
 *  - 'f16': needs `shader-f16`. Weights dequantized to f16, f16 activations between ops, a
 *    native f16 KV cache; reductions, softmax and norms accumulate in f32.
 *  - 'tensor': needs `shader-f16`, `subgroups` and f16 subgroup matrices
 *    (`chromium-experimental-subgroup-matrix`). Prefill matrix multiplies and prefill
 *    attention on tensor cores (f16 operands, f32 accumulation); the rest as 'f32'.
 *
 * resolveKernelTier() is the one place that turns the option into a tier; tierSupport() says
 * why a device cannot run a tier ('' when it can). getGpu() (device.ts) requests every
 * optional feature the adapter has and every limit at the adapter's maximum, so what the
 * device offers here is what the adapter offers (less any GpuOptions.disableFeatures).
 */
import { InvalidOptionError, KernelTierError } from '../errors.ts';
import type { GpuContext } from './device.ts';

export type KernelTier = 'f32' | 'f16' | 'tensor';
/** The `kernels` option: a tier, or 'auto' (the fastest the device supports). */
export type KernelsOption = 'auto' | KernelTier;
export const KERNEL_TIERS: readonly KernelTier[] = ['f32', 'f16', 'tensor'];
export const KERNELS_OPTIONS: readonly KernelsOption[] = ['auto', ...KERNEL_TIERS];

/**
 * The tiers 'auto' may choose, fastest first: only those whose conformance command
 * (bench/conformance.ts) has passed on a GPU, with its output committed under bench/gpu-results.
 * The 'tensor' and 'f16' kernels exist but have not run on a GPU yet (no GPU machine could be
 * started in the sessions of 2026-12-07), so 'auto' runs 'f32' everywhere until they pass;
 * `kernels: 'tensor'` / `'f16'` force them.
 */
export const AUTO_TIERS: readonly KernelTier[] = [];

/**
 * Workgroup memory the tensor kernels declare, bytes: kernels/linear_tensor.wgsl's
 * tile_x + tile_w (2 x 5120 f16) + scratch (4096 f32) = 36864, the larger of the two
 * (kernels/attention_tensor.wgsl declares 31112 over its two entry points). test/gpu/tier.test.ts recounts both
 * from the WGSL so this cannot fall behind them.
 */
export const TENSOR_WORKGROUP_STORAGE_BYTES = 36864;

type AdapterInfoExt = GPUAdapterInfo & { subgroupMatrixConfigs?: unknown[]; subgroupMinSize?: number; subgroupMaxSize?: number };

/** Why the device cannot run the 'tensor' tier ('' when it can): the first missing feature or limit, by name. */
export function tensorTierSupport(ctx: GpuContext): string {
  if (!ctx.features.has('shader-f16')) return 'no shader-f16';
  if (!ctx.features.has('subgroups')) return 'no subgroups';
  if (!ctx.features.has('chromium-experimental-subgroup-matrix')) return 'no chromium-experimental-subgroup-matrix';
  const info = (ctx.adapter.info ?? {}) as AdapterInfoExt;
  if (info.subgroupMinSize !== 32 || info.subgroupMaxSize !== 32) return `subgroup size ${info.subgroupMinSize}..${info.subgroupMaxSize}, not 32`;
  const ok = (info.subgroupMatrixConfigs ?? []).some((c) => {
    const o = c as Record<string, unknown>;
    return o.componentType === 'f16' && o.resultComponentType === 'f32' && o.M === 16 && o.N === 16 && o.K === 16;
  });
  if (!ok) return 'no f16 x f16 -> f32 16x16x16 subgroup matrix';
  if (ctx.limits.maxComputeWorkgroupStorageSize < TENSOR_WORKGROUP_STORAGE_BYTES) {
    return `maxComputeWorkgroupStorageSize ${ctx.limits.maxComputeWorkgroupStorageSize} below the ${TENSOR_WORKGROUP_STORAGE_BYTES} bytes the tensor kernels declare`;
  }
  return '';
}

/** Why the device cannot run the 'f16' tier ('' when it can). */
export function f16TierSupport(ctx: GpuContext): string {
  return ctx.features.has('shader-f16') ? '' : 'no shader-f16';
}

/** Why the device cannot run `tier` ('' when it can). */
export function tierSupport(ctx: GpuContext, tier: KernelTier): string {
  switch (tier) {
    case 'f32':
      return '';
    case 'f16':
      return f16TierSupport(ctx);
    case 'tensor':
      return tensorTierSupport(ctx);
  }
}

/** Each tier with why the device cannot run it ('' when it can): `sieve info`, the conformance command. */
export function tierReport(ctx: GpuContext): Record<KernelTier, string> {
  return { f32: '', f16: tierSupport(ctx, 'f16'), tensor: tierSupport(ctx, 'tensor') };
}

/** Whether `v` is a value of the `kernels` option. */
export function isKernelsOption(v: unknown): v is KernelsOption {
  return typeof v === 'string' && (KERNELS_OPTIONS as readonly string[]).includes(v);
}

/**
 * The tier an engine runs for the `kernels` option on this device. 'auto' (the default): the
 * first of AUTO_TIERS the device supports completely, else 'f32'. A forced tier the device lacks is a KernelTierError naming
 * what is missing (nothing is allocated before this runs at load).
 */
export function resolveKernelTier(ctx: GpuContext, option: KernelsOption = 'auto'): KernelTier {
  if (option === 'auto') {
    return AUTO_TIERS.find((t) => !tierSupport(ctx, t)) ?? 'f32';
  }
  if (!isKernelsOption(option)) throw new InvalidOptionError('kernels', `must be one of ${KERNELS_OPTIONS.join(', ')}; got '${String(option)}'`);
  const why = tierSupport(ctx, option);
  if (why)
    throw new KernelTierError(option, `kernels '${option}' needs what this device lacks: ${why} (${describeAdapter(ctx)}); use kernels 'auto' or 'f32'`, {
      missing: why,
    });
  return option;
}

function describeAdapter(ctx: GpuContext): string {
  const i = ctx.info;
  return [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unknown adapter';
}
