/**
 * bench/probe: what the adapter offers beyond the basics: features with and
 * without allow_unsafe_apis, and the subgroup-matrix configurations (the
 * tensor-core shapes and component types) Dawn reports.
 *   npm run bench -- bench/probe.ts [--json FILE]
 */
import { getGpu } from '../src/gpu/device.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs();
const ctx = await getGpu();
const info = ctx.adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: unknown[]; subgroupMinSize?: number; subgroupMaxSize?: number };
// Dawn's config objects keep their fields as prototype getters: read them by name.
const configs = (info.subgroupMatrixConfigs ?? []).map((c) => {
  const o = c as Record<string, unknown>;
  return { componentType: o.componentType, resultComponentType: o.resultComponentType, M: o.M, N: o.N, K: o.K };
});
const rows: (string | number)[][] = [
  ['adapter features', [...ctx.adapter.features].sort().join(' ')],
  ['subgroup size', `${info.subgroupMinSize ?? '?'}..${info.subgroupMaxSize ?? '?'}`],
  ...configs.map((c, i) => [`subgroup matrix config ${i}`, JSON.stringify(c)]),
];
finish(
  {
    bench: 'probe',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: 'n/a',
    header: ['what', 'value'],
    rows,
    results: [
      { features: [...ctx.adapter.features], subgroupMatrixConfigs: configs, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize },
    ],
  },
  args.json,
);
ctx.destroy();
