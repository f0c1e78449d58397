/**
 * bench/gemm: prefill GEMM TFLOP/s of the linear layer (kernels/linear_gemm.wgsl,
 * the default; issue 9): y (M, N) = x (M, K) W^T with W packed as f16 / q4 / q8 /
 * f32, plus bench/matmul.wgsl (f32) as the baseline.
 *   npm run bench -- bench/gemm.ts [--json FILE]
 *     [--shapes 4096x4096x4096,4096x14336x4096] [--formats f16,q4] [--group 32]
 *     [--gateup] [--no-check] [--no-matmul] [--iters 5] [--warm-ms 300] [--pass-ms 40]
 *     [--dequant f32,none] [--dq-min-rows 1]
 * On the GPU machine: npm run gpu:bundle -- bench/gemm.ts, then
 *   source .gpu/setup.sh && node .gpu/gemm.mjs --json $OUT/gemm.json
 * Shapes are M x N x K (M rows of x, N weight rows, K = in); --gateup adds
 * the fused gate/up at M x 2N x K per shape (N outputs). (The other GEMM
 * variants this bench swept live in git history: kernels/linear_gemm.ts before issue 16.)
 * --dequant (q4 / q8 rows only; default: f32,none), one row each, named
 * 'dq=MODE': 'f32' expands the weight into a scratch (kernels/linear.wgsl dequant)
 * inside the timed dispatch, then runs the f32 GEMM (rows >= --dq-min-rows,
 * default 1: every M; the library's LinearOptions.prefillDequantMinRows is
 * 256); 'none' decodes inside the GEMM.
 * Each row runs --warm-ms (300) of wall time first, then the median of
 * --iters (5) timed passes of repeated dispatches (up to --pass-ms, 40 ms of
 * GPU work, per pass), divided by the repeats; timestamp queries when
 * present. Every row is checked
 * (unless --no-check) against an f64 CPU reference on sampled outputs (8
 * rows x 64 columns, including the last row and column); a row whose max
 * error relative to max |y| exceeds 1e-4 says WRONG. A failing row prints its
 * error and the run goes on.
 */
import { getGpu } from '../src/gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { timeGpu } from './timing.ts';
import type { WeightFormat } from '../src/loader/formats.ts';
import { f16ToF32 } from '../src/loader/quant.ts';
import { Rng } from '../src/util/rng.ts';
import { MatmulF32 } from './matmul.ts';
import { ELEMS_PER_WORD, LinearKernels } from '../kernels/linear.ts';
type PrefillDequant = 'f32' | 'none';
const PREFILL_DEQUANTS: PrefillDequant[] = ['f32', 'none'];
import type { Dispatch } from '../src/engine/types.ts';
import { adapterRecord, benchArgs, finish } from './common.ts';
import { dataKind, filledBuffer, randomBlocks, randomWeight, type BlockKind } from './random-weights.ts';

const args = benchArgs({
  shapes: { type: 'string' },
  formats: { type: 'string' },
  group: { type: 'string' },
  dequant: { type: 'string' },
  'dq-min-rows': { type: 'string' },
  gateup: { type: 'boolean' },
  'no-check': { type: 'boolean' },
  'no-matmul': { type: 'boolean' },
  iters: { type: 'string' },
  'warm-ms': { type: 'string' },
  'pass-ms': { type: 'string' },
});
const ctx = await getGpu();
const soft = ctx.info.isSoftware;
const shapes = String(args.shapes ?? (soft ? '96x256x128,130x200x96' : '4096x4096x4096,4096x14336x4096'))
  .split(',')
  .map((s) => {
    const [m, n, k] = s.split('x').map(Number);
    return { m, n, k };
  });
const variants = [{ spec: 'default' }];
const formats = String(args.formats ?? 'f16,q4').split(',') as WeightFormat[];
const GROUP = Number(args.group ?? 32);
const ITERS = Number(args.iters ?? 5);
const WARM_MS = soft ? 0 : Number(args['warm-ms'] ?? 300);
const PASS_MS = Number(args['pass-ms'] ?? 40);
const check = args['no-check'] !== true;
const dequants = String(args.dequant ?? 'f32,none').split(',') as PrefillDequant[];
for (const dq of dequants) if (!PREFILL_DEQUANTS.includes(dq)) throw new Error(`--dequant: '${dq}' is not one of ${PREFILL_DEQUANTS.join(', ')}`);
// Rows from which the expansion runs (LinearOptions.prefillDequantMinRows): 1 here, so a dq row always runs its mode.
const DQ_MIN_ROWS = Number(args['dq-min-rows'] ?? 1);
/** The dequantization modes a format's rows run: every --dequant mode for q4 / q8, one row otherwise. */
const modesOf = (f: WeightFormat): (PrefillDequant | undefined)[] => (f === 'q4' || f === 'q8' ? dequants : [undefined]);
const kernelKey = (spec: string, dq: PrefillDequant | undefined) => `${spec}|${dq ?? 'none'}`;

const t0 = performance.now();
const header = ['kernel', 'weights', 'M x N x K', 'ms', 'TFLOP/s', 'max rel err'];
const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
let timing = 'wall';

// ---- deterministic inputs: random blocks tiled over the buffers ---------------------
// Block lengths are odd so that rows of x and W do not repeat with the tile size
// (a kernel reading the wrong tile would otherwise still match the reference).

const rng = new Rng(11);
const BLOCK_WORDS = 262147;
const blocks = randomBlocks(rng, BLOCK_WORDS);
const filled = (bytes: number, kind: BlockKind, label: string) => filledBuffer(ctx, blocks, bytes, kind, label);

/** Word i of a buffer filled from `kind`. */
const word = (kind: BlockKind, i: number) => blocks[kind][i % BLOCK_WORDS];
const xAt = (i: number) => new Float32Array(blocks.f32.buffer)[i % BLOCK_WORDS];

/** A weight [out, in] in `format`, parts within a binding; `rowValues(r)` is row r dequantized (what the kernels see). */
function makeWeight(format: WeightFormat, out: number, inDim: number) {
  const quant = format === 'q8' || format === 'q4';
  const group = quant ? GROUP : 0;
  const { w, buffers, maxRows } = randomWeight(ctx, blocks, format, out, inDim, GROUP);
  const epw = ELEMS_PER_WORD[format];
  const rowValues = (r: number): Float64Array => {
    const local = r % maxRows; // element indices restart in every part
    const v = new Float64Array(inDim);
    for (let k = 0; k < inDim; k++) {
      const e = local * inDim + k;
      const wd = word(dataKind(format), Math.floor(e / epw));
      const sub = e % epw;
      let q: number;
      if (format === 'f32') q = new Float32Array(new Uint32Array([wd]).buffer)[0];
      else if (format === 'f16') q = f16ToF32((wd >>> (16 * sub)) & 0xffff);
      else if (format === 'q8') q = ((wd >>> (8 * sub)) << 24) >> 24;
      else q = ((wd >>> (4 * sub)) & 15) - 8;
      if (quant) {
        const g = Math.floor(e / group);
        q *= f16ToF32((word('scale', g >> 1) >>> (16 * (g & 1))) & 0xffff);
      }
      v[k] = q;
    }
    return v;
  };
  return { w, buffers, rowValues };
}

// ---- checking ---------------------------------------------------------------------

/** Max |y - ref| / max |ref| over sampled rows and columns of y (m, cols). */
async function sampledError(y: GPUBuffer, m: number, cols: number, k: number, want: (row: Float64Array, c: number) => number): Promise<number> {
  const sampleRows = [...new Set([0, 1, m >> 1, m - 1, ...Array.from({ length: 4 }, () => Math.floor(rng.next() * m))])];
  const sampleCols = [...new Set([0, cols - 1, ...Array.from({ length: 62 }, () => Math.floor(rng.next() * cols))])];
  let err = 0;
  let scale = 0;
  for (const r of sampleRows) {
    const got = await readF32(ctx, y, cols, r * cols);
    const xr = new Float64Array(k);
    for (let i = 0; i < k; i++) xr[i] = xAt(r * k + i);
    for (const c of sampleCols) {
      const ref = want(xr, c);
      err = Math.max(err, Math.abs(got[c] - ref));
      scale = Math.max(scale, Math.abs(ref));
    }
  }
  return err / Math.max(scale, 1e-30);
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

// ---- runs -------------------------------------------------------------------------

/**
 * Median ms of one dispatch. The H100 sweep of 08:40 read the same kernel 2-5x
 * apart from row to row (matmul_f32 7.2 instead of 24 TFLOP/s) after the
 * readbacks and CPU work between rows: so each row first runs for WARM_MS of
 * wall time, and each timed pass repeats the dispatch up to PASS_MS of GPU work.
 */
async function time(d: Dispatch, label: string): Promise<{ ms: number; all: number[]; reps: number }> {
  ctx.device.pushErrorScope('validation');
  ctx.device.pushErrorScope('out-of-memory');
  const run = (reps: number, warmup: number, iters: number) =>
    timeGpu(
      ctx,
      (enc, pass) => {
        const p = enc.beginComputePass(pass(label));
        for (let i = 0; i < reps; i++) d.encode(p);
        p.end();
      },
      { warmup, iters },
    );
  const first = await run(1, 0, 1);
  const reps = soft ? 1 : Math.max(1, Math.min(64, Math.ceil(PASS_MS / Math.max(first.ms, 1e-3))));
  const start = performance.now();
  while (performance.now() - start < WARM_MS) await run(reps, 0, 1);
  const t = await run(reps, soft ? 1 : 0, ITERS);
  const oom = await ctx.device.popErrorScope();
  const val = await ctx.device.popErrorScope();
  if (oom || val) throw new Error((oom ?? val)!.message);
  timing = t.source;
  return { ms: t.ms / reps, all: t.all.map((ms) => ms / reps), reps };
}

async function row(name: string, fn: () => Promise<void>): Promise<void> {
  if (ctx.isLost) return;
  const before = rows.length;
  try {
    await fn();
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0].slice(0, 160);
    rows.push([name, '', '', 'error', '', msg]);
    results.push({ kernel: name, error: msg });
  }
  // Progress on stderr (a full sweep compiles ~30 pipelines).
  if (rows.length > before) console.error(`# ${((performance.now() - t0) / 1e3).toFixed(1)} s: ${rows[rows.length - 1].join('  ')}`);
}

const kernels = new Map<string, LinearKernels>();
const allModes = [...new Set(formats.flatMap(modesOf))];
for (const v of variants) {
  for (const dq of allModes) {
    await row(v.spec, async () => {
      kernels.set(kernelKey(v.spec, dq), await LinearKernels.create(ctx, { prefillDequantMinRows: dq === 'f32' ? DQ_MIN_ROWS : 1e9 }));
    });
  }
}
const mm = await MatmulF32.create(ctx);

for (const { m, n, k } of shapes) {
  const shape = `${m}x${n}x${k}`;
  const flops = 2 * m * n * k;
  const x = filled(m * k * 4, 'f32', 'x');
  const y = createBuffer(ctx, m * n * 4, STORAGE.rw, 'y');
  try {
    if (args['no-matmul'] !== true) {
      await row('matmul_f32 (baseline)', async () => {
        const b = filled(n * k * 4, 'f32', 'b');
        const dims = mm.dimsBuffer({ m, n, k });
        try {
          const t = await time({ encode: (p) => mm.encode(p, x, b, y, dims, { m, n, k }), destroy() {} }, 'matmul');
          rows.push(['matmul_f32 (baseline)', 'f32', shape, t.ms.toFixed(3), (flops / t.ms / 1e9).toFixed(2), '']);
          results.push({ kernel: 'matmul_f32', format: 'f32', m, n, k, ms: t.ms, allMs: t.all, tflops: flops / t.ms / 1e9 });
        } finally {
          releaseBuffer(ctx, b);
          releaseBuffer(ctx, dims);
        }
      });
    }
    for (const format of formats) {
      const wt = makeWeight(format, n, k);
      const refRows = new Map<number, Float64Array>();
      const wRow = (c: number) => {
        let v = refRows.get(c);
        if (!v) refRows.set(c, (v = wt.rowValues(c)));
        return v;
      };
      try {
        for (const v of variants)
          for (const dq of modesOf(format)) {
            const lin = kernels.get(kernelKey(v.spec, dq));
            if (!lin) continue;
            const name = `linear_gemm${dq ? ` dq=${dq}` : ''}`;
            const wRef = wRow;
            await row(name, async () => {
              const d = lin.prepare({ x, w: wt.w, y, rows: m });
              try {
                await ctx.device.queue.onSubmittedWorkDone();
                const t = await time(d, 'linear_gemm');
                const relErr = check ? await sampledError(y, m, n, k, (xr, c) => dot(xr, wRef(c))) : NaN;
                const bad = relErr > 1e-4 ? ' WRONG' : '';
                rows.push([name + bad, format, shape, t.ms.toFixed(3), (flops / t.ms / 1e9).toFixed(2), check ? relErr.toExponential(1) : '']);
                results.push({
                  kernel: 'linear_gemm',
                  variant: v.spec,
                  dequant: dq ?? 'none',
                  format,
                  group: GROUP,
                  m,
                  n,
                  k,
                  ms: t.ms,
                  allMs: t.all,
                  reps: t.reps,
                  tflops: flops / t.ms / 1e9,
                  relErr,
                });
              } finally {
                d.destroy();
              }
            });
          }
      } finally {
        for (const b of wt.buffers) releaseBuffer(ctx, b);
      }
      if (!args.gateup) continue;
      // Fused gate/up: W = [Wg; Wu] of 2n rows, y (m, n) = silu(x Wg^T) * (x Wu^T).
      const gu = makeWeight(format, 2 * n, k);
      try {
        for (const v of variants)
          for (const dq of modesOf(format)) {
            const lin = kernels.get(kernelKey(v.spec, dq));
            if (!lin) continue;
            const name = `linear_gemm gate/up ${v.spec}${dq ? ` dq=${dq}` : ''}`;
            const guRow = gu.rowValues;
            await row(name, async () => {
              const d = lin.prepareGateUp({ x, w: gu.w, y, rows: m });
              const gflops = 2 * flops;
              try {
                const t = await time(d, 'gate_up');
                const silu = (g: number) => g / (1 + Math.exp(-g));
                const relErr = check ? await sampledError(y, m, n, k, (xr, c) => silu(dot(xr, guRow(c))) * dot(xr, guRow(n + c))) : NaN;
                const bad = relErr > 1e-4 ? ' WRONG' : '';
                rows.push([name + bad, format, `${m}x${2 * n}x${k}`, t.ms.toFixed(3), (gflops / t.ms / 1e9).toFixed(2), check ? relErr.toExponential(1) : '']);
                results.push({
                  kernel: 'linear_gemm_gate_up',
                  variant: v.spec,
                  dequant: dq ?? 'none',
                  format,
                  group: GROUP,
                  m,
                  n: 2 * n,
                  k,
                  ms: t.ms,
                  allMs: t.all,
                  reps: t.reps,
                  tflops: gflops / t.ms / 1e9,
                  relErr,
                });
              } finally {
                d.destroy();
              }
            });
          }
      } finally {
        for (const b of gu.buffers) releaseBuffer(ctx, b);
      }
    }
  } finally {
    releaseBuffer(ctx, x);
    releaseBuffer(ctx, y);
  }
}
for (const lin of kernels.values()) lin.destroy();

finish({ bench: 'gemm', date: new Date().toISOString(), adapter: adapterRecord(ctx), timing, header, rows, results }, args.json);
ctx.destroy();
