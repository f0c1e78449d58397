/** `sieve info [--json] [--kernels TIER]`: the WebGPU adapter, its limits, optional features and kernel tiers. */
import { getGpu, OPTIONAL_FEATURES } from '../../gpu/device.ts';
import { AUTO_TIERS, KERNEL_TIERS, type KernelTier, resolveKernelTier, tierReport } from '../../gpu/tier.ts';
import { DEFAULT_KERNELS } from '../../defaults.ts';
import { table, type Command } from '../util.ts';
import { MODEL_OPTIONS } from '../options.ts';
import { kernelsFlag } from './engine-options.ts';

export const info: Command = {
  name: 'info',
  summary: 'print the WebGPU adapter, limits and features',
  usage: 'sieve info [--json]',
  description:
    "Print the WebGPU adapter (Dawn in Node: a GPU's Vulkan driver, else SwiftShader on the CPU), " +
    'its limits, the optional features the runtime uses, the kernel tiers it supports (and what each one lacks) ' +
    'and the tier --kernels resolves to (a tier the adapter lacks is an error naming what is missing).',
  options: {
    json: { type: 'boolean', help: 'print JSON instead of tables' },
    kernels: { ...MODEL_OPTIONS.kernels, group: undefined, help: 'the kernel tier to resolve: auto, f32, f16, tensor' },
  },
  async run(_argv, values) {
    const option = kernelsFlag(values.kernels) ?? DEFAULT_KERNELS;
    const ctx = await getGpu();
    const report = tierReport(ctx);
    let kernels;
    try {
      kernels = resolveKernelTier(ctx, option);
    } catch (e) {
      ctx.destroy();
      throw e;
    }
    const out = {
      adapter: ctx.info,
      limits: ctx.limits,
      features: Object.fromEntries(OPTIONAL_FEATURES.map((f) => [f, ctx.features.has(f)])),
      tiers: Object.fromEntries(KERNEL_TIERS.map((t) => [t, report[t] ? { supported: false, missing: report[t] } : { supported: true }])),
      kernels: { option, tier: kernels },
    };
    if (values.json) {
      console.log(JSON.stringify(out, null, 2));
    } else {
      console.log(
        table(
          [
            ['vendor', ctx.info.vendor],
            ['architecture', ctx.info.architecture],
            ['device', ctx.info.device],
            ['description', ctx.info.description],
            ['backend', ctx.info.backend + (ctx.info.isSoftware ? ' (software rasterizer: timings are not GPU figures)' : '')],
          ],
          ['adapter', ''],
        ),
      );
      console.log();
      console.log(
        table(
          Object.entries(ctx.limits).map(([k, v]) => [k, v]),
          ['limit', 'value'],
        ),
      );
      console.log();
      console.log(
        table(
          OPTIONAL_FEATURES.map((f) => [f, ctx.features.has(f) ? 'yes' : 'no']),
          ['feature', 'available'],
        ),
      );
      console.log();
      const note = (t: KernelTier) => (t !== 'f32' && !AUTO_TIERS.includes(t) ? " ('auto' does not choose it yet)" : '');
      console.log(
        table(
          KERNEL_TIERS.map((t) => [t, report[t] ? `no: ${report[t]}` : `yes${note(t)}`]),
          ['kernel tier', 'supported'],
        ),
      );
      console.log(`kernels ${option}: ${kernels}`);
    }
    ctx.destroy();
    return 0;
  },
};
