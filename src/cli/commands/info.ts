/** `sieve info [--json]`: the WebGPU adapter, its limits and optional features. */
import { parseArgs } from 'node:util';
import { getGpu, OPTIONAL_FEATURES } from '../../gpu/device.ts';
import { table, type Command } from '../util.ts';

export const info: Command = {
  name: 'info',
  summary: 'print the WebGPU adapter, limits and features',
  usage: 'sieve info [--json]',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
    const ctx = await getGpu();
    const out = {
      adapter: ctx.info,
      limits: ctx.limits,
      features: Object.fromEntries(OPTIONAL_FEATURES.map((f) => [f, ctx.features.has(f)])),
    };
    if (values.json) {
      console.log(JSON.stringify(out, null, 2));
    } else {
      console.log(table([
        ['vendor', ctx.info.vendor],
        ['architecture', ctx.info.architecture],
        ['device', ctx.info.device],
        ['description', ctx.info.description],
        ['backend', ctx.info.backend + (ctx.info.isSoftware ? ' (software rasterizer: timings are not GPU figures)' : '')],
      ], ['adapter', '']));
      console.log();
      console.log(table(Object.entries(ctx.limits).map(([k, v]) => [k, v]), ['limit', 'value']));
      console.log();
      console.log(table(OPTIONAL_FEATURES.map((f) => [f, ctx.features.has(f) ? 'yes' : 'no']), ['feature', 'available']));
    }
    ctx.destroy();
    return 0;
  },
};
