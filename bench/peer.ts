/**
 * bench/peer: ours vs established WebGPU libraries on the same device in the
 * same run (issue 9): tfjs-backend-webgpu (matMul; attention written as
 * matMul/softmax/matMul) and onnxruntime-web's WebGPU EP (MatMul;
 * com.microsoft GroupQueryAttention). Every figure is wall clock around
 * submit + completion (median of 5 after 2 warm-ups), inputs already on the
 * GPU, so all sides are timed the same way; ours also with timestamps.
 *   npm run bench -- bench/peer.ts [--json FILE] [--only matmul|attention]
 */
import { getGpu, type GpuContext } from '../src/gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, writeBuffer } from '../src/gpu/buffers.ts';
import { timeGpu } from './timing.ts';
import { MatmulF32 } from './matmul.ts';
import { Rng } from '../src/util/rng.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { installNavigatorGpu } from './peer/shim.ts';
import { onnxModel, FLOAT, INT32 } from './peer/onnx.ts';

const args = benchArgs({ only: { type: 'string' } });
const ctx = await getGpu();
await installNavigatorGpu();
const soft = ctx.info.isSoftware;
const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];

async function median(fn: () => Promise<void>, warmup = 2, iters = 5): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = performance.now();
    await fn();
    if (i >= warmup) t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

function randomBuffer(c: GpuContext, n: number, label: string, seed: number): GPUBuffer {
  const buf = createBuffer(c, n * 4, STORAGE.rw, label);
  const rng = new Rng(seed);
  const chunk = 1 << 22;
  for (let off = 0; off < n; off += chunk) writeBuffer(c, buf, off * 4, rng.fill(Math.min(chunk, n - off)));
  return buf;
}

function record(op: string, shape: string, who: string, ms: number, flops: number, extra: Record<string, unknown> = {}) {
  const tflops = flops / (ms * 1e-3) / 1e12;
  rows.push([op, shape, who, ms.toFixed(3), tflops.toFixed(2)]);
  results.push({ op, shape, who, ms, tflops, ...extra });
  return ms;
}

/**
 * onnxruntime-web loads its wasm next to its own module; in the bundle made
 * for the GPU machine that place is gone, so SIEVE_ORT_WASM_DIR names a
 * folder holding ort-wasm-simd-threaded.asyncify.{mjs,wasm}.
 */
async function loadOrt() {
  const ort = await import('onnxruntime-web/webgpu');
  ort.env.wasm.numThreads = 1;
  const dir = process.env.SIEVE_ORT_WASM_DIR;
  if (dir) ort.env.wasm.wasmPaths = new URL(`file://${dir.replace(/\/?$/, '/')}`).href;
  return ort;
}

/**
 * tfjs-webgpu records work lazily and onSubmittedWorkDone alone returned
 * before its kernels ran; reading back a 1-element sum of the output forces
 * the whole chain (the extra reduction is tiny next to the timed op).
 */
async function tfSync(tf: typeof import('@tensorflow/tfjs-core'), out: import('@tensorflow/tfjs-core').Tensor): Promise<void> {
  const s = tf.sum(out);
  await s.data();
  s.dispose();
}

/**
 * Keeps the GPU busy for `ms` (our matmul, back to back) so every side is timed
 * at full clocks: an idle H100 ramps up over about a second, which made the
 * first timed op of a group look several times slower (06:20 and 12:42 runs).
 */
async function warmGpu(ms = 1500): Promise<void> {
  if (soft) return;
  const mm = await MatmulF32.create(ctx);
  const s = { m: 2048, n: 2048, k: 2048 };
  const a = randomBuffer(ctx, s.m * s.k, 'warm_a', 7),
    b = randomBuffer(ctx, s.n * s.k, 'warm_b', 8);
  const c = createBuffer(ctx, s.m * s.n * 4, STORAGE.rw, 'warm_c');
  const dims = mm.dimsBuffer(s);
  try {
    for (const t0 = performance.now(); performance.now() - t0 < ms;) {
      const e = ctx.device.createCommandEncoder();
      for (let i = 0; i < 8; i++) {
        const p = e.beginComputePass();
        mm.encode(p, a, b, c, dims, s);
        p.end();
      }
      ctx.device.queue.submit([e.finish()]);
      await ctx.device.queue.onSubmittedWorkDone();
    }
  } finally {
    for (const x of [a, b, c, dims]) releaseBuffer(ctx, x);
  }
}

// ---------- matmul ----------
async function benchMatmul() {
  const shapes = soft
    ? [{ m: 128, n: 256, k: 128 }]
    : [
        { m: 4096, n: 4096, k: 4096 },
        { m: 4096, n: 14336, k: 4096 },
      ];
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  await tf.setBackend('webgpu');
  await tf.ready();
  const ort = await loadOrt();
  const mm = await MatmulF32.create(ctx);
  for (const s of shapes) {
    const label = `${s.m}x${s.n}x${s.k}`;
    const flops = 2 * s.m * s.n * s.k;
    // ours
    await warmGpu();
    const a = randomBuffer(ctx, s.m * s.k, 'a', 1),
      b = randomBuffer(ctx, s.n * s.k, 'b', 2);
    const c = createBuffer(ctx, s.m * s.n * 4, STORAGE.rw, 'c');
    const dims = mm.dimsBuffer(s);
    const enc = (e: GPUCommandEncoder, pass: (l: string) => GPUComputePassDescriptor) => {
      const p = e.beginComputePass(pass('matmul'));
      mm.encode(p, a, b, c, dims, s);
      p.end();
    };
    const ts = await timeGpu(ctx, enc);
    const oursWall = await median(async () => {
      const e = ctx.device.createCommandEncoder();
      enc(e, (l) => ({ label: l }));
      ctx.device.queue.submit([e.finish()]);
      await ctx.device.queue.onSubmittedWorkDone();
    });
    record('matmul f32', label, 'sieve (wall)', oursWall, flops, { timestampMs: ts.ms });
    for (const x of [a, b, c, dims]) releaseBuffer(ctx, x);
    // tfjs
    await warmGpu();
    try {
      const ta = tf.randomUniform([s.m, s.k]),
        tb = tf.randomUniform([s.n, s.k]);
      const ms = await median(async () => {
        const out = tf.matMul(ta, tb, false, true);
        await tfSync(tf, out);
        out.dispose();
      });
      record('matmul f32', label, 'tfjs-webgpu', ms, flops);
      const prof = await tf.time(() => {
        tf.matMul(ta, tb, false, true).dispose();
      });
      if (typeof prof.kernelMs === 'number') record('matmul f32', label, 'tfjs-webgpu (tf.time kernelMs)', prof.kernelMs, flops);
      ta.dispose();
      tb.dispose();
    } catch (e) {
      rows.push(['matmul f32', label, 'tfjs-webgpu', 'failed', String((e as Error).message).slice(0, 60)]);
    }
    // onnxruntime-web
    await warmGpu();
    try {
      const model = onnxModel(
        [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
        [
          { name: 'a', type: FLOAT, dims: [s.m, s.k] },
          { name: 'b', type: FLOAT, dims: [s.k, s.n] },
        ],
        [{ name: 'c', type: FLOAT, dims: [s.m, s.n] }],
      );
      const sess = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
      const dev: GPUDevice = await ort.env.webgpu.device;
      const ga = dev.createBuffer({ size: s.m * s.k * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      const gb = dev.createBuffer({ size: s.k * s.n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      const feeds = {
        a: ort.Tensor.fromGpuBuffer(ga, { dataType: 'float32', dims: [s.m, s.k] }),
        b: ort.Tensor.fromGpuBuffer(gb, { dataType: 'float32', dims: [s.k, s.n] }),
      };
      const ms = await median(async () => {
        const out = await sess.run(feeds);
        await dev.queue.onSubmittedWorkDone();
        out.c.dispose();
      });
      record('matmul f32', label, 'onnxruntime-web', ms, flops);
      ga.destroy();
      gb.destroy();
      await sess.release();
    } catch (e) {
      rows.push(['matmul f32', label, 'onnxruntime-web', 'failed', String((e as Error).message).slice(0, 60)]);
    }
  }
}

// ---------- attention ----------
async function benchAttention() {
  const cfgs = soft
    ? [{ S: 128, H: 4, KV: 2, D: 32 }]
    : [
        { S: 4096, H: 32, KV: 8, D: 128 },
        { S: 16384, H: 32, KV: 8, D: 128 },
      ];
  const tf = await import('@tensorflow/tfjs-core');
  const ort = await loadOrt();
  let PrefillAttention: unknown;
  try {
    PrefillAttention = (await import('../src/attention/index.ts')).PrefillAttention;
  } catch {
    PrefillAttention = undefined;
  }
  for (const { S, H, KV, D } of cfgs) {
    const label = `S=${S} D=${D} ${H}q/${KV}kv causal`;
    const flops = (4 * H * D * (S * (S + 1))) / 2; // causal work: QK^T and PV over the lower triangle
    // ours
    await warmGpu();
    if (PrefillAttention) {
      const PA = PrefillAttention as {
        create: (c: GpuContext, d: object) => Promise<{ encode: (e: GPUCommandEncoder, a: object, o: object) => void; destroy(): void }>;
      };
      const att = await PA.create(ctx, { nHeads: H, nKvHeads: KV, headDim: D, kvDtype: 'f32', capacity: S, maxRows: S });
      const q = randomBuffer(ctx, S * H * D, 'q', 3);
      const k = randomBuffer(ctx, KV * S * D, 'k', 4),
        v = randomBuffer(ctx, KV * S * D, 'v', 5);
      const out = createBuffer(ctx, S * H * D * 4, STORAGE.rw, 'o');
      const { DEFAULT_ATTENTION } = await import('../src/engine/types.ts');
      const ms = await median(async () => {
        const e = ctx.device.createCommandEncoder();
        att.encode(e, { q, kv: { k, v }, out, pos: 0, rows: S, layer: 0 }, { ...DEFAULT_ATTENTION, attention: 'dense' });
        ctx.device.queue.submit([e.finish()]);
        await ctx.device.queue.onSubmittedWorkDone();
      });
      record('attention', label, 'sieve dense (wall)', ms, flops);
      for (const x of [q, k, v, out]) releaseBuffer(ctx, x);
      att.destroy();
    } else rows.push(['attention', label, 'sieve', 'n/a', 'src/attention not built']);
    // tfjs: matMul / softmax / matMul with a causal mask, K/V repeated per group
    await warmGpu();
    if (S <= 4096) {
      try {
        const q = tf.randomUniform([H, S, D]),
          k = tf.randomUniform([KV, S, D]),
          v = tf.randomUniform([KV, S, D]);
        const kr = tf.reshape(tf.tile(tf.reshape(k, [KV, 1, S, D]), [1, H / KV, 1, 1]), [H, S, D]);
        const vr = tf.reshape(tf.tile(tf.reshape(v, [KV, 1, S, D]), [1, H / KV, 1, 1]), [H, S, D]);
        const mask = tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([S, S]), -1, 0), 1), 1e9);
        const ms = await median(async () => {
          const o = tf.tidy(() => tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, kr, false, true), 1 / Math.sqrt(D)), mask)), vr));
          await o.data(); // full readback: tfjs's lazily recorded chain is only certain to have run then
          o.dispose();
        });
        record('attention', label, 'tfjs-webgpu (incl. readback)', ms, flops, {
          note: 'matMul/softmax/matMul, full S x S computed; time includes reading the output back (an upper bound)',
        });
        // Cross-check with tfjs's own profiler (GPU timestamps when it has them).
        const prof = await tf.time(() => {
          const o = tf.tidy(() => tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, kr, false, true), 1 / Math.sqrt(D)), mask)), vr));
          o.dispose();
        });
        if (typeof prof.kernelMs === 'number') record('attention', label, 'tfjs-webgpu (tf.time kernelMs)', prof.kernelMs, flops);
        tf.dispose([q, k, v, kr, vr, mask]);
      } catch (e) {
        rows.push(['attention', label, 'tfjs-webgpu', 'failed', String((e as Error).message).slice(0, 60)]);
      }
    } else rows.push(['attention', label, 'tfjs-webgpu', 'skipped', `S x S scores = ${((H * S * S * 4) / 2 ** 30).toFixed(0)} GiB > binding limit`]);
    // onnxruntime-web GroupQueryAttention
    await warmGpu();
    try {
      const model = onnxModel(
        [
          {
            op: 'GroupQueryAttention',
            domain: 'com.microsoft',
            inputs: ['q', 'k', 'v', '', '', 'seqlens_k', 'total_seq'],
            outputs: ['o'],
            intAttrs: { num_heads: H, kv_num_heads: KV },
          },
        ],
        [
          { name: 'q', type: FLOAT, dims: [1, S, H * D] },
          { name: 'k', type: FLOAT, dims: [1, S, KV * D] },
          { name: 'v', type: FLOAT, dims: [1, S, KV * D] },
          { name: 'seqlens_k', type: INT32, dims: [1] },
          { name: 'total_seq', type: INT32, dims: [] },
        ],
        [{ name: 'o', type: FLOAT, dims: [1, S, H * D] }],
      );
      const sess = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
      const dev: GPUDevice = await ort.env.webgpu.device;
      const mk = (n: number) => dev.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      const bq = mk(S * H * D),
        bk = mk(S * KV * D),
        bv = mk(S * KV * D);
      const feeds = {
        q: ort.Tensor.fromGpuBuffer(bq, { dataType: 'float32', dims: [1, S, H * D] }),
        k: ort.Tensor.fromGpuBuffer(bk, { dataType: 'float32', dims: [1, S, KV * D] }),
        v: ort.Tensor.fromGpuBuffer(bv, { dataType: 'float32', dims: [1, S, KV * D] }),
        seqlens_k: new ort.Tensor('int32', new Int32Array([S - 1]), [1]),
        total_seq: new ort.Tensor('int32', new Int32Array([S]), []),
      };
      const ms = await median(async () => {
        const out = await sess.run(feeds);
        await dev.queue.onSubmittedWorkDone();
        out.o.dispose();
      });
      record('attention', label, 'onnxruntime-web GQA', ms, flops);
      bq.destroy();
      bk.destroy();
      bv.destroy();
      await sess.release();
    } catch (e) {
      rows.push(['attention', label, 'onnxruntime-web GQA', 'failed', String((e as Error).message).slice(0, 60)]);
    }
  }
}

if (args.only !== 'attention') await benchMatmul();
if (args.only !== 'matmul') await benchAttention();
finish(
  {
    bench: 'peer',
    date: new Date().toISOString(),
    adapter: adapterRecord(ctx),
    timing: 'wall (submit to onSubmittedWorkDone) for every side',
    header: ['op', 'shape', 'who', 'ms', 'TFLOP/s'],
    rows,
    results,
  },
  args.json,
);
process.exit(0);
