/**
 * bench/engine: prefill and decode throughput of the dense engine on synthetic
 * models with the shapes of InternLM2-1.8B and -7B (random weights made on the
 * GPU, never stored), in f16 and q4.
 *   npm run bench -- bench/engine.ts [--json FILE] [--shapes internlm2-1.8b,internlm2-7b]
 *     [--formats f16,q4] [--prompt 4096] [--decode 32] [--chunk 512] [--kv f16] [--attention dense|sample]
 * On the GPU machine: npm run gpu:bundle -- bench/engine.ts, then node .gpu/engine.mjs --json $OUT/engine.json
 * Prefill: one prompt of --prompt tokens in chunks (TTFT-like: wall time to the
 * last row's logits on the GPU). Decode: --decode greedy steps after it, each
 * decodeStep + argmax read back (what generation pays per token). One warm-up
 * pass of each (pipelines compiled) is excluded. On a software adapter the
 * defaults shrink to a tiny model.
 */
import { getGpu } from '../src/gpu/device.ts';
import { createEngine } from '../src/engine/engine.ts';
import { SHAPES, syntheticSpec, syntheticWeights } from '../src/engine/synthetic.ts';
import type { WeightFormat } from '../src/loader/formats.ts';
import type { KvDtype } from '../src/engine/types.ts';
import { Rng } from '../src/util/rng.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({
  shapes: { type: 'string' }, formats: { type: 'string' }, prompt: { type: 'string' }, decode: { type: 'string' },
  chunk: { type: 'string' }, kv: { type: 'string' }, attention: { type: 'string' },
});
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const shapes = String(args.shapes ?? (soft ? 'tiny' : 'internlm2-1.8b,internlm2-7b')).split(',');
const formats = String(args.formats ?? 'f16,q4').split(',') as WeightFormat[];
const promptLen = Number(args.prompt ?? (soft ? 96 : 4096));
const decodeSteps = Number(args.decode ?? (soft ? 4 : 32));
const chunk = Number(args.chunk ?? (soft ? 32 : 512));
const kvDtype = String(args.kv ?? 'f16') as KvDtype;
const attention = String(args.attention ?? 'dense') as 'dense' | 'sample';

const rows: (string | number)[][] = [];
const results: unknown[] = [];
for (const name of shapes) {
  const shape = SHAPES[name];
  if (!shape) throw new Error(`unknown shape '${name}' (known: ${Object.keys(SHAPES).join(', ')})`);
  const spec = syntheticSpec(shape);
  for (const format of formats) {
    const weights = await syntheticWeights(ctx, spec, { format, seed: 1 });
    let weightBytes = 0;
    for (const w of weights.values()) for (const p of w.parts) weightBytes += p.data.size + (p.scales?.size ?? 0);
    const engine = await createEngine(ctx, {
      spec, weights, contextLength: promptLen + decodeSteps + 1, kvDtype, prefillChunk: chunk, attention: { attention },
    });
    try {
      const rng = new Rng(3);
      const ids = Array.from({ length: promptLen }, () => 3 + rng.int(spec.vocabSize - 3));
      // Warm-up: every plan the measured runs use (full chunk, remainder, decode).
      await engine.prefill(ids.slice(0, Math.min(chunk, promptLen)));
      if (promptLen % chunk) await engine.prefill(ids.slice(0, promptLen % chunk));
      await engine.decodeStep(1);
      await engine.argmax();
      engine.truncate(0);

      const pre = await engine.prefill(ids);
      const prefillMs = pre.ms;
      let id = await engine.argmax();
      const t0 = performance.now();
      for (let i = 0; i < decodeSteps; i++) {
        await engine.decodeStep(id);
        id = await engine.argmax();
      }
      const decodeMs = (performance.now() - t0) / decodeSteps;

      const params = weightBytes; // for GB/s: bytes read per decoded token (weights dominate)
      const linearFlops = 2 * promptLen * (spec.nLayers * (
        (spec.nHeads + 2 * spec.nKvHeads) * spec.headDim * spec.dim + spec.dim * spec.nHeads * spec.headDim + 3 * spec.ffnDim * spec.dim) + spec.vocabSize * spec.dim / promptLen);
      const attnFlops = 4 * spec.nLayers * spec.nHeads * spec.headDim * (promptLen * (promptLen + 1)) / 2;
      const prefillTflops = (linearFlops + attnFlops) / (prefillMs * 1e-3) / 1e12;
      const r = {
        shape: name, format, kvDtype, attention, prompt: promptLen, chunk, decodeSteps,
        weightBytes, prefillMs, prefillTokPerS: promptLen / (prefillMs / 1000), prefillTflops,
        decodeMsPerToken: decodeMs, decodeTokPerS: 1000 / decodeMs, decodeGBPerS: params / (decodeMs * 1e-3) / 1e9,
        kvLengthAtDecode: promptLen,
      };
      results.push(r);
      rows.push([name, format, promptLen, prefillMs.toFixed(1), r.prefillTokPerS.toFixed(1), prefillTflops.toFixed(2),
        decodeMs.toFixed(2), r.decodeTokPerS.toFixed(2), r.decodeGBPerS.toFixed(1), (weightBytes / 2 ** 30).toFixed(2)]);
    } finally {
      engine.destroy();
    }
  }
}
finish({
  bench: 'engine', date: new Date().toISOString(), adapter: adapterRecord(ctx), timing: 'wall (queue.onSubmittedWorkDone / mapAsync)',
  header: ['shape', 'weights', 'prompt', 'prefill ms', 'prefill tok/s', 'prefill TFLOP/s', 'decode ms/tok', 'decode tok/s', 'decode GB/s', 'weights GiB'],
  rows, results,
}, args.json);
ctx.destroy();
