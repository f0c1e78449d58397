/** `sieve info [--json]`: the WebGPU adapter, its limits and optional features. */
import { getGpu, OPTIONAL_FEATURES } from '../../gpu/device.ts';
import { table, type Command } from '../util.ts';

export const info: Command = {
  name: 'info',
  summary: 'print the WebGPU adapter, limits and features',
  usage: 'sieve info [--json]',
  description:
    "Print the WebGPU adapter (Dawn in Node: a GPU's Vulkan driver, else SwiftShader on the CPU), " + 'its limits and the optional features the runtime uses.',
  options: { json: { type: 'boolean', help: 'print JSON instead of tables' } },
  async run(_argv, values) {
    const ctx = await getGpu();
    const out = {
      adapter: ctx.info,
      limits: ctx.limits,
      features: Object.fromEntries(OPTIONAL_FEATURES.map((f) => [f, ctx.features.has(f)])),
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
    }
    ctx.destroy();
    return 0;
  },
};
