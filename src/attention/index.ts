/**
 * Prefill attention of one layer shape: dense causal flash attention, or
 * SampleAttention (../shared/SAMPLE_ATTENTION.md) once the sequence reaches
 * `minSparseLen`. Everything is recorded into the caller's encoder; selection
 * happens on the GPU, so nothing is read back inside encode().
 *
 * Sparse encode of a chunk (rows at positions [pos, pos + rows)):
 *   sampling  - lse and window mass of the sampled rows, then column scores
 *               c_h[j] of those rows outside their windows (kernels/sample_scores.wgsl;
 *               the 'tensor' tier: kernels/sample_scores_tensor.wgsl, same outputs)
 *   selection - per KV group (the group's heads' scores summed): threshold
 *               search for the smallest column set reaching alpha with the
 *               window mass, compaction into a sorted id list, stats; a group
 *               whose stripes + window reach `denseFallbackArea` of the causal
 *               area is flagged dense (it lists every column)
 *   sparse    - one flash pass per row over the selected columns j <= i - w
 *               (K/V gathered by id in the tile loads) and then the window
 *               (i - w, i], one online softmax, normalized output
 *               (kernels/attention_prefill.wgsl MODE 1); the flagged groups
 *               run the dense kernel's code through an indirect dispatch
 *               (kernels/sample_fallback.wgsl, FALLBACK 1). The 'tensor' tier
 *               (head dim 128, f16 cache) runs kernels/attention_tensor.wgsl's
 *               `sparse` entry instead: same inputs and output, flagged
 *               groups dense in the same dispatch.
 *
 * Selection rules (AttentionOptions.selection, default 'auto': 'topup' below
 * topupBelow, else 'group'): 'group' is the spec's GQA variant (one column set
 * shared by the group's query heads, so the sparse pass keeps the dense
 * kernel's K/V sharing); 'topup' adds each head's own top-up to the group's
 * set; 'head' selects per query head (the spec's default): selection, sparse
 * pass and fallback then run with "virtual" params (group 1, nKvHeads = nHeads
 * units, K/V of unit h from KV head h / kvDiv); stats per head, no column
 * report. For a chunk at pos > 0 the window is ceil(windowRatio * (pos + rows)),
 * the sampled rows come from the chunk and the stripes cover every earlier column.
 * Per-call uniforms live in a ring of PARAM_SLOTS slots: at most that many
 * encode() calls per submitted batch.
 *
 * Column report (HeadStats.columnBins, issue 8's heatmap): after
 * reportColumns(seqLen), each sparse encode also records a histogram of each
 * KV group's selected ids over COLUMN_BINS bins of [0, seqLen)
 * (kernels/sample_bins.wgsl, in the selection pass) into a slot beside its
 * stats; readStats() hands each head its group's bins. Off by default.
 *
 * Pipelines: attentionPipelineSpecs() lists every pipeline the prefill and
 * decode attention of one model shape can use; nothing here compiles per
 * request (lengths and positions are uniforms and dispatch sizes).
 */
import type { GpuContext } from '../gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, readBuffer } from '../gpu/buffers.ts';
import { getPipeline, type PipelineSpec } from '../gpu/pipelines.ts';
import type { GpuTimer } from '../gpu/timing.ts';
import { InvalidOptionError, GpuLimitError } from '../errors.ts';
import { COLUMN_BINS, type AttentionOptions, type HeadStats, type KvDtype, type LayerKv } from '../engine/types.ts';
import {
  FlashAttention,
  flashSpecs,
  PARAMS_BYTES,
  paramsWords,
  type AttentionDims,
  type AttentionParams,
  type TileOverrides,
  type TilePlan,
} from '../../kernels/attention_prefill.ts';
import type { KernelTier } from '../gpu/tier.ts';
import { BIN_ARGS_BYTES, SampleKernels, sampleSpecs } from '../../kernels/sample_attention.ts';
import {
  TensorAttention,
  TensorSparseAttention,
  tensorAttentionFits,
  tensorAttentionParams,
  tensorAttentionSpec,
  tensorSparseSpec,
} from '../../kernels/attention_tensor.ts';
import type { ScoreOptions } from '../../kernels/sample_scores.ts';
import { TensorSampleScores, tensorScoreSpecs } from '../../kernels/sample_scores_tensor.ts';
import { decodeSpecs, type DecodeKernelOptions } from '../../kernels/attention_decode.ts';
import { chunkAreas, fallbackStripeArea, selectionRule, sparsePlan, validateAttentionOptions, type SparsePlan } from './options.ts';

export { resolveAttentionOptions, sparsePlan } from './options.ts';

/** What decides the attention pipelines of an engine: the model's attention shape, the KV dtype, the kernels asked for. */
export interface AttentionPipelineConfig {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  /** Kernel tier of the f32 / f16 attention kernels (src/gpu/tier.ts; default 'f32'): q and the output are its `act`. */
  tier?: KernelTier;
  /**
   * Prefill attention. Default ({} or absent): dense and every SampleAttention pipeline
   * (sampling, the 'group' / 'topup' / 'head' selection kernels, sparse pass, dense fallback,
   * column report): AttentionOptions may change per prefill request (dense or sample, any
   * selection rule), so all of them are compiled at load. { sparse: false }: the dense
   * prefill only (PrefillAttention created with { sparse: false }). false: none (an engine
   * without the flash prefill, EngineOptions.prefillKernel 'split').
   */
  prefill?: false | { sparse?: boolean };
  /** Decode attention kernel options (kernels/attention_decode.ts DecodeAttentionShape's variant and qg). */
  decode?: DecodeKernelOptions;
  /** The 'tensor' kernel tier: the dense prefill and the sparse pass on kernels/attention_tensor.wgsl where the shape fits (PrefillAttention.create's tensor). */
  tensor?: boolean;
}

/**
 * Every pipeline the attention of one engine configuration can use: the prefill's (unless
 * cfg.prefill is false) and the decode attention's. Compile them at load (getPipeline each);
 * PrefillAttention.create and DecodeAttention.create then find them all in the cache, and no
 * prefill length, position or option creates another.
 */
export function attentionPipelineSpecs(ctx: GpuContext, cfg: AttentionPipelineConfig): PipelineSpec[] {
  const dims: AttentionDims = { nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads, headDim: cfg.headDim, kvDtype: cfg.kvDtype, capacity: 1, tier: cfg.tier };
  const out: PipelineSpec[] = [];
  if (cfg.prefill !== false) out.push(...prefillPipelineSpecs(ctx, dims, { ...(cfg.prefill ?? {}), tensor: cfg.tensor }));
  out.push(...decodeSpecs(cfg, cfg.decode));
  return out;
}

/** The pipelines PrefillAttention.create(ctx, dims, opts) builds. */
export function prefillPipelineSpecs(
  ctx: GpuContext,
  dims: AttentionDims,
  opts: { sparse?: boolean; subgroups?: boolean; tile?: TileOverrides; scores?: ScoreOptions; tensor?: boolean } = {},
): PipelineSpec[] {
  const f = flashSpecs(ctx, dims, opts);
  const flash = [f.dense, f.sparse, f.fallback, f.fallbackArgs].filter((x): x is PipelineSpec => x !== undefined);
  if (opts.tensor && tensorAttentionFits(dims)) {
    flash.push(tensorAttentionSpec(dims.nHeads, dims.nKvHeads));
    if (opts.sparse !== false) {
      const sc = tensorScoreSpecs();
      flash.push(tensorSparseSpec(), sc.rows, sc.cols);
    }
  }
  return opts.sparse === false ? flash : [...flash, ...sampleSpecs(ctx, dims, opts)];
}

export interface PrefillDims {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  capacity: number;
  maxRows: number;
  /** Kernel tier (src/gpu/tier.ts; default 'f32'): q and out hold its activation type. */
  tier?: KernelTier;
}

export interface EncodeArgs {
  q: GPUBuffer;
  kv: LayerKv;
  out: GPUBuffer;
  pos: number;
  rows: number;
  layer: number;
}

/** Uniform slots (256 bytes apart) handed out round-robin: one per encode between submits. */
const PARAM_SLOTS = 512;
const SLOT_BYTES = 256;
/** Sparse encodes whose stats one stats buffer holds. */
const STATS_SLOTS = 64;
/** Query heads per KV head that selection 'topup' supports (kernels/sample_select.wgsl MAXG). */
const MAX_TOPUP_GROUP = 64;
/** Stats kept without a readStats() call: STATS_SLOTS * MAX_STATS_BUFFERS sparse encodes. */
const MAX_STATS_BUFFERS = 64;

interface StatsRecord {
  layer: number;
  pos: number;
  rows: number;
  plan: SparsePlan;
  buffer: GPUBuffer;
  offsetWords: number;
  /** Column histogram slot, (nKvHeads, COLUMN_BINS) u32, when the report was on. */
  bins?: { buffer: GPUBuffer; offsetWords: number };
  /** Per-head selection: stats are (nHeads, 4) instead of (nKvHeads, 3 + group). */
  perHead: boolean;
}

export class PrefillAttention {
  private slot = 0;
  private scratch?: { rowStats: GPUBuffer; colScores: GPUBuffer; groupScores: GPUBuffer; sel: GPUBuffer; taus: GPUBuffer; fbArgs: GPUBuffer };
  /** Selection units of the last sparse encode (nKvHeads, or nHeads per head). */
  private lastUnits = 0;
  private statsBuffers: GPUBuffer[] = [];
  /** Column histograms, parallel to statsBuffers (allocated when first reported). */
  private binsBuffers: GPUBuffer[] = [];
  /** Uniform ring of the histogram pass (same slots as `params`). */
  private binArgs?: GPUBuffer;
  /** Key length the column bins span; 0: no column report. */
  private columnLen = 0;
  private records: StatsRecord[] = [];
  private statsUsed = 0;
  private readonly statsWords: number;

  private constructor(
    private ctx: GpuContext,
    readonly dims: PrefillDims,
    private flash: FlashAttention,
    private sample: SampleKernels | undefined,
    private params: GPUBuffer,
    private makeSample: () => Promise<SampleKernels>,
    /** The tensor tier's dense prefill (create's tensor, where the shape fits); the flash kernel's dense mode otherwise. */
    private tensorDense?: TensorAttention,
    /** The tensor tier's fused sparse pass (with tensorDense, once the sparse kernels are built); the flash kernel's sparse mode + fallback otherwise. */
    private tensorSparse?: TensorSparseAttention,
    /** The tensor tier's sampling phase (with tensorSparse); kernels/sample_scores.wgsl otherwise. */
    private tensorScores?: TensorSampleScores,
  ) {
    // (nKvHeads, 3 + group) per KV group or (nHeads, 4) per head, see sample_select.wgsl
    this.statsWords = Math.max(3 * dims.nKvHeads + dims.nHeads, 4 * dims.nHeads);
  }

  /**
   * `opts.sparse: false` builds the dense pipeline only (encode then rejects
   * sparse options); `opts.subgroups: false` forces the subgroup-free kernels;
   * `opts.tile` forces tile sizes of the flash passes and `opts.scores` those of
   * the sampling kernels (tests). `opts.tensor` (the 'tensor' kernel tier; the device must
   * support it) runs the dense prefill and (with sparse) the sparse pass on
   * kernels/attention_tensor.wgsl where the shape fits (head dim 128 over an f16 cache,
   * tensorAttentionFits). The pipelines are
   * prefillPipelineSpecs(ctx, dims, opts).
   */
  static async create(
    ctx: GpuContext,
    dims: PrefillDims,
    opts: { subgroups?: boolean; sparse?: boolean; tile?: TileOverrides; scores?: ScoreOptions; tensor?: boolean } = {},
  ): Promise<PrefillAttention> {
    const { nHeads, nKvHeads, headDim, capacity, maxRows } = dims;
    const check = (name: string, ok: boolean, why: string) => {
      if (!ok) throw new InvalidOptionError(name, why, { ...dims });
    };
    check('nKvHeads', Number.isInteger(nKvHeads) && nKvHeads >= 1, `must be a positive integer, got ${nKvHeads}`);
    check('nHeads', Number.isInteger(nHeads) && nHeads % nKvHeads === 0, `${nHeads} must be a multiple of nKvHeads (${nKvHeads})`);
    check(
      'headDim',
      Number.isInteger(headDim) && headDim >= 1 && headDim <= 256 && (dims.kvDtype === 'f32' || headDim % 2 === 0),
      `must be an integer in [1, 256] (even for an f16 cache), got ${headDim}`,
    );
    check('maxRows', Number.isInteger(maxRows) && maxRows >= 1 && maxRows <= capacity, `must be in [1, capacity=${capacity}], got ${maxRows}`);
    const ad: AttentionDims = { nHeads, nKvHeads, headDim, kvDtype: dims.kvDtype, capacity, tier: dims.tier };
    const sparse = opts.sparse ?? true;
    const [flash, sample] = await Promise.all([
      FlashAttention.create(ctx, ad, opts),
      sparse ? SampleKernels.create(ctx, ad, opts) : Promise.resolve(undefined),
    ]);
    const sampleOpts = { subgroups: opts.subgroups, scores: opts.scores, tile: opts.tile };
    const tiles = Math.ceil((maxRows * flash.plan.group) / flash.plan.qr);
    if (tiles > ctx.limits.maxComputeWorkgroupsPerDimension) {
      flash.destroy();
      sample?.destroy();
      throw new GpuLimitError(
        `attention: maxRows ${maxRows} x ${flash.plan.group} query heads per KV head need ${tiles} workgroups per dispatch, over this GPU's ${ctx.limits.maxComputeWorkgroupsPerDimension}; use a smaller prefill chunk`,
        { maxRows, tiles },
      );
    }
    let tensorDense: TensorAttention | undefined;
    let tensorSparse: TensorSparseAttention | undefined;
    let tensorScores: TensorSampleScores | undefined;
    const tensor = !!opts.tensor && tensorAttentionFits(ad);
    const tensorSparseSpecs = () => {
      const sc = tensorScoreSpecs();
      return [tensorSparseSpec(), sc.rows, sc.cols];
    };
    if (tensor) {
      try {
        await Promise.all([tensorAttentionSpec(nHeads, nKvHeads), ...(sparse ? tensorSparseSpecs() : [])].map((spec) => getPipeline(ctx, spec)));
        tensorDense = new TensorAttention(ctx, nHeads, nKvHeads);
        if (sparse) {
          tensorSparse = new TensorSparseAttention(ctx);
          tensorScores = new TensorSampleScores(ctx, nHeads, nKvHeads);
        }
        if (Math.ceil((maxRows * (nHeads / nKvHeads)) / 64) > ctx.limits.maxComputeWorkgroupsPerDimension) {
          throw new GpuLimitError(
            `attention: maxRows ${maxRows} is over what the tensor attention dispatches in one pass on this GPU; use a smaller prefill chunk`,
            {
              maxRows,
            },
          );
        }
      } catch (e) {
        flash.destroy();
        sample?.destroy();
        throw e;
      }
    }
    const params = createBuffer(ctx, PARAM_SLOTS * SLOT_BYTES, STORAGE.uniform, 'attention_params');
    const makeSample = async () => {
      const [kernels] = await Promise.all([
        SampleKernels.create(ctx, ad, sampleOpts),
        flash.enableSparse(ad, sampleOpts),
        ...(tensor ? tensorSparseSpecs().map((spec) => getPipeline(ctx, spec)) : []),
      ]);
      return kernels;
    };
    return new PrefillAttention(ctx, dims, flash, sample, params, makeSample, tensorDense, tensorSparse, tensorScores);
  }

  /** Whether the SampleAttention kernels are built (created with sparse, or enabled since). */
  get hasSparse(): boolean {
    return this.sample !== undefined;
  }

  /**
   * Builds the SampleAttention kernels of a PrefillAttention created with { sparse: false }
   * (an engine whose own options never reach the sparse path, when a request asks for it):
   * those pipelines are then compiled on that request, once.
   */
  async enableSparse(): Promise<void> {
    this.sample ??= await this.makeSample();
    if (this.tensorDense) {
      this.tensorSparse ??= new TensorSparseAttention(this.ctx);
      this.tensorScores ??= new TensorSampleScores(this.ctx, this.dims.nHeads, this.dims.nKvHeads);
    }
  }

  /** Whether the dense prefill runs the tensor kernel (kernels/attention_tensor.wgsl). */
  get usesTensor(): boolean {
    return this.tensorDense !== undefined;
  }

  /** Whether the sparse pass runs the tensor kernel (kernels/attention_tensor.wgsl `sparse`; built with the sparse kernels). */
  get usesTensorSparse(): boolean {
    return this.tensorSparse !== undefined;
  }

  /** Whether the sampling phase runs the tensor kernels (kernels/sample_scores_tensor.wgsl; built with the sparse kernels). */
  get usesTensorSampling(): boolean {
    return this.tensorScores !== undefined;
  }

  /** Tile sizes of the flash passes (benchmarks record them). */
  get tilePlan(): TilePlan {
    return this.flash.plan;
  }

  /**
   * Turns the column report on for the following sparse encodes (bins over key
   * positions [0, seqLen): pass the prefill's final length so every chunk bins
   * alike), or off with 0 / undefined.
   */
  reportColumns(seqLen: number | undefined): void {
    if (seqLen !== undefined && seqLen !== 0 && (!Number.isInteger(seqLen) || seqLen < 1)) {
      throw new InvalidOptionError('reportColumns', `seqLen must be a positive integer, got ${seqLen}`);
    }
    this.columnLen = seqLen ?? 0;
  }

  /** True when `encode` with these arguments takes the sparse path. */
  static isSparse(pos: number, rows: number, opts: AttentionOptions): boolean {
    return opts.attention === 'sample' && pos + rows >= opts.minSparseLen;
  }

  encode(encoder: GPUCommandEncoder, args: EncodeArgs, opts: AttentionOptions, timer?: GpuTimer): void {
    const { pos, rows } = args;
    const d = this.dims;
    if (!Number.isInteger(rows) || rows < 1 || rows > d.maxRows) throw new InvalidOptionError('rows', `must be in [1, maxRows=${d.maxRows}], got ${rows}`);
    if (!Number.isInteger(pos) || pos < 0 || pos + rows > d.capacity) {
      throw new InvalidOptionError('pos', `pos ${pos} + rows ${rows} exceeds the KV capacity ${d.capacity}`);
    }
    validateAttentionOptions(opts);
    const sparse = PrefillAttention.isSparse(pos, rows, opts);
    if (sparse && !this.sample)
      throw new InvalidOptionError(
        'attention',
        "this PrefillAttention was created with { sparse: false }: call enableSparse() first, or use attention: 'dense'",
      );
    const plan = sparse ? sparsePlan(pos, rows, opts) : undefined;
    const statsAt = sparse ? this.statsSlot() : undefined;
    // Per-head units: per-head selection.
    const group = d.nHeads / d.nKvHeads;
    const rule = sparse ? selectionRule(opts, pos + rows, group, MAX_TOPUP_GROUP) : undefined;
    const perHead = rule === 'head';
    const units = perHead ? d.nHeads : d.nKvHeads;
    const p: AttentionParams = {
      rows,
      pos,
      nHeads: d.nHeads,
      nKvHeads: d.nKvHeads,
      capacity: d.capacity,
      window: plan?.window ?? 0,
      nSamp: plan?.nSamp ?? 0,
      sampBlock: plan?.sampBlock ?? 1,
      nBlocks: plan?.nBlocks ?? 1,
      nCols: plan?.nCols ?? 0,
      statsOffset: statsAt?.offsetWords ?? 0,
      scale: Math.LOG2E / Math.sqrt(d.headDim),
      alpha: opts.alpha,
      fallbackSel: plan ? fallbackStripeArea(pos, rows, plan.window, opts) : undefined,
    };
    const offset = (this.slot++ % PARAM_SLOTS) * SLOT_BYTES;
    this.ctx.device.queue.writeBuffer(this.params, offset, paramsWords(p));
    const params: GPUBufferBinding = { buffer: this.params, offset, size: PARAMS_BYTES };
    const bufs = { q: args.q, k: args.kv.k, v: args.kv.v, out: args.out, params };
    const pass = (label: string) => encoder.beginComputePass(timer ? timer.pass(label) : { label });

    if (!sparse && this.tensorDense) {
      // The tensor kernel's own 32-byte Params in this encode's slot (the flash params are not needed).
      this.ctx.device.queue.writeBuffer(this.params, offset, tensorAttentionParams(rows, pos, d.nHeads, d.capacity));
      const ps = pass('attention.dense');
      this.tensorDense.encode(ps, { q: args.q, k: args.kv.k, v: args.kv.v, out: args.out, params: { buffer: this.params, offset, size: 32 } }, rows);
      ps.end();
      return;
    }
    if (!sparse) {
      const ps = pass('attention.dense');
      this.flash.encode(ps, 'dense', bufs, rows, units);
      ps.end();
      return;
    }
    // Selection, sparse pass and fallback: per-head units (group 1) or the KV groups.
    const topup = rule === 'topup';
    if (topup && group > MAX_TOPUP_GROUP)
      throw new InvalidOptionError(
        'selection',
        `'topup' supports up to ${MAX_TOPUP_GROUP} query heads per KV head, this model has ${group}; use 'group' or 'head'`,
      );
    let headParams: GPUBufferBinding | undefined;
    if (perHead || topup) {
      const vOffset = (this.slot++ % PARAM_SLOTS) * SLOT_BYTES;
      this.ctx.device.queue.writeBuffer(this.params, vOffset, paramsWords({ ...p, nKvHeads: d.nHeads, kvDiv: group }));
      headParams = { buffer: this.params, offset: vOffset, size: PARAMS_BYTES };
    }
    const sparams = perHead ? headParams! : params;
    const s = this.ensureScratch();
    const bins = this.columnLen > 0 && !perHead ? this.binsSlot(statsAt!, offset, Math.max(this.columnLen, pos + rows)) : undefined;
    this.records.push({ layer: args.layer, pos, rows, plan: plan!, buffer: statsAt!.buffer, offsetWords: statsAt!.offsetWords, bins, perHead });
    this.lastUnits = units;

    let ps = pass('attention.sampling');
    const sb0 = { q: args.q, k: args.kv.k, rowStats: s.rowStats, colScores: s.colScores, groupScores: s.groupScores, params };
    // The tensor tier: the same outputs from f16 subgroup-matrix tiles (kernels/sample_scores_tensor.wgsl).
    if (this.tensorScores) this.tensorScores.encode(ps, sb0, plan!.nSamp, plan!.nCols);
    else this.sample!.encodeSampling(ps, sb0, plan!.nSamp, plan!.nCols);
    ps.end();
    ps = pass('attention.selection');
    this.sample!.encodeSelect(
      ps,
      { rowStats: s.rowStats, colScores: s.colScores, groupScores: s.groupScores, sel: s.sel, stats: statsAt!.buffer, taus: s.taus, params: sparams },
      rule!,
      headParams,
    );
    if (bins) this.sample!.encodeBins(ps, { sel: s.sel, bins: bins.buffer, args: { buffer: this.binArgs!, offset, size: BIN_ARGS_BYTES } });
    ps.end();
    ps = pass('attention.sparse');
    const sb = { ...bufs, params: sparams, sel: s.sel };
    if (this.tensorSparse) {
      // The tensor tier: one dispatch, flagged units included (they run their causal range in it).
      this.tensorSparse.encode(ps, sb, rows, units, perHead ? 1 : group);
    } else {
      // Flagged units return at once in the sparse pass; the fallback runs them with the dense code.
      this.flash.encode(ps, 'sparse', sb, rows, units, perHead ? 1 : undefined);
      this.flash.encodeFallback(ps, sb, s.fbArgs);
    }
    ps.end();
  }

  /** Per-head stats of every sparse encode since the last call (call after the work was submitted). */
  async readStats(): Promise<HeadStats[]> {
    const records = this.records;
    this.records = [];
    this.statsUsed = 0;
    const d = this.dims;
    const group = d.nHeads / d.nKvHeads;
    const cache = new Map<GPUBuffer, Float32Array>();
    const binCache = new Map<GPUBuffer, Uint32Array>();
    const out: HeadStats[] = [];
    for (const r of records) {
      let words = cache.get(r.buffer);
      if (!words) cache.set(r.buffer, (words = new Float32Array(await readBuffer(this.ctx, r.buffer))));
      let binWords: Uint32Array | undefined;
      if (r.bins) {
        binWords = binCache.get(r.bins.buffer);
        if (!binWords) binCache.set(r.bins.buffer, (binWords = new Uint32Array(await readBuffer(this.ctx, r.bins.buffer))));
      }
      const areas = chunkAreas(r.pos, r.rows, r.plan.window);
      if (r.perHead) {
        for (let h = 0; h < d.nHeads; h++) {
          const base = r.offsetWords + h * 4;
          const dense = words[base + 2] !== 0;
          out.push({
            layer: r.layer,
            head: h,
            selected: Math.round(words[base]),
            window: r.plan.window,
            areaFraction: dense ? 1 : Math.min(1, (words[base + 1] + areas.window) / areas.causal),
            cra: dense ? 1 : Math.min(1, words[base + 3]),
          });
        }
        continue;
      }
      for (let kvh = 0; kvh < d.nKvHeads; kvh++) {
        const base = r.offsetWords + kvh * (3 + group);
        const selected = Math.round(words[base]);
        const areaSel = words[base + 1];
        // Flagged dense by the selection: every column selected, area and CRA 1.
        const dense = words[base + 2] !== 0;
        const at = r.bins ? r.bins.offsetWords + kvh * COLUMN_BINS : 0;
        const columnBins = binWords ? Uint16Array.from(binWords.subarray(at, at + COLUMN_BINS)) : undefined;
        for (let g = 0; g < group; g++) {
          out.push({
            layer: r.layer,
            head: kvh * group + g,
            selected,
            window: r.plan.window,
            areaFraction: dense ? 1 : Math.min(1, (areaSel + areas.window) / areas.causal),
            cra: dense ? 1 : Math.min(1, words[base + 3 + g]),
            ...(columnBins ? { columnBins: columnBins.slice() } : {}),
          });
        }
      }
    }
    return out;
  }

  /**
   * Test/debug access: the sorted selected column ids of each KV group (each head
   * with selection 'head') from the most recent sparse encode (valid after its work is done).
   */
  async readSelection(): Promise<number[][]> {
    if (!this.scratch) return [];
    const stride = this.dims.capacity + 1;
    const all = new Uint32Array(await readBuffer(this.ctx, this.scratch.sel));
    const res: number[][] = [];
    for (let kvh = 0; kvh < this.lastUnits; kvh++) {
      const n = all[kvh * stride];
      res.push(Array.from(all.subarray(kvh * stride + 1, kvh * stride + 1 + n)));
    }
    return res;
  }

  destroy(): void {
    this.flash.destroy();
    this.sample?.destroy();
    releaseBuffer(this.ctx, this.params);
    if (this.scratch) for (const b of Object.values(this.scratch)) releaseBuffer(this.ctx, b);
    for (const b of this.statsBuffers) releaseBuffer(this.ctx, b);
    for (const b of this.binsBuffers) releaseBuffer(this.ctx, b);
    releaseBuffer(this.ctx, this.binArgs);
    this.scratch = undefined;
    this.statsBuffers = [];
    this.binsBuffers = [];
    this.binArgs = undefined;
    this.records = [];
  }

  /** Scratch of the sparse path, allocated on first use (dense-only users never pay for it). */
  private ensureScratch() {
    if (this.scratch) return this.scratch;
    const { nHeads, nKvHeads, capacity, maxRows } = this.dims;
    const need = nHeads * capacity * 4;
    if (need > this.ctx.limits.maxStorageBufferBindingSize) {
      throw new GpuLimitError(
        `SampleAttention column scores need ${need} bytes (nHeads ${nHeads} x capacity ${capacity} f32), over maxStorageBufferBindingSize ${this.ctx.limits.maxStorageBufferBindingSize}`,
      );
    }
    const mk = (bytes: number, label: string) => createBuffer(this.ctx, bytes, STORAGE.rw, label);
    this.scratch = {
      rowStats: mk(maxRows * nHeads * 8, 'attention_row_stats'), // (nHeads, nSamp, 2)
      colScores: mk(nHeads * capacity * 4, 'attention_col_scores'), // (nHeads, capacity)
      groupScores: mk(nKvHeads * capacity * 4, 'attention_group_scores'), // (nKvHeads, capacity)
      // (units, 1 + capacity) u32 lists, (units) u32 dense flags, (units) u32 flagged ids; units <= nHeads (per-head selection)
      sel: mk(Math.max(nHeads, nKvHeads) * (capacity + 3) * 4, 'attention_sel'),
      taus: mk(nHeads * 2 * 4, 'attention_select_taus'),
      // dispatchWorkgroupsIndirect arguments of the dense fallback (kernels/sample_fallback.wgsl)
      fbArgs: createBuffer(this.ctx, 16, GPUBufferUsage.INDIRECT | STORAGE.rw, 'attention_fallback_args'),
    };
    return this.scratch;
  }

  private statsSlot(): { buffer: GPUBuffer; offsetWords: number } {
    if (this.statsUsed >= STATS_SLOTS * MAX_STATS_BUFFERS) {
      // Nobody read the stats for a long time: drop the oldest records instead of growing.
      this.statsUsed = 0;
      this.records = [];
    }
    const i = this.statsUsed++;
    const bi = Math.floor(i / STATS_SLOTS);
    while (this.statsBuffers.length <= bi) {
      this.statsBuffers.push(createBuffer(this.ctx, STATS_SLOTS * this.statsWords * 4, STORAGE.rw, 'attention_stats'));
    }
    return { buffer: this.statsBuffers[bi], offsetWords: (i % STATS_SLOTS) * this.statsWords };
  }

  /**
   * The histogram slot beside a stats slot (same index), its uniform written
   * into the bin-args ring at the encode's params offset.
   */
  private binsSlot(statsAt: { buffer: GPUBuffer; offsetWords: number }, paramsOffset: number, binLen: number): { buffer: GPUBuffer; offsetWords: number } {
    const nKv = this.dims.nKvHeads;
    const bi = this.statsBuffers.indexOf(statsAt.buffer);
    while (this.binsBuffers.length <= bi) {
      this.binsBuffers.push(createBuffer(this.ctx, STATS_SLOTS * nKv * COLUMN_BINS * 4, STORAGE.rw, 'attention_column_bins')); // (STATS_SLOTS, nKvHeads, COLUMN_BINS) u32
    }
    this.binArgs ??= createBuffer(this.ctx, PARAM_SLOTS * SLOT_BYTES, STORAGE.uniform, 'attention_bin_args');
    const offsetWords = (statsAt.offsetWords / this.statsWords) * nKv * COLUMN_BINS;
    this.ctx.device.queue.writeBuffer(this.binArgs, paramsOffset, new Uint32Array([offsetWords, binLen, this.dims.capacity + 1, 0]));
    return { buffer: this.binsBuffers[bi], offsetWords };
  }
}
