/**
 * The dense engine: a model on the GPU with its KV cache. prefill(ids) runs
 * the prompt in row chunks (activation memory bounded by the chunk size);
 * decodeStep(id) appends one token. Each chunk / step is one command buffer;
 * kernels, pipelines and bind groups are built at creation (per row count),
 * so the decode loop allocates nothing.
 */
import type { GpuContext } from '../gpu/device.ts';
import type { GpuTimer, TimingResult } from '../gpu/timing.ts';
import { assertAlive } from '../gpu/device.ts';
import { createBuffer, readF32, releaseBuffer, STORAGE, writeBuffer } from '../gpu/buffers.ts';
import { AbortedError, ContextOverflowError, InvalidOptionError } from '../errors.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { GpuWeight } from '../loader/formats.ts';
import { normSpecs, RmsNorm } from '../../kernels/norm.ts';
import { Embedding, embeddingSpecs } from '../../kernels/embedding.ts';
import { RopeKv, ropeSpecs, ropeTable } from '../../kernels/rope.ts';
import { DecodeAttention } from '../../kernels/attention_decode.ts';
import { ArgmaxKernels, argmaxSpecs, type TopK } from '../../kernels/argmax.ts';
import { GpuSampler, GREEDY, samplerSpecs } from '../../kernels/sample.ts';
import { Rng } from '../util/rng.ts';
import { StepUniform } from '../../kernels/prepared.ts';
import { LinearKernels, linearPipelineSpecs, type LinearOptions, type LinearUse } from '../../kernels/linear.ts';
import { precompile, type CompileProgress, type PipelineSpec } from '../gpu/pipelines.ts';
import { resolveKernelTier, type KernelsOption, type KernelTier } from '../gpu/tier.ts';
import { attentionPipelineSpecs, PrefillAttention, resolveAttentionOptions } from '../attention/index.ts';
import { DEFAULT_ATTENTION, DEFAULT_DECODE_VARIANT, DEFAULT_KERNELS, DEFAULT_KV_DTYPE, defaultContextLength, defaultPrefillChunk } from '../defaults.ts';
import {
  type AttentionOptions,
  type DecodeOptions,
  type Dispatch,
  type Engine,
  type TokenChoice,
  type KvDtype,
  type PrefillOptions,
  type PrefillResult,
  type SparsityReport,
} from './types.ts';
import { KvCache } from './kv-cache.ts';
import { activationBytes, allocActivations, ForwardPlan, type Activations, type Kernels } from './forward.ts';
import { releaseWeight } from './weights.ts';

export interface EngineOptions {
  spec: ModelSpec;
  /** Canonical name -> GpuWeight (models/spec.ts). The engine releases them in destroy() unless ownsWeights is false. */
  weights: Map<string, GpuWeight>;
  /** KV cache capacity in positions (default min(spec.contextLength, 4096); every default: src/defaults.ts). */
  contextLength?: number;
  /** KV cache element type (default f16). */
  kvDtype?: KvDtype;
  /** Rows per prefill chunk (default up to 4096, bounded by the context and the adapter's binding limit). */
  prefillChunk?: number;
  /** Defaults for every prefill (DEFAULT_ATTENTION otherwise). */
  attention?: Partial<AttentionOptions>;
  /**
   * Prefill attention kernel: 'flash' (src/attention: dense flash or
   * SampleAttention) or 'split' (the split-K cache kernel, dense only; tests).
   */
  prefillKernel?: 'flash' | 'split';
  linear?: LinearOptions;
  /** Decode attention kernel (kernels/attention_decode): 'tiled' where headDim fits (default) or 'simple'. */
  decodeAttention?: 'tiled' | 'simple';
  /** Most cache splits of the decode attention per head (1..128, default 128; tuning). */
  decodeSplits?: number;
  /** Query heads per decode-attention workgroup (DecodeAttentionShape.qg; default min(group, 16, 2048 / headDim); tuning). */
  decodeQg?: number;
  /**
   * Decode step layout (forward.ts): 'plain' (separate RMSNorm, RoPE and
   * residual-add passes) or 'fused' (default: norms, residual adds, RoPE and
   * the KV write in the projections' epilogues; 6 dispatches per layer instead
   * of 9). 'fused' falls back to 'plain' where the device allows fewer than 11
   * storage buffers per stage.
   * Default from the SIEVE_DECODE environment variable where there is one
   * (tests, benchmarks).
   */
  decodeVariant?: DecodeVariant;
  ownsWeights?: boolean;
  /**
   * Kernel tier (src/gpu/tier.ts): 'auto' (default: the fastest the device supports), or a tier
   * forced for comparison ('f32', 'f16', 'tensor'; a KernelTierError when the device lacks it).
   * 'tensor': prefill linear layers of TENSOR_MIN_ROWS rows or more, the dense prefill
   * attention and SampleAttention's sparse pass (head dim 128, f16 KV cache) on the tensor
   * cores; the rest as 'f32'.
   */
  kernels?: KernelsOption;
  /** Pipeline compilation progress (createEngine compiles every pipeline the engine can use before it returns). */
  onCompile?: (p: CompileProgress) => void;
}

/** A weight as the pipeline lists need it (before or after upload). */
export interface WeightInfo {
  format: GpuWeight['format'];
  groupSize: number;
  shape: number[];
  parts?: number;
}

/**
 * Whether the engine's own attention options can reach SampleAttention (attention 'sample' and a
 * context of at least minSparseLen). Only then are its pipelines compiled at load; a request that
 * lowers minSparseLen or asks for 'sample' on such an engine builds them on that request, once
 * (PrefillAttention.enableSparse). Saves compiling ~20 pipelines for short-context engines.
 */
export function engineCanSparse(attention: AttentionOptions, contextLength: number): boolean {
  return attention.attention === 'sample' && contextLength >= attention.minSparseLen;
}

/**
 * Every pipeline the engine can use with these options (src/gpu/pipelines.ts precompile): the linear
 * kernels of each projection for prefill rows (1 .. prefillChunk) and the decode plan's fusions, and
 * the attention's (src/attention attentionPipelineSpecs: dense and every SampleAttention pipeline,
 * decode), and the small kernels' (norm, embedding, rope, argmax and top-k, sampling).
 */
export function enginePipelineSpecs(
  ctx: GpuContext,
  spec: ModelSpec,
  weights: Map<string, WeightInfo>,
  o: {
    prefillChunk: number;
    kvDtype: KvDtype;
    linear?: LinearOptions;
    decodeVariant?: DecodeVariant;
    prefillKernel?: EngineOptions['prefillKernel'];
    decodeAttention?: EngineOptions['decodeAttention'];
    decodeQg?: number;
    /** SampleAttention's pipelines too (engineCanSparse; default true). */
    sparse?: boolean;
    /** The resolved kernel tier (default 'f32'). */
    tier?: KernelTier;
  },
): PipelineSpec[] {
  const tensor = o.tier === 'tensor';
  const tier = kernelTier(o.tier);
  const fused =
    (o.decodeVariant ?? envDecodeVariant() ?? 'fused') !== 'plain' &&
    Math.min(8, o.linear?.gemvMaxRows ?? 8) >= 1 &&
    ctx.limits.maxStorageBuffersPerShaderStage >= FUSED_STORAGE_BUFFERS;
  const uses: LinearUse[] = [];
  const add = (name: string, u: Omit<LinearUse, 'format' | 'groupSize' | 'shape'>) => {
    const w = weights.get(name);
    if (w) uses.push({ format: w.format, groupSize: w.groupSize, shape: w.shape, maxRows: o.prefillChunk, ...u });
  };
  const kvF16 = o.kvDtype === 'f16';
  const ropeFits = spec.headDim % 4 === 0 && spec.rope.rotaryDim % 4 === 0;
  for (let l = 0; l < spec.nLayers; l++) {
    const p = `layers.${l}.`;
    const bias = spec.qkvBias;
    add(p + 'wqkv', { rows: 'both', bias });
    add(p + 'wo', { rows: 'both' });
    add(p + 'wGateUp', { rows: 'both', gateUp: true });
    add(p + 'wDown', { rows: 'both' });
    if (!fused) continue;
    const fuseRope = ropeFits && (weights.get(p + 'wqkv')?.parts ?? 1) === 1;
    add(p + 'wqkv', { rows: 'decode', bias, kvF16, epilogue: fuseRope ? (l === 0 ? 'rope' : 'normInRope') : l === 0 ? 'store' : 'normIn' });
    add(p + 'wo', { rows: 'decode', epilogue: 'residual' });
    add(p + 'wGateUp', { rows: 'decode', gateUp: true, epilogue: 'normIn' });
    add(p + 'wDown', { rows: 'decode', epilogue: 'residual' });
  }
  add('lmHead', { rows: 'both', anyRowOffset: true, yF32: true });
  if (fused) add('lmHead', { rows: 'decode', epilogue: 'normIn', yF32: true });
  const attention = attentionPipelineSpecs(ctx, {
    nHeads: spec.nHeads,
    nKvHeads: spec.nKvHeads,
    headDim: spec.headDim,
    kvDtype: o.kvDtype,
    tier,
    prefill: (o.prefillKernel ?? 'flash') === 'flash' ? { sparse: o.sparse ?? true } : false,
    decode: { variant: o.decodeAttention, qg: o.decodeQg },
    tensor,
  });
  const embed = weights.get('embed');
  const small = [
    ...normSpecs(spec.dim, tier),
    ...embeddingSpecs(embed ? [embed.format] : []),
    ...ropeSpecs({ kvDtype: o.kvDtype, rope: spec.rope, tier }),
    ...argmaxSpecs(spec.vocabSize),
    ...samplerSpecs(),
  ];
  return [...linearPipelineSpecs(ctx, uses, { ...o.linear, tensor }, tier), ...attention, ...small];
}

/** The tier of the non-tensor kernels: 'f16' in the f16 tier, else 'f32' (the tensor tier's other kernels run as f32). */
export function kernelTier(tier: KernelTier | undefined): 'f32' | 'f16' {
  return tier === 'f16' ? 'f16' : 'f32';
}

/** Checks that the options allow the resolved `tier` (resolveKernelTier has checked the device). */
export function checkTier(tier: KernelTier, kvDtype: KvDtype): void {
  if (tier === 'f16' && kvDtype !== 'f16') {
    throw new InvalidOptionError('kvDtype', `kernel tier 'f16' keeps an f16 KV cache (got kvDtype '${kvDtype}'); use kernels 'f32' for an f32 cache`);
  }
}

export type DecodeVariant = 'plain' | 'fused';
export const DECODE_VARIANTS: readonly DecodeVariant[] = ['plain', 'fused'];

/** SIEVE_DECODE from the environment (Node), else undefined. */
function envDecodeVariant(): DecodeVariant | undefined {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.SIEVE_DECODE;
  return v ? (v as DecodeVariant) : undefined;
}

/** Storage buffers per stage the fused decode kernels bind (the QKV + RoPE + KV one). */
const FUSED_STORAGE_BUFFERS = 11;

/** Rows of all-position logits held on the GPU at once (bounds the [rows, vocab] buffer). */
const ALL_LOGITS_BYTES = 64 << 20;
/** Greedy decode steps submitted ahead of the read-back of the oldest (Engine.decode). */
const DECODE_AHEAD = 3;

interface RunExtras {
  allLogitsRead?: GPUBuffer;
  argmax?: 'read' | 'ids';
  tokens?: { buf: GPUBuffer; offset: number };
  timer?: GpuTimer;
}

/** Row counts whose prepared plans are kept besides the full chunk and decode. */
const SPARE_PLANS = 4;

export async function createEngine(ctx: GpuContext, opts: EngineOptions): Promise<DenseEngine> {
  const { spec } = opts;
  // First: a forced tier the device lacks fails before anything is allocated.
  const tier = resolveKernelTier(ctx, opts.kernels ?? DEFAULT_KERNELS);
  const tensor = tier === 'tensor';
  const contextLength = opts.contextLength ?? defaultContextLength(spec);
  const kvDtype = opts.kvDtype ?? DEFAULT_KV_DTYPE;
  const prefillChunk = Math.min(opts.prefillChunk ?? defaultPrefillChunk(spec, contextLength, ctx.limits.maxStorageBufferBindingSize), contextLength);
  const kernelKind = opts.prefillKernel ?? 'flash';
  if (!(Number.isInteger(contextLength) && contextLength >= 1))
    throw new InvalidOptionError('contextLength', `must be a positive integer, got ${contextLength}`);
  if (!(Number.isInteger(prefillChunk) && prefillChunk >= 1))
    throw new InvalidOptionError('prefillChunk', `must be a positive integer, got ${opts.prefillChunk}`);
  if (kvDtype !== 'f32' && kvDtype !== 'f16') throw new InvalidOptionError('kvDtype', `must be 'f32' or 'f16', got ${kvDtype}`);
  checkTier(tier, kvDtype);
  const kt = kernelTier(tier);
  const attention = resolveAttentionOptions(opts.attention ?? {}, DEFAULT_ATTENTION);
  const decodeVariant = opts.decodeVariant ?? envDecodeVariant() ?? DEFAULT_DECODE_VARIANT;
  if (!DECODE_VARIANTS.includes(decodeVariant))
    throw new InvalidOptionError('decodeVariant', `must be one of ${DECODE_VARIANTS.join(', ')}, got ${decodeVariant}`);
  const shape = { nHeads: spec.nHeads, nKvHeads: spec.nKvHeads, headDim: spec.headDim, kvDtype, capacity: contextLength, tier: kt };

  const owned: { destroy(): void }[] = [];
  try {
    const cache = new KvCache(ctx, { nLayers: spec.nLayers, nKvHeads: spec.nKvHeads, headDim: spec.headDim, capacity: contextLength, dtype: kvDtype });
    owned.push(cache);
    const weightInfo = new Map([...opts.weights].map(([n, w]) => [n, { format: w.format, groupSize: w.groupSize, shape: w.shape, parts: w.parts.length }]));
    const sparse = engineCanSparse(attention, contextLength);
    const specs = enginePipelineSpecs(ctx, spec, weightInfo, {
      prefillChunk,
      kvDtype,
      linear: opts.linear,
      decodeVariant,
      prefillKernel: kernelKind,
      decodeAttention: opts.decodeAttention,
      decodeQg: opts.decodeQg,
      sparse,
      tier,
    });
    const [, norm, embed, rope, linear, split, prefill, argmax] = await Promise.all([
      precompile(ctx, specs, opts.onCompile),
      RmsNorm.create(ctx, kt),
      Embedding.create(ctx),
      RopeKv.create(ctx, { ...shape, rope: spec.rope }),
      LinearKernels.create(ctx, { ...opts.linear, tensor }, kt),
      DecodeAttention.create(ctx, {
        ...shape,
        maxRows: kernelKind === 'split' ? prefillChunk : 1,
        variant: opts.decodeAttention,
        qg: opts.decodeQg,
        maxSplits: opts.decodeSplits,
      }),
      kernelKind === 'flash' ? PrefillAttention.create(ctx, { ...shape, maxRows: prefillChunk }, { sparse, tensor }) : Promise.resolve(undefined),
      ArgmaxKernels.create(ctx),
    ]);
    owned.push(linear, split, ...(prefill ? [prefill] : []));
    // The q4 / q8 prefill dequantization scratch (LinearOptions.prefillDequantMinRows), allocated by the
    // first prefill plan of prefillDequantMinRows rows or more, sized for the largest layer matrix.
    linear.reserveDequantScratch(
      [...opts.weights]
        .filter(([name, w]) => name.startsWith('layers.') && w.shape.length === 2 && (w.format === 'q4' || w.format === 'q8'))
        .map(([, w]) => w.shape),
    );
    const kernels: Kernels = { norm, embed, rope, linear, splitAttention: split, prefillAttention: prefill };
    const act = allocActivations(ctx, spec, prefillChunk, kt);
    owned.push({
      destroy: () => {
        for (const b of Object.values(act)) releaseBuffer(ctx, b);
      },
    });
    // The sampler of Engine.decode (sampled choices), built now so that no request compiles it.
    const sampler = GpuSampler.create(ctx, act.logits, spec.vocabSize, contextLength);
    owned.push(sampler);
    const fused = decodeVariant !== 'plain' && linear.fusesDecode && ctx.limits.maxStorageBuffersPerShaderStage >= FUSED_STORAGE_BUFFERS;
    return new DenseEngine(ctx, opts, { contextLength, prefillChunk, attention, cache, kernels, act, argmax, sampler, fusedDecode: fused, tier });
  } catch (e) {
    for (const o of owned.reverse()) o.destroy();
    throw e;
  }
}

interface Parts {
  contextLength: number;
  prefillChunk: number;
  attention: AttentionOptions;
  cache: KvCache;
  kernels: Kernels;
  act: Activations;
  argmax: ArgmaxKernels;
  sampler: GpuSampler;
  fusedDecode: boolean;
  tier: KernelTier;
}

export class DenseEngine implements Engine {
  readonly spec: ModelSpec;
  readonly contextLength: number;
  loadTimes?: { readMs: number; uploadMs: number; compileMs: number; totalMs: number };
  readonly prefillChunk: number;
  readonly kernelTier: KernelTier;
  readonly cache: KvCache;
  private readonly attention: AttentionOptions;
  private readonly kernels: Kernels;
  private readonly act: Activations;
  private readonly step: StepUniform;
  private readonly plans = new Map<string, ForwardPlan>();
  /** Whether decode steps run the fused plan (EngineOptions.decodeVariant, where the device allows). */
  readonly fusedDecode: boolean;
  private readonly argmaxDispatch: Dispatch;
  /** Argmax of the logits into act.ids[0]: the next step's input, kept on the GPU (greedy decode). */
  private readonly argmaxToIds: Dispatch;
  /** argmaxRead holds the argmax of the current logits (decodeStep recorded it with its pass). */
  private argmaxFresh = false;
  /** Submits through run(); a recorded step is valid while this is unchanged. */
  private serial = 0;
  /** The next decode step, recorded ahead by decodeStep (its id is written at submit). */
  private next?: { pos: number; serial: number; cmd: GPUCommandBuffer };
  private readonly argmaxOut: GPUBuffer;
  private readonly argmaxRead: GPUBuffer;
  private readonly argmaxKernels: ArgmaxKernels;
  private readonly sampler: GpuSampler;
  private readonly topKs = new Map<number, TopK>();
  private readonly idWords: Uint32Array;
  private readonly table: Float32Array;
  private allLogitsBuf?: GPUBuffer;
  private destroyed = false;

  constructor(
    readonly ctx: GpuContext,
    private opts: EngineOptions,
    p: Parts,
  ) {
    this.spec = opts.spec;
    this.contextLength = p.contextLength;
    this.prefillChunk = p.prefillChunk;
    this.kernelTier = p.tier;
    this.attention = p.attention;
    this.cache = p.cache;
    this.kernels = p.kernels;
    this.act = p.act;
    this.argmaxKernels = p.argmax;
    this.sampler = p.sampler;
    this.fusedDecode = p.fusedDecode;
    this.step = new StepUniform(ctx, 'engine_step');
    this.argmaxOut = createBuffer(ctx, 4, STORAGE.rw, 'argmax_out');
    this.argmaxRead = createBuffer(ctx, 4, STORAGE.readback, 'argmax_read');
    this.argmaxDispatch = p.argmax.prepareArgmax(this.act.logits, this.spec.vocabSize, this.argmaxOut);
    this.argmaxToIds = p.argmax.prepareArgmax(this.act.logits, this.spec.vocabSize, this.act.ids);
    this.idWords = new Uint32Array(this.prefillChunk);
    this.table = new Float32Array(this.prefillChunk * this.spec.rope.rotaryDim);
    // The two plans every session uses, built now: a full chunk and one decode row.
    try {
      this.plan(1, false);
      if (this.prefillChunk > 1) this.plan(this.prefillChunk, false);
    } catch (e) {
      // createEngine releases the kernels, cache and activations; this releases the rest.
      for (const p of this.plans.values()) p.destroy();
      this.argmaxDispatch.destroy();
      this.argmaxToIds.destroy();
      releaseBuffer(ctx, this.argmaxOut);
      releaseBuffer(ctx, this.argmaxRead);
      this.step.destroy();
      throw e;
    }
  }

  get kvLength(): number {
    return this.cache.length;
  }
  get logits(): GPUBuffer {
    return this.act.logits;
  }

  /** Dispatches of one decode step at the current length (the one-row plan, argmax included). */
  get decodeDispatches(): number {
    // (counting writes nothing: a step recorded ahead keeps its uniforms)
    const pos = Math.min(this.cache.length, this.contextLength - 1);
    let argmax = 0;
    const count = {
      setPipeline() {},
      setBindGroup() {},
      dispatchWorkgroups() {
        argmax++;
      },
    } as unknown as GPUComputePassEncoder;
    this.argmaxToIds.encode(count);
    return this.plan(1, false).dispatchCount(pos, this.attention) + argmax;
  }

  /** Bytes the engine allocated itself (KV cache, activations, scratch), weights excluded; dequantScratch: the q4 / q8 prefill scratch. */
  get stateBytes(): { kvCache: number; activations: number; dequantScratch: number } {
    return { kvCache: this.cache.bytes, activations: activationBytes(this.act), dequantScratch: this.kernels.linear.dequantScratchBytes };
  }

  async prefill(ids: number[], opts: PrefillOptions = {}): Promise<PrefillResult> {
    const t0 = performance.now();
    this.checkIds(ids, 'ids');
    if (ids.length === 0) throw new InvalidOptionError('ids', 'prefill needs at least one token');
    const start = this.cache.length;
    if (start + ids.length > this.contextLength) throw new ContextOverflowError(start + ids.length, this.contextLength, { cached: start, added: ids.length });
    this.argmaxFresh = false;
    const attention = resolveAttentionOptions(opts.attention ?? {}, this.attention);
    const seqEnd = start + ids.length;
    this.kernels.prefillAttention?.reportColumns(opts.reportColumns ? seqEnd : undefined);
    const allLogits = opts.allLogits ? new Float32Array(ids.length * this.spec.vocabSize) : undefined;
    const chunk = allLogits ? Math.max(1, Math.min(this.prefillChunk, Math.floor(ALL_LOGITS_BYTES / (this.spec.vocabSize * 4)))) : this.prefillChunk;
    let sparse = false;
    const pa = this.kernels.prefillAttention;
    if (pa && !pa.hasSparse && ids.length > 1 && PrefillAttention.isSparse(start, ids.length, attention)) await pa.enableSparse();
    try {
      for (let i = 0; i < ids.length; i += chunk) {
        if (opts.signal?.aborted) throw new AbortedError('prefill was aborted', { done: i, total: ids.length });
        const rows = Math.min(chunk, ids.length - i);
        const pos = this.cache.length;
        const staging = allLogits ? createBuffer(this.ctx, rows * this.spec.vocabSize * 4, STORAGE.readback, 'all_logits_read') : undefined;
        try {
          sparse ||= rows > 1 && !!this.kernels.prefillAttention && PrefillAttention.isSparse(pos, rows, attention);
          this.run(ids.slice(i, i + rows), pos, seqEnd, attention, { allLogitsRead: allLogits ? staging : undefined });
          this.cache.length = pos + rows;
          if (staging && allLogits) {
            await staging.mapAsync(GPUMapMode.READ);
            allLogits.set(new Float32Array(staging.getMappedRange()), i * this.spec.vocabSize);
            staging.unmap();
          }
        } finally {
          releaseBuffer(this.ctx, staging);
        }
      }
      await this.ctx.device.queue.onSubmittedWorkDone();
    } catch (e) {
      this.cache.length = start;
      throw e;
    }
    const ms = performance.now() - t0;
    let sparsity: SparsityReport | undefined;
    if (this.kernels.prefillAttention && attention.attention === 'sample') {
      const heads = sparse ? await this.kernels.prefillAttention.readStats() : [];
      sparsity = {
        mode: sparse ? 'sample' : 'dense',
        seqLen: seqEnd,
        heads,
        meanAreaFraction: heads.length ? heads.reduce((s, h) => s + h.areaFraction, 0) / heads.length : 1,
      };
    }
    return { logits: allLogits, sparsity, ms };
  }

  async decodeStep(id: number): Promise<void> {
    this.checkIds([id], 'id');
    const pos = this.cache.length;
    if (pos + 1 > this.contextLength) throw new ContextOverflowError(pos + 1, this.contextLength);
    // The argmax rides in the same command buffer (one submit per token; argmax() then only maps).
    this.argmaxFresh = false;
    const pre = this.next;
    this.next = undefined;
    if (pre && pre.pos === pos && pre.serial === this.serial && !this.destroyed) {
      assertAlive(this.ctx);
      this.idWords[0] = id;
      writeBuffer(this.ctx, this.act.ids, 0, this.idWords.subarray(0, 1));
      this.ctx.device.queue.submit([pre.cmd]);
      this.serial++;
    } else {
      this.run([id], pos, pos + 1, this.attention, { argmax: 'read' });
    }
    this.cache.length = pos + 1;
    this.argmaxFresh = true;
    // Record the next step now, while the GPU runs this one: only its id is unknown,
    // and that reaches the GPU through act.ids at submit.
    if (pos + 2 <= this.contextLength) {
      try {
        this.next = { pos: pos + 1, serial: this.serial, cmd: this.record(null, pos + 1, pos + 2, this.attention, { argmax: 'read' }) };
      } catch {
        this.next = undefined;
      }
    }
  }

  /**
   * The decode loop (Engine.decode): the token choice and the decode steps of
   * every caller, the generation API and the benchmarks alike. Greedy without
   * a repetition penalty runs on the GPU end to end: each step's argmax stays
   * in act.ids as the next step's input and is copied to a small read-back
   * buffer, and up to DECODE_AHEAD steps are submitted before the first of
   * them is read (one submit per token, no round trip between steps). Steps
   * recorded past the consumer's stop are dropped from the cache (truncate).
   * Sampled choices (and greedy with a penalty) run the GPU sampler
   * (kernels/sample.wgsl) on each step's logits.
   */
  async *decode(o: DecodeOptions): AsyncGenerator<number, void, void> {
    const maxTokens = o.maxTokens;
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new InvalidOptionError('maxTokens', `must be a positive integer, got ${maxTokens}`);
    const choice = o.choice ?? GREEDY;
    const stop = new Set(o.stopIds ?? []);
    const start = this.cache.length;
    if (start < 1) throw new InvalidOptionError('engine', 'decode needs logits: prefill at least one token first');
    // Tokens the loop may yield: maxTokens, and the cache holds all but the last.
    const total = Math.min(maxTokens, this.contextLength - start + 1);
    if (choice.greedy && choice.repetitionPenalty === 1) yield* this.decodeGreedy(total, stop, o.signal);
    else yield* this.decodeSampled(total, stop, choice, o);
  }

  /** decode() for sampled choices: one GPU sampler pass per token, then the decode step. */
  private async *decodeSampled(total: number, stop: Set<number>, choice: TokenChoice, o: DecodeOptions): AsyncGenerator<number, void, void> {
    const rng = new Rng(o.seed ?? 0);
    this.sampler.setHistory(o.history ?? []);
    for (let k = 0; k < total; k++) {
      if (o.signal?.aborted) throw new AbortedError('generation was aborted', { done: k, total });
      const id = await this.sampler.sample(choice, rng.next());
      yield id;
      if (stop.has(id) || k + 1 === total) return;
      this.sampler.pushHistory(id);
      const before = this.cache.length;
      try {
        await this.decodeStep(id);
      } catch (e) {
        // decodeStep failed: its position may be half-written; keep the cache to what is known good.
        this.next = undefined;
        if (!this.ctx.isLost) this.cache.length = before;
        throw e;
      }
    }
  }

  /** decode() for greedy choices: ids chosen and fed back on the GPU, read back DECODE_AHEAD steps behind. */
  private async *decodeGreedy(total: number, stop: Set<number>, signal?: AbortSignal): AsyncGenerator<number, void, void> {
    const first = await this.argmax();
    yield first;
    if (stop.has(first) || total === 1) return;
    const start = this.cache.length;
    // Step j (j = 0 .. total - 2) appends the id chosen before it at start + j and chooses the next.
    const steps = total - 1;
    const slots = Array.from({ length: DECODE_AHEAD }, (_, i) => createBuffer(this.ctx, 4, STORAGE.readback, `decode_read_${i}`));
    const pending: Promise<void>[] = [];
    let submitted = 0;
    let yielded = 1;
    const submit = () => {
      const j = submitted;
      if (j === 0) {
        this.idWords[0] = first;
        writeBuffer(this.ctx, this.act.ids, 0, this.idWords.subarray(0, 1));
      }
      this.run(null, start + j, start + j + 1, this.attention, { argmax: 'ids', tokens: { buf: slots[j % DECODE_AHEAD], offset: 0 } });
      this.cache.length = start + j + 1;
      pending[j % DECODE_AHEAD] = slots[j % DECODE_AHEAD].mapAsync(GPUMapMode.READ);
      submitted++;
    };
    this.argmaxFresh = false;
    try {
      for (let j = 0; j < steps; j++) {
        while (submitted < steps && submitted < j + DECODE_AHEAD) {
          if (signal?.aborted) throw new AbortedError('generation was aborted', { done: j, total: steps });
          submit();
        }
        const slot = slots[j % DECODE_AHEAD];
        await pending[j % DECODE_AHEAD];
        const id = new Uint32Array(slot.getMappedRange(0, 4).slice(0))[0];
        slot.unmap();
        yielded++;
        // The cache must hold every yielded id but the last (the consumer may stop here).
        const keep = this.cache.length;
        this.cache.length = start + j + 1;
        yield id;
        this.cache.length = keep;
        if (stop.has(id)) return;
      }
    } finally {
      // Whatever ended the loop (the last token, a stop id, the consumer, an error): steps recorded past
      // the last yielded id leave the cache, and no read-back stays mapped or pending.
      await Promise.allSettled(pending);
      for (const b of slots) {
        if (b.mapState === 'mapped') b.unmap();
        releaseBuffer(this.ctx, b);
      }
      if (!this.ctx.isLost && !this.destroyed) this.cache.length = start + yielded - 1;
    }
  }

  /**
   * Profiling: runs one forward pass of `ids` at the current position with
   * every op in its own timed pass (labels: embed, attn_norm, qkv, rope,
   * attention*, wo, ffn_norm, gate_up, down, final_norm, lm_head, argmax) and
   * returns the per-pass times. Advances the cache like prefill/decodeStep.
   */
  async profileForward(ids: number[], timer: GpuTimer): Promise<TimingResult> {
    this.checkIds(ids, 'ids');
    const pos = this.cache.length;
    if (ids.length < 1 || ids.length > this.prefillChunk)
      throw new InvalidOptionError('ids', `profileForward takes 1..${this.prefillChunk} ids, got ${ids.length}`);
    if (pos + ids.length > this.contextLength) throw new ContextOverflowError(pos + ids.length, this.contextLength);
    this.argmaxFresh = false;
    await this.ctx.device.queue.onSubmittedWorkDone();
    timer.begin();
    this.run(ids, pos, pos + ids.length, this.attention, { argmax: ids.length === 1 ? 'read' : undefined, timer });
    this.cache.length = pos + ids.length;
    return timer.read();
  }

  truncate(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.cache.length)) {
      throw new InvalidOptionError('n', `truncate needs an integer in [0, ${this.cache.length}], got ${n}`);
    }
    this.cache.truncate(n);
  }

  async argmax(): Promise<number> {
    assertAlive(this.ctx);
    if (this.argmaxFresh) {
      this.argmaxFresh = false;
      await this.argmaxRead.mapAsync(GPUMapMode.READ);
      const id = new Uint32Array(this.argmaxRead.getMappedRange())[0];
      this.argmaxRead.unmap();
      return id;
    }
    const enc = this.ctx.device.createCommandEncoder({ label: 'argmax' });
    const pass = enc.beginComputePass({ label: 'argmax' });
    this.argmaxDispatch.encode(pass);
    pass.end();
    enc.copyBufferToBuffer(this.argmaxOut, 0, this.argmaxRead, 0, 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await this.argmaxRead.mapAsync(GPUMapMode.READ);
    const id = new Uint32Array(this.argmaxRead.getMappedRange())[0];
    this.argmaxRead.unmap();
    return id;
  }

  /** The k most likely ids of `logits` and their logits, best first (computed on the GPU). */
  async topK(k: number): Promise<{ ids: Uint32Array; values: Float32Array }> {
    let t = this.topKs.get(k);
    if (!t) this.topKs.set(k, (t = await this.argmaxKernels.prepareTopK(this.act.logits, this.spec.vocabSize, k)));
    const enc = this.ctx.device.createCommandEncoder({ label: 'topk' });
    const pass = enc.beginComputePass({ label: 'topk' });
    t.encode(pass);
    pass.end();
    this.ctx.device.queue.submit([enc.finish()]);
    return t.read();
  }

  async readLogits(): Promise<Float32Array> {
    return readF32(this.ctx, this.act.logits, this.spec.vocabSize);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.next = undefined;
    for (const p of this.plans.values()) p.destroy();
    this.plans.clear();
    for (const t of this.topKs.values()) t.destroy();
    this.topKs.clear();
    this.sampler.destroy();
    this.argmaxDispatch.destroy();
    this.argmaxToIds.destroy();
    releaseBuffer(this.ctx, this.argmaxOut);
    releaseBuffer(this.ctx, this.argmaxRead);
    releaseBuffer(this.ctx, this.allLogitsBuf);
    this.step.destroy();
    this.kernels.linear.destroy();
    this.kernels.splitAttention.destroy();
    this.kernels.prefillAttention?.destroy();
    for (const b of Object.values(this.act)) releaseBuffer(this.ctx, b);
    this.cache.destroy();
    if (this.opts.ownsWeights !== false) for (const w of this.opts.weights.values()) releaseWeight(this.ctx, w);
  }

  /**
   * Writes the per-step inputs, records one forward pass of ids at pos and
   * submits it. ids null: one row whose id is already in act.ids[0] (the
   * previous step's argmax). o.argmax: record the argmax after the LM head,
   * into argmaxRead ('read') or act.ids[0] ('ids', copied to o.tokens).
   */
  private run(ids: number[] | null, pos: number, seqEnd: number, attention: AttentionOptions, o: RunExtras = {}): void {
    const cmd = this.record(ids, pos, seqEnd, attention, o);
    this.ctx.device.queue.submit([cmd]);
    this.serial++;
  }

  /**
   * run() without the submit: writes the per-step buffers (all but the ids
   * when ids is null) and returns the recorded command buffer. Valid to
   * submit while no other run() came in between (serial unchanged).
   */
  private record(ids: number[] | null, pos: number, seqEnd: number, attention: AttentionOptions, o: RunExtras = {}): GPUCommandBuffer {
    assertAlive(this.ctx);
    if (this.destroyed) throw new InvalidOptionError('engine', 'the engine was destroyed');
    const allLogitsRead = o.allLogitsRead;
    const rows = ids ? ids.length : 1;
    const plan = this.plan(rows, !!allLogitsRead);
    if (ids) {
      const words = this.idWords.subarray(0, rows);
      words.set(ids);
      writeBuffer(this.ctx, this.act.ids, 0, words);
    }
    const table = ropeTable(this.spec.rope, pos, rows, seqEnd, this.table.subarray(0, rows * this.spec.rope.rotaryDim));
    writeBuffer(this.ctx, this.act.ropeTable, 0, table);
    this.step.set(pos, rows);
    if (rows === 1 || !this.kernels.prefillAttention) this.kernels.splitAttention.setStep(pos, rows);
    const enc = this.ctx.device.createCommandEncoder({ label: `forward_${rows}` });
    const argmax = o.argmax === 'ids' ? this.argmaxToIds : this.argmaxDispatch;
    // The argmax rides in the forward pass (one compute pass per step), in its own when timed.
    plan.encode(enc, pos, attention, o.timer, !!o.timer, o.argmax && !o.timer ? (pass) => argmax.encode(pass) : undefined);
    if (o.argmax) {
      if (o.timer) {
        const pass = enc.beginComputePass(o.timer.pass('argmax'));
        argmax.encode(pass);
        pass.end();
      }
      if (o.argmax === 'read') enc.copyBufferToBuffer(this.argmaxOut, 0, this.argmaxRead, 0, 4);
      if (o.tokens) enc.copyBufferToBuffer(this.act.ids, 0, o.tokens.buf, o.tokens.offset, 4);
    }
    o.timer?.resolve(enc);
    if (allLogitsRead) {
      const rowBytes = this.spec.vocabSize * 4;
      enc.copyBufferToBuffer(this.allLogitsBuf!, 0, allLogitsRead, 0, rows * rowBytes);
      enc.copyBufferToBuffer(this.allLogitsBuf!, (rows - 1) * rowBytes, this.act.logits, 0, rowBytes);
    }
    return enc.finish();
  }

  private plan(rows: number, allLogits: boolean): ForwardPlan {
    const flash = rows > 1 && !!this.kernels.prefillAttention;
    const key = `${rows}:${allLogits ? 'all' : 'last'}`;
    let p = this.plans.get(key);
    if (p) {
      // Most recently used last.
      this.plans.delete(key);
      this.plans.set(key, p);
      return p;
    }
    if (allLogits && !this.allLogitsBuf) {
      const maxRows = Math.max(1, Math.min(this.prefillChunk, Math.floor(ALL_LOGITS_BYTES / (this.spec.vocabSize * 4))));
      this.allLogitsBuf = createBuffer(this.ctx, maxRows * this.spec.vocabSize * 4, STORAGE.rw, 'all_logits');
    }
    p = new ForwardPlan({
      spec: this.spec,
      weights: this.opts.weights,
      kernels: this.kernels,
      act: this.act,
      cache: this.cache,
      step: this.step.buffer,
      rows,
      flash,
      allLogits: allLogits ? this.allLogitsBuf : undefined,
      fused: this.fusedDecode && rows === 1 && !allLogits,
      tier: kernelTier(this.kernelTier),
    });
    this.plans.set(key, p);
    const permanent = new Set([`1:last`, `${this.prefillChunk}:last`]);
    const spare = [...this.plans.keys()].filter((k) => !permanent.has(k));
    if (spare.length > SPARE_PLANS) {
      const victim = spare[0];
      this.plans.get(victim)!.destroy();
      this.plans.delete(victim);
    }
    return p;
  }

  private checkIds(ids: number[], what: string): void {
    const v = this.spec.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < v))
        throw new InvalidOptionError(what, `token id ${id} at index ${i} is outside [0, ${v})`, { index: i, id });
    }
  }
}
