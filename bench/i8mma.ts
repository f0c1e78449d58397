/**
 * bench/i8mma: the tensor-core experiment of the performance issue. Dawn
 * offers `chromium-experimental-subgroup-matrix` on the H100 with int8
 * component types only (no f16 without shader-f16), so this measures an
 * int8 x int8 -> int32 GEMM (kernels/matmul_i8_sgmatrix.wgsl), checks a
 * sample of outputs against the CPU, and prints TOPS next to the f32 GEMM.
 *   npm run bench -- bench/i8mma.ts [--json FILE]   (needs the feature: GPU machine)
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, readBuffer, releaseBuffer, STORAGE, uniformBuffer, writeBuffer } from '../src/gpu/buffers.ts';
import { getPipeline, bindBuffers } from '../src/gpu/pipelines.ts';
import { timeGpu } from '../src/gpu/timing.ts';
import { Rng } from '../src/util/rng.ts';
import source from '../kernels/matmul_i8_sgmatrix.wgsl?raw';
import { adapterRecord, benchArgs, finish } from './common.ts';

const args = benchArgs();
const ctx = await getGpu();
const rows: (string | number)[][] = [];
const results: unknown[] = [];
if (!ctx.features.has('chromium-experimental-subgroup-matrix')) {
  rows.push(['-', 'chromium-experimental-subgroup-matrix not offered by this adapter', '-', '-']);
} else {
  const pipeline = await getPipeline(ctx, { label: 'matmul_i8_sgmatrix', code: source });
  for (const [m, n, k] of [[4096, 4096, 4096], [4096, 14336, 4096]]) {
    const rng = new Rng(7);
    const a = new Int8Array(m * k).map(() => rng.int(255) - 127);
    const b = new Int8Array(n * k).map(() => rng.int(255) - 127);
    const ga = createBuffer(ctx, a.byteLength, STORAGE.rw, 'a');
    const gb = createBuffer(ctx, b.byteLength, STORAGE.rw, 'b');
    const gc = createBuffer(ctx, m * n * 4, STORAGE.rw, 'c');
    writeBuffer(ctx, ga, 0, a);
    writeBuffer(ctx, gb, 0, b);
    const dims = uniformBuffer(ctx, [m, n, k, 0], 'dims');
    const bg = bindBuffers(ctx, pipeline, [ga, gb, gc, dims]);
    const t = await timeGpu(ctx, (enc, pass) => {
      const p = enc.beginComputePass(pass('i8mma'));
      p.setPipeline(pipeline);
      p.setBindGroup(0, bg);
      p.dispatchWorkgroups(n / 64, m / 64);
      p.end();
    });
    // Check 256 sampled outputs against the CPU.
    const c = new Int32Array(await readBuffer(ctx, gc, m * n * 4));
    let bad = 0;
    for (let s = 0; s < 256; s++) {
      const i = rng.int(m), j = rng.int(n);
      let ref = 0;
      for (let t2 = 0; t2 < k; t2++) ref += a[i * k + t2] * b[j * k + t2];
      if (ref !== c[i * n + j]) bad++;
    }
    const tops = (2 * m * n * k) / (t.ms * 1e-3) / 1e12;
    rows.push([`${m}x${n}x${k}`, 'i8 x i8 -> i32, subgroup matrix 16x16x32', t.ms.toFixed(3), tops.toFixed(1), bad === 0 ? 'ok' : `${bad}/256 wrong`]);
    results.push({ m, n, k, ms: t.ms, tops, wrongOfSampled: bad, timing: t.source });
    for (const x of [ga, gb, gc, dims]) releaseBuffer(ctx, x);
  }
}
finish({ bench: 'i8mma', date: new Date().toISOString(), adapter: adapterRecord(ctx), timing: 'timestamp', header: ['M x N x K', 'kernel', 'ms', 'TOPS', 'check'], rows, results }, args.json);
ctx.destroy();
