/**
 * bench/gemm: f32 matmul TFLOP/s of kernels/matmul.wgsl at LLM prefill shapes.
 *   npx tsx bench/gemm.ts [--json FILE] [--shapes 4096x4096x4096,...]
 * On the GPU machine: npm run gpu:bundle -- bench/gemm.ts, then
 *   source .gpu/setup.sh && node .gpu/gemm.mjs --json $OUT/gemm.json
 * Shapes are M x N x K (C = A B^T, A M x K, B N x K); median of 5 after 2 warm-ups.
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { timeGpu } from '../src/gpu/timing.ts';
import { MatmulF32 } from '../kernels/matmul.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs({ shapes: { type: 'string' } });
const ctx = await getGpu();
const defaults = ctx.info.isSoftware ? '256x256x256,512x512x512' : '4096x4096x4096,4096x14336x4096,4096x4096x14336';
const shapes = String(args.shapes ?? defaults).split(',').map((s) => {
  const [m, n, k] = s.split('x').map(Number);
  return { m, n, k };
});

const mm = await MatmulF32.create(ctx);
const rows: (string | number)[][] = [];
const results = [];
let source = 'wall';
for (const shape of shapes) {
  const a = createBuffer(ctx, shape.m * shape.k * 4, STORAGE.rw, 'a');
  const b = createBuffer(ctx, shape.n * shape.k * 4, STORAGE.rw, 'b');
  const c = createBuffer(ctx, shape.m * shape.n * 4, STORAGE.rw, 'c');
  const dims = mm.dimsBuffer(shape);
  const t = await timeGpu(ctx, (enc, pass) => {
    const p = enc.beginComputePass(pass('matmul'));
    mm.encode(p, a, b, c, dims, shape);
    p.end();
  }, { warmup: 2, iters: 5 });
  source = t.source;
  const flops = 2 * shape.m * shape.n * shape.k;
  const tflops = flops / (t.ms * 1e-3) / 1e12;
  rows.push([`${shape.m}x${shape.n}x${shape.k}`, 'f32', t.ms.toFixed(3), tflops.toFixed(2)]);
  results.push({ kernel: 'matmul_f32_128x128', ...shape, ms: t.ms, allMs: t.all, tflops });
  for (const buf of [a, b, c, dims]) releaseBuffer(ctx, buf);
}
finish({
  bench: 'gemm', date: new Date().toISOString(), adapter: adapterRecord(ctx), timing: source,
  header: ['M x N x K', 'weights', 'ms', 'TFLOP/s'], rows, results,
}, args.json);
ctx.destroy();
