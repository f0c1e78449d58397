/**
 * Launcher and CPU reference for kernels/attention_prefill.wgsl: causal flash
 * attention for prefill (MODE 0) and SampleAttention's fused sparse pass
 * (MODE 1) with its dense fallback (FALLBACK 1, kernels/sample_fallback.wgsl).
 * The sampling and selection kernels are in kernels/sample_attention.ts.
 *
 * Every attention kernel of the prefill is specialized by one generated
 * header (attentionHeader): the tile plan as WGSL consts (they size
 * function-scope arrays, which WGSL cannot size by an override), the Params
 * uniform shared by the attention kernels, and the K/V loaders of the cache
 * dtype (f32, or f16 pairs in u32). Switches such as MODE are `override`s.
 * Lengths and positions are uniforms: the pipelines depend on the layer shape
 * and the device only (flashSpecs lists them).
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { getPipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../src/gpu/buffers.ts';
import { GpuLimitError, InvalidOptionError } from '../src/errors.ts';
import source from './attention_prefill.wgsl?raw';
import fallbackSource from './sample_fallback.wgsl?raw';
import type { KernelTier } from '../src/gpu/tier.ts';
import { wgslHeader } from '../src/gpu/wgsl-header.ts';

/** 'sparse': SampleAttention's fused stripes + window pass. */
export type FlashMode = 'dense' | 'sparse';

/** KV cache element type. */
export type KvDtype = 'f32' | 'f16';

/** Shape of one attention layer as the kernels see it. */
export interface AttentionDims {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  capacity: number;
  /**
   * Kernel tier (src/gpu/tier.ts; default 'f32'): q and the output hold its activation type;
   * in 'f16' with an f16 cache (headDim % 4 == 0) K/V are read as native vec4<f16>.
   */
  tier?: KernelTier;
}

/** Tile plan derived from the dims and the device (also used by the sample kernels). */
export interface TilePlan {
  /** Threads per query row (subgroup shuffles reduce across them); 1 without subgroups. */
  tpr: number;
  /** vec4s of q/o per thread. */
  nv: number;
  /** Padded vec4s per head row (nv * tpr). */
  dvp: number;
  /** Query rows per workgroup. */
  qr: number;
  /** Query rows per thread (each K/V vec4 from workgroup memory serves this many rows). */
  rpt: number;
  /** Keys per K/V tile. */
  bc: number;
  /** Prefetch the next K/V tile into registers while computing the current one. */
  pf: boolean;
  group: number;
}

/** Tile sizes to force (tests cover the wide tile's shape on SwiftShader with them); each is checked against the device. */
export interface TileOverrides {
  qr?: number;
  tpr?: number;
  bc?: number;
  rpt?: number;
  pf?: boolean;
}

export function tilePlan(ctx: GpuContext, d: AttentionDims, opts: { subgroups?: boolean; tile?: TileOverrides } = {}): TilePlan {
  const dv4 = Math.ceil(d.headDim / 4);
  const useSg = (opts.subgroups ?? true) && ctx.features.has('subgroups') && subgroupMin(ctx) >= 4;
  const bad = (name: string, why: string) => {
    throw new InvalidOptionError(`tile.${name}`, why, { ...opts.tile });
  };
  let tpr = 1;
  if (opts.tile?.tpr !== undefined) {
    tpr = opts.tile.tpr;
    if (![1, 2, 4, 8].includes(tpr)) bad('tpr', `must be 1, 2, 4 or 8, got ${tpr}`);
    if (tpr > 1 && (!useSg || tpr > subgroupMin(ctx)))
      bad('tpr', `${tpr} lanes per row need subgroups of at least ${tpr} (min subgroup size ${subgroupMin(ctx)})`);
  } else if (useSg) {
    while (tpr < 4 && tpr * 2 <= dv4) tpr *= 2;
  }
  // Wide heads on subgroups of >= 8 lanes: 8 lanes per row (4 vec4s of q/o each) and 4 rows per
  // thread in 128-row workgroups (256 threads) with 8-key tiles (H100, D=128, S=16K dense: 23.6
  // TFLOP/s, 32K: 23.7-24.4; 64x8x16x2 22.5, 64x8x8x4 22.7, 128x8x16x4 18.3, 256x8x8x4 spills;
  // 64x4x32x1 11.3).
  const wide = useSg && opts.tile?.tpr === undefined && dv4 >= 24 && subgroupMin(ctx) >= 8 && 256 <= ctx.limits.maxComputeInvocationsPerWorkgroup;
  if (wide) tpr = 8;
  const nv = Math.ceil(dv4 / tpr);
  const dvp = nv * tpr;
  const maxThreads = ctx.limits.maxComputeInvocationsPerWorkgroup;
  const rpt = opts.tile?.rpt ?? (wide && opts.tile?.qr === undefined ? 4 : 1);
  if (![1, 2, 4].includes(rpt)) bad('rpt', `must be 1, 2 or 4, got ${rpt}`);
  let qr = wide && opts.tile?.rpt === undefined ? 128 : rpt * Math.max(1, Math.min(64, Math.floor(Math.min(256, maxThreads) / tpr)));
  if (opts.tile?.qr !== undefined) {
    qr = opts.tile.qr;
    if (!Number.isInteger(qr) || qr < rpt || qr % rpt !== 0 || (qr / rpt) * tpr > maxThreads) {
      bad('qr', `must be a multiple of rpt=${rpt} with qr / rpt * tpr <= ${maxThreads}, got ${qr}`);
    }
  }
  // Two tiles (K and V) of bc x dvp vec4s plus the key ids must fit workgroup memory.
  const budget = ctx.limits.maxComputeWorkgroupStorageSize - 1024;
  let bc = wide ? 8 : 32;
  while (bc > 4 && bc * dvp * 32 > budget) bc /= 2;
  if (opts.tile?.bc !== undefined) {
    bc = opts.tile.bc;
    // The kernel masks a tile's keys with one u32 of bits per row.
    if (!Number.isInteger(bc) || bc < 1 || bc > 32) bad('bc', `must be an integer in [1, 32] (one mask bit per key), got ${bc}`);
    if (bc * dvp * 32 > budget) bad('bc', `${bc} keys per tile do not fit ${budget} bytes of workgroup memory at headDim ${d.headDim}`);
  }
  // One thread per key writes the tile's key ids.
  if ((qr / rpt) * tpr < bc) bad('bc', `${bc} keys per tile need at least ${bc} threads, the workgroup has ${(qr / rpt) * tpr}`);
  // Register prefetch of the next K/V tile: on for the wide default (H100 09:25, S=32K: dense 318 ms
  // = 27.6 TFLOP/s with it, 365 ms = 24.1 without; bench/gpu-results/h100-0925-attention-prefetch.json).
  const pf = opts.tile?.pf ?? (wide && opts.tile?.rpt === undefined && opts.tile?.qr === undefined && opts.tile?.bc === undefined);
  return { tpr, nv, dvp, qr, rpt, bc, pf, group: d.nHeads / d.nKvHeads };
}

function subgroupMin(ctx: GpuContext): number {
  const info = ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  return info.subgroupMinSize ?? 4;
}

/** The sampled rows of a chunk (src/attention/options.ts SparsePlan): nSamp rows in nBlocks blocks of sampBlock. */
export interface SampledRows {
  nSamp: number;
  nBlocks: number;
  sampBlock: number;
}

/** Chunk-local index of sampled row k of a chunk of `rows` rows (the CPU twin of the header's sample_row()). */
export function sampleRow(k: number, rows: number, plan: SampledRows): number {
  if (plan.nSamp >= rows) return k;
  const b = Math.floor(k / plan.sampBlock);
  return Math.floor(((b + 1) * rows) / plan.nBlocks) - plan.sampBlock + (k % plan.sampBlock);
}

/** Uniform words shared by every attention kernel (16 words, 64 bytes). */
export interface AttentionParams {
  rows: number;
  pos: number;
  nHeads: number;
  nKvHeads: number;
  capacity: number;
  window: number;
  nSamp: number;
  sampBlock: number;
  nBlocks: number;
  nCols: number;
  statsOffset: number;
  scale: number;
  alpha: number;
  /** Selection: stripe area at or above which a KV group runs dense (absent: never). */
  fallbackSel?: number;
  /** K/V head of unit u is u / kvDiv (default 1; per-head selection passes nKvHeads = nHeads and the real group). */
  kvDiv?: number;
}

export const PARAMS_BYTES = 64;

export function paramsWords(p: AttentionParams): ArrayBuffer {
  const ab = new ArrayBuffer(PARAMS_BYTES);
  const u = new Uint32Array(ab);
  const f = new Float32Array(ab);
  u.set([p.rows, p.pos, p.nHeads, p.nKvHeads, p.capacity, p.window, p.nSamp, p.sampBlock, p.nBlocks, p.nCols, p.statsOffset, p.nHeads / p.nKvHeads]);
  f[12] = p.scale;
  f[13] = p.alpha;
  f[14] = p.fallbackSel ?? 3.0e38;
  u[15] = p.kvDiv ?? 1;
  return ab;
}

/**
 * The generated header of the prefill attention kernels (attention_prefill, sample_scores,
 * sample_scores_combine, sample_select, sample_fallback): the tier's act / act4
 * (src/gpu/wgsl-header.ts, which also writes the consts), `const` HEAD_DIM and the tile plan
 * (TPR, NV, DVP, QR, BC, RPT, THREADS, KV_PREFETCH, KV_NE) plus `consts`, the Params uniform
 * (binding 6) with sample_row(), row_sum() over a row's TPR subgroup lanes, and the K/V cache
 * bindings (1, 2) with load_k4 / load_v4 for the cache dtype.
 */
export function attentionHeader(d: AttentionDims, plan: TilePlan, consts: Record<string, number> = {}): string {
  const lines: string[] = [];
  const threads = (plan.qr / plan.rpt) * plan.tpr;
  const all: Record<string, number> = {
    HEAD_DIM: d.headDim,
    TPR: plan.tpr,
    NV: plan.nv,
    DVP: plan.dvp,
    QR: plan.qr,
    BC: plan.bc,
    RPT: plan.rpt,
    THREADS: threads,
    KV_PREFETCH: plan.pf ? 1 : 0,
    KV_NE: Math.ceil((plan.bc * plan.dvp) / threads),
    ...consts,
  };
  lines.push(wgslHeader(d.tier ?? 'f32', { enables: plan.tpr > 1 ? ['subgroups'] : [], consts: all }));
  lines.push(`
struct Params {
  rows: u32, pos: u32, nHeads: u32, nKvHeads: u32,
  capacity: u32, window: u32, nSamp: u32, sampBlock: u32,
  nBlocks: u32, nCols: u32, statsOffset: u32, group: u32,
  scale: f32, alpha: f32, fallbackSel: f32, kvDiv: u32,
}
@group(0) @binding(6) var<uniform> p: Params;

// Chunk-local row of sampled row k: the rows are cut into nBlocks equal segments and
// each segment's last sampBlock rows are sampled, so the last block ends at rows - 1.
fn sample_row(k: u32) -> u32 {
  if (p.nSamp >= p.rows) { return k; }
  let b = k / p.sampBlock;
  return ((b + 1u) * p.rows) / p.nBlocks - p.sampBlock + k % p.sampBlock;
}

// Sum over the TPR threads that share one query row (adjacent subgroup lanes).
fn row_sum(x: f32) -> f32 {
  var s = x;${[1, 2, 4]
    .filter((m) => plan.tpr > m)
    .map((m) => `\n  s += subgroupShuffleXor(s, ${m}u);`)
    .join('')}
  return s;
}`);
  lines.push(kvAccess(d));
  return lines.join('\n') + '\n';
}

/** K/V bindings and `load_k4/load_v4(row, d4)`: vec4 d4 of cache row `row` (kvHead * capacity + position), zero past headDim. */
function kvAccess(d: AttentionDims): string {
  const D = d.headDim;
  if (d.tier === 'f16' && d.kvDtype === 'f16' && D % 4 === 0) {
    // The f16 tier: the f16 cache as what it is, native vec4<f16> (same bytes as the f16 pairs).
    return ['k', 'v']
      .map(
        (n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}c: array<vec4<f16>>;
fn load_${n}4(row: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${D / 4}u) { return vec4<f32>(0.0); }
  return vec4<f32>(${n}c[row * ${D / 4}u + d4]);
}`,
      )
      .join('\n');
  }
  if (d.kvDtype === 'f32' && D % 4 === 0) {
    return ['k', 'v']
      .map(
        (n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}c: array<vec4<f32>>;
fn load_${n}4(row: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${D / 4}u) { return vec4<f32>(0.0); }
  return ${n}c[row * ${D / 4}u + d4];
}`,
      )
      .join('\n');
  }
  if (d.kvDtype === 'f32') {
    return ['k', 'v']
      .map(
        (n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}c: array<f32>;
fn load_${n}4(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { let dd = d4 * 4u + c; if (dd < ${D}u) { x[c] = ${n}c[row * ${D}u + dd]; } }
  return x;
}`,
      )
      .join('\n');
  }
  if (D % 2 !== 0) throw new Error(`f16 KV cache needs an even headDim, got ${D}`);
  if (D % 4 === 0) {
    return ['k', 'v']
      .map(
        (n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}c: array<vec2<u32>>;
fn load_${n}4(row: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${D / 4}u) { return vec4<f32>(0.0); }
  let w = ${n}c[row * ${D / 4}u + d4];
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}`,
      )
      .join('\n');
  }
  return ['k', 'v']
    .map(
      (n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}c: array<u32>;
fn load_${n}4(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  let w0 = d4 * 2u;
  if (w0 < ${D / 2}u) { let a = unpack2x16float(${n}c[row * ${D / 2}u + w0]); x.x = a.x; x.y = a.y; }
  if (w0 + 1u < ${D / 2}u) { let b = unpack2x16float(${n}c[row * ${D / 2}u + w0 + 1u]); x.z = b.x; x.w = b.y; }
  return x;
}`,
    )
    .join('\n');
}

/** The header for kernels that use no flash tile (sampling, selection): tpr 1 keeps it free of subgroups. */
export function plainHeader(dims: AttentionDims, consts: Record<string, number> = {}): string {
  return attentionHeader(dims, { tpr: 1, nv: 1, dvp: 1, qr: 1, rpt: 1, bc: 1, pf: false, group: dims.nHeads / dims.nKvHeads }, consts);
}

/** Binds buffers at explicit binding numbers (auto layouts drop bindings a kernel does not use). */
export function bindAt(ctx: GpuContext, pipeline: GPUComputePipeline, entries: [number, GPUBuffer | GPUBufferBinding][], label: string): GPUBindGroup {
  return ctx.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: entries.map(([binding, b]) => ({ binding, resource: 'buffer' in b ? b : { buffer: b } })),
  });
}

/** Pipelines of the flash kernel for one layer shape: dense, and with `sparse` the fused pass, its dense fallback and the fallback's argument kernel. */
export interface FlashSpecs {
  dense: PipelineSpec;
  sparse?: PipelineSpec;
  fallback?: PipelineSpec;
  fallbackArgs?: PipelineSpec;
}

export function flashSpecs(ctx: GpuContext, dims: AttentionDims, opts: { sparse?: boolean; subgroups?: boolean; tile?: TileOverrides } = {}): FlashSpecs {
  const code = attentionHeader(dims, tilePlan(ctx, dims, opts)) + source;
  const tier = dims.tier ?? 'f32';
  const spec = (label: string, constants: Record<string, number>): PipelineSpec => ({ label: `${label}_${tier}`, code, constants, tier });
  if (opts.sparse === false) return { dense: spec('attention_dense', { MODE: 0 }) };
  return {
    dense: spec('attention_dense', { MODE: 0 }),
    sparse: spec('attention_sparse', { MODE: 1 }),
    fallback: spec('attention_dense_fallback', { MODE: 0, FALLBACK: 1 }),
    fallbackArgs: { label: `sample_fallback_${tier}`, code: attentionHeader(dims, tilePlan(ctx, dims, opts)) + fallbackSource, tier },
  };
}

interface FlashBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  out: GPUBuffer;
  sel?: GPUBuffer;
  params: GPUBufferBinding;
}

/** The flash kernel for one layer shape: dense, the fused sparse pass and its dense fallback. */
export class FlashAttention {
  private constructor(
    private ctx: GpuContext,
    readonly plan: TilePlan,
    private pipes: { dense: GPUComputePipeline; sparse?: GPUComputePipeline; fallback?: GPUComputePipeline; fallbackArgs?: GPUComputePipeline },
    /** Bound at `sel` where a pass has none (the binding exists in every mode). */
    private dummySel: GPUBuffer,
  ) {}

  static async create(
    ctx: GpuContext,
    dims: AttentionDims,
    opts: { sparse?: boolean; subgroups?: boolean; tile?: TileOverrides } = {},
  ): Promise<FlashAttention> {
    const specs = flashSpecs(ctx, dims, opts);
    const [dense, sparse, fallback, fallbackArgs] = await Promise.all(
      [specs.dense, specs.sparse, specs.fallback, specs.fallbackArgs].map((s) => (s ? getPipeline(ctx, s) : undefined)),
    );
    return new FlashAttention(
      ctx,
      tilePlan(ctx, dims, opts),
      { dense: dense!, sparse, fallback, fallbackArgs },
      createBuffer(ctx, 16, STORAGE.rw, 'attention_unused_sel'),
    );
  }

  /**
   * Builds the fused sparse pass and its dense fallback of a kernel created with { sparse: false }
   * (PrefillAttention.enableSparse: a request asks for SampleAttention on an engine whose own options
   * never reach it).
   */
  async enableSparse(dims: AttentionDims, opts: { subgroups?: boolean; tile?: TileOverrides } = {}): Promise<void> {
    if (this.pipes.sparse) return;
    const specs = flashSpecs(this.ctx, dims, { ...opts, sparse: true });
    const [sparse, fallback, fallbackArgs] = await Promise.all(
      [specs.sparse, specs.fallback, specs.fallbackArgs].map((s) => (s ? getPipeline(this.ctx, s) : undefined)),
    );
    this.pipes = { ...this.pipes, sparse, fallback, fallbackArgs };
  }

  destroy(): void {
    releaseBuffer(this.ctx, this.dummySel);
  }

  /**
   * Records one pass over the chunk's `rows` rows: `units` KV groups (y of the dispatch) of
   * `group` query heads each (default: the layer's; per-head selection: nHeads units of 1).
   * 'sparse' needs `sel` (the selection's lists and flags).
   */
  encode(pass: GPUComputePassEncoder, mode: FlashMode, b: FlashBuffers, rows: number, units: number, group = this.plan.group): void {
    if (rows === 0) return;
    const pipe = this.pipes[mode]!;
    pass.setPipeline(pipe);
    pass.setBindGroup(0, this.bind(pipe, b, `attention_${mode}`));
    const tiles = Math.ceil((rows * group) / this.plan.qr);
    if (tiles > this.ctx.limits.maxComputeWorkgroupsPerDimension) {
      throw new GpuLimitError(
        `attention: ${rows} rows x ${group} heads per KV head need ${tiles} workgroups, over this GPU's ${this.ctx.limits.maxComputeWorkgroupsPerDimension}; prefill in smaller row chunks`,
        { rows, tiles },
      );
    }
    pass.dispatchWorkgroups(tiles, units);
  }

  /**
   * Dense fallback of the fused pass, after the selection wrote `sel`: one small kernel lists
   * the flagged units and writes `args` (3 u32, INDIRECT | STORAGE), then the dense kernel's
   * code (MODE 0, FALLBACK 1) runs those units through dispatchWorkgroupsIndirect (nothing when none
   * is flagged). Same params as the fused pass.
   */
  encodeFallback(pass: GPUComputePassEncoder, b: FlashBuffers & { sel: GPUBuffer }, args: GPUBuffer): void {
    const { fallback, fallbackArgs } = this.pipes;
    pass.setPipeline(fallbackArgs!);
    pass.setBindGroup(
      0,
      bindAt(
        this.ctx,
        fallbackArgs!,
        [
          [0, b.sel],
          [3, args],
          [6, b.params],
        ],
        'sample_fallback',
      ),
    );
    pass.dispatchWorkgroups(1);
    pass.setPipeline(fallback!);
    pass.setBindGroup(0, this.bind(fallback!, b, 'attention_dense_fallback'));
    pass.dispatchWorkgroupsIndirect(args, 0);
  }

  private bind(pipe: GPUComputePipeline, b: FlashBuffers, label: string): GPUBindGroup {
    return bindAt(
      this.ctx,
      pipe,
      [
        [0, b.q],
        [1, b.k],
        [2, b.v],
        [3, b.out],
        [5, b.sel ?? this.dummySel],
        [6, b.params],
      ],
      label,
    );
  }
}

/**
 * CPU reference: causal attention of `rows` query rows at positions
 * [pos, pos + rows) over keys [0, pos + rows). q, out: [rows, nHeads * headDim];
 * k, v: [nKvHeads, seqLen, headDim] (seqLen >= pos + rows). f64 accumulation.
 * `keep(h, i, j)` restricts the keys (default: all causal keys).
 */
export function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  d: { nHeads: number; nKvHeads: number; headDim: number; seqLen: number; rows: number; pos: number },
  keep?: (head: number, i: number, j: number) => boolean,
): Float32Array {
  const { nHeads, nKvHeads, headDim: D, seqLen, rows, pos } = d;
  const group = nHeads / nKvHeads;
  const out = new Float32Array(rows * nHeads * D);
  const scale = 1 / Math.sqrt(D);
  const s = new Float64Array(pos + rows);
  const acc = new Float64Array(D);
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / group);
    const kb = kvh * seqLen * D;
    for (let r = 0; r < rows; r++) {
      const i = pos + r;
      const qb = r * nHeads * D + h * D;
      let m = -Infinity;
      for (let j = 0; j <= i; j++) {
        if (keep && !keep(h, i, j)) {
          s[j] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let t = 0; t < D; t++) dot += q[qb + t] * k[kb + j * D + t];
        s[j] = dot * scale;
        if (s[j] > m) m = s[j];
      }
      acc.fill(0);
      let l = 0;
      for (let j = 0; j <= i; j++) {
        if (s[j] === -Infinity) continue;
        const pj = Math.exp(s[j] - m);
        l += pj;
        for (let t = 0; t < D; t++) acc[t] += pj * v[kb + j * D + t];
      }
      for (let t = 0; t < D; t++) out[qb + t] = l > 0 ? acc[t] / l : 0;
    }
  }
  return out;
}
