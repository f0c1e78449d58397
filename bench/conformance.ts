/**
 * bench/conformance: the GPU conformance command of the kernel tiers (issue 17). For each tier
 * asked for (--kernels: all (default: every tier this device supports), auto, or a list such as
 * f32,tensor) it runs
 *  - the tier's kernels against CPU references (f64) at odd shapes, and
 *  - the engine end to end, against the f32 tier with the same weights / KV formats (f32 / f32 for
 *    the f32 tier, f16 / f16 for the others):
 *      golden logits of both families (../shared/fixtures/golden, `short` and `long`): max abs
 *        difference <= 1% of max |logit|;
 *      stories260k's greedy text for 100 tokens: identical to run.c's (f32 tier) or to the f32
 *        tier's (others);
 *      stories260k top-1 agreement with the f32 tier over a 480-token story: >= 99.5%;
 *      the structured synthetic model (bench/synthetic, default the InternLM2-7B shape, q4, head
 *        dim 128, so the tensor tier's attention runs too): the first 16 greedy tokens identical to
 *        the f32 tier's at 8K and 32K, dense and SampleAttention (skipped with --quick);
 *      no pipeline compiled after load (lateCompiles 0).
 * The checks live in bench/conformance/core.ts (no Node API: bench/conformance-chromium.ts runs the same in a
 * page in Chromium); this is the Node + Dawn entry: fixtures read from disk, the structured model synthesized
 * in-process (worker threads on a GPU). Prints a table (and --json FILE); exits 1 on any failure (a tier named in --kernels that the
 * device lacks is one; with 'all' it is listed as unsupported). The f32 tier is what CI runs on
 * SwiftShader (`--kernels f32 --quick`, test/bench/conformance.test.ts); the 'tensor' tier needs
 * shader-f16 and f16 subgroup matrices (an NVIDIA GPU with Dawn's vulkan_enable_f16_on_nvidia,
 * which getGpu sets in Node).
 *   npm run bench -- bench/conformance.ts [--kernels all|auto|f32,f16,tensor] [--quick] [--json FILE]
 *     [--fixtures DIR] [--shape internlm2-7b] [--lengths 8192,32768] [--weights q4] [--synth-workers N]
 * GPU machine: npm run gpu:bundle -- bench/conformance.ts; source .gpu/setup.sh && node .gpu/conformance.mjs --json $OUT/conformance.json
 * (the Chromium runner and both device calls: bench/tensor/README.md, "The conformance command on the GPU machine")
 * (carry ../shared/fixtures into the tree and pass --fixtures when it is not beside the checkout).
 */
import { availableParallelism } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import { getGpu } from '../src/gpu/device.ts';
import { structuredSource } from './synthetic/source.ts';
import { PRESETS, type StructuredOptions } from './synthetic/structured.ts';
import { prepareSynthetic, runSynthWorker } from './ttft/synthetic.ts';
import { synthWorkerUrl } from './ttft/report.ts';
import { benchArgs, finish } from './common.ts';
import { runConformance } from './conformance/core.ts';

if (!isMainThread && workerData?.ttftSynthWorker) {
  // A synthesis worker of the structured model (this file, bundled, run again in a worker thread): serve chunks until terminated.
  runSynthWorker(workerData.ttftSynthWorker);
  await new Promise(() => undefined);
}

const args = benchArgs({
  kernels: { type: 'string', default: 'all' },
  quick: { type: 'boolean' },
  fixtures: { type: 'string' },
  shape: { type: 'string' },
  lengths: { type: 'string' },
  weights: { type: 'string' },
  'synth-workers': { type: 'string' },
});
const ctx = await getGpu();
const FIXTURES = String(args.fixtures ?? new URL('../../shared/fixtures/', import.meta.url).pathname).replace(/\/?$/, '/');
const T0 = performance.now();

const { report, failures } = await runConformance(
  {
    ctx,
    fixture: (rel) => `${FIXTURES}${rel}`,
    readFixture: async (rel) => new Uint8Array(await readFile(`${FIXTURES}${rel}`)),
    async structured(shape, o) {
      const preset = (PRESETS as Record<string, StructuredOptions>)[shape];
      const src = structuredSource({ dtype: o.dtype, ...preset, seed: o.seed, contextLength: o.contextLength });
      // On a GPU the bytes are made ahead by worker threads (bench/ttft/synthetic.ts); on SwiftShader (a tiny shape) here.
      const workers = Number(args['synth-workers'] ?? Math.max(1, availableParallelism() - 1));
      const folder = ctx.info.isSoftware
        ? undefined
        : await prepareSynthetic(shape, { dtype: o.dtype, seed: o.seed }, o.contextLength, { mode: 'on', workers, workerUrl: synthWorkerUrl() });
      const source = folder
        ? { ...src, read: (p: string, at: number, n: number) => (folder.files.includes(p) ? folder.read(p, at, n) : src.read(p, at, n)) }
        : src;
      await folder?.ready;
      return { source, close: async () => folder?.close() };
    },
    lap: (what) => process.env.SIEVE_CONFORMANCE_TIMES && console.error(`# ${what} at ${((performance.now() - T0) / 1000).toFixed(1)} s`),
  },
  {
    kernels: String(args.kernels),
    quick: !!args.quick,
    shape: args.shape as string | undefined,
    lengths: args.lengths as string | undefined,
    weights: args.weights as string | undefined,
  },
);

finish(report, args.json);
ctx.destroy();
if (failures > 0) {
  console.error(`conformance: ${failures} failure(s)`);
  process.exit(1);
}
