/**
 * One forward pass over `rows` token positions, prepared once per row count
 * (and kept): every dispatch with its bind groups and uniforms, replayed into
 * one command encoder per chunk or decode step. Per-step values (position,
 * token ids, RoPE table) reach the kernels through buffers the engine rewrites
 * with queue.writeBuffer before each submit; nothing is read back in here.
 *
 * A layer (x is the residual stream, (rows, dim)):
 *   h   = rmsnorm(x += tmp, attnNorm)        (layer 0: rmsnorm(x); the add belongs to the previous layer)
 *   qkv = h Wqkv^T + bqkv                    (rows, (nHeads + 2 nKvHeads) headDim)
 *   q, cache[pos..pos+rows) = rope(qkv)
 *   att = attention(q, cache)                (rows, nHeads headDim)
 *   tmp = att Wo^T
 *   h   = rmsnorm(x += tmp, ffnNorm)
 *   ff  = silu(h Wg^T) * (h Wu^T)            (rows, ffnDim)
 *   tmp = ff Wdown^T
 * then h = rmsnorm(x += tmp, finalNorm) and logits = h[last] lmHead^T (or every row).
 *
 * Fused decode (PlanArgs.fused, one row; kernels/linear.ts GemvNormIn /
 * GemvResidual / GemvRope): the residual adds and RMSNorms ride in the
 * projections' epilogues and RoPE + the KV write in the QKV projection's, so
 * a layer is 6 dispatches instead of 9:
 *   q, cache[pos] = rope(rmsnorm(x) Wqkv^T + bqkv)   (h = x * attnNorm and ss from the previous down / layer 0's rmsnorm)
 *   att = attention(q, cache)                         (split + merge)
 *   x += att Wo^T;  h = x * ffnNorm;  ss = partial sums of x^2
 *   ff  = silu(rmsnorm(x) Wg^T) * (rmsnorm(x) Wu^T)
 *   x += ff Wdown^T;  h = x * nextNorm;  ss = ...      (nextNorm: the next attnNorm or finalNorm)
 * then logits = rmsnorm(x) lmHead^T.
 */
import type { GpuContext } from '../gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../gpu/buffers.ts';
import type { GpuTimer } from '../gpu/timing.ts';
import type { KernelTier } from '../gpu/tier.ts';
import { actBytes } from '../gpu/wgsl-header.ts';
import { ConfigError } from '../errors.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { GpuWeight } from '../loader/formats.ts';
import type { AttentionOptions, Dispatch } from './types.ts';
import type { KvCache } from './kv-cache.ts';
import type { RmsNorm } from '../../kernels/norm.ts';
import type { Embedding } from '../../kernels/embedding.ts';
import type { RopeKv } from '../../kernels/rope.ts';
import type { DecodeAttention } from '../../kernels/attention_decode.ts';
import type { LinearKernels } from '../../kernels/linear.ts';
import type { PrefillAttention } from '../attention/index.ts';

export interface Kernels {
  norm: RmsNorm;
  embed: Embedding;
  rope: RopeKv;
  linear: LinearKernels;
  /** Split-K attention over the cache: decode, and prefill when no PrefillAttention. */
  splitAttention: DecodeAttention;
  prefillAttention?: PrefillAttention;
}

/**
 * Activation buffers, sized for maxRows and shared by every plan. Element types: `act` is the
 * kernel tier's activation type (src/gpu/wgsl-header.ts: f32, or f16 in tier 'f16'); the
 * residual stream x, the logits and the partial sums stay f32 in every tier.
 */
export interface Activations {
  ids: GPUBuffer; // (maxRows) u32
  ropeTable: GPUBuffer; // (maxRows, rotaryDim / 2) vec2 f32
  x: GPUBuffer; // (maxRows, dim) f32 residual stream
  h: GPUBuffer; // (maxRows, dim) act, normed
  qkv: GPUBuffer; // (maxRows, (nHeads + 2 nKvHeads) headDim) act
  q: GPUBuffer; // (maxRows, nHeads headDim) act, roped
  att: GPUBuffer; // (maxRows, nHeads headDim) act
  tmp: GPUBuffer; // (maxRows, dim) act, projection outputs
  ff: GPUBuffer; // (maxRows, ffnDim) act
  logits: GPUBuffer; // (vocabSize) f32, last row
  ss: GPUBuffer; // (dim) f32 partial sums of squares of x (fused decode; at most one per output pair)
}

/** `tier`: the non-tensor kernels' tier (its act sizes h, qkv, q, att, tmp, ff). */
export function allocActivations(ctx: GpuContext, spec: ModelSpec, maxRows: number, tier: KernelTier = 'f32'): Activations {
  const { dim, nHeads, nKvHeads, headDim, ffnDim, vocabSize } = spec;
  const ab = actBytes(tier);
  // (whole 16-byte units: f16 buffers of odd lengths stay valid storage bindings and vec4 reads)
  const up = (bytes: number) => Math.ceil(bytes / 16) * 16;
  const sizes: Record<keyof Activations, number> = {
    ids: maxRows * 4,
    ropeTable: maxRows * spec.rope.rotaryDim * 4,
    x: maxRows * dim * 4,
    h: up(maxRows * dim * ab),
    qkv: up(maxRows * (nHeads + 2 * nKvHeads) * headDim * ab),
    q: up(maxRows * nHeads * headDim * ab),
    att: up(maxRows * nHeads * headDim * ab),
    tmp: up(maxRows * dim * ab),
    ff: up(maxRows * ffnDim * ab),
    logits: vocabSize * 4,
    ss: dim * 4,
  };
  const out: Partial<Activations> = {};
  try {
    for (const k of Object.keys(sizes) as (keyof Activations)[]) out[k] = createBuffer(ctx, sizes[k], STORAGE.rw, `act.${k}`);
  } catch (e) {
    for (const b of Object.values(out)) releaseBuffer(ctx, b);
    throw e;
  }
  return out as Activations;
}

export function activationBytes(a: Activations): number {
  return Object.values(a).reduce((s, b) => s + b.size, 0);
}

interface LayerPlan {
  /** Absent where fused into the projections (fused decode). */
  attnNorm?: Dispatch;
  qkv: Dispatch;
  rope?: Dispatch;
  /** Split-K attention (decode / prefill without PrefillAttention). */
  attn?: Dispatch;
  wo: Dispatch;
  ffnNorm?: Dispatch;
  gateUp: Dispatch;
  down: Dispatch;
}

export interface PlanArgs {
  spec: ModelSpec;
  weights: Map<string, GpuWeight>;
  kernels: Kernels;
  act: Activations;
  cache: KvCache;
  step: GPUBuffer;
  rows: number;
  /** Use PrefillAttention (rows > 1 and available) instead of the split-K kernel. */
  flash: boolean;
  /** (rows, vocabSize) f32: compute the LM head for every row into it. */
  allLogits?: GPUBuffer;
  /** Fused decode (rows = 1, the matrix-vector kernel; see the file comment). */
  fused?: boolean;
  /** The non-tensor kernels' tier ('f32' or 'f16'; default 'f32'): bytes per element of h (the LM head's row offset). */
  tier?: KernelTier;
}

export function weightOf(weights: Map<string, GpuWeight>, name: string): GpuWeight {
  const w = weights.get(name);
  if (!w) throw new ConfigError(`weight '${name}' is missing from the loaded weights`, { tensor: name });
  return w;
}

/** A forward pass over `rows` positions, prepared. */
export class ForwardPlan {
  readonly rows: number;
  private embed!: Dispatch;
  private layers: LayerPlan[] = [];
  private finalNorm?: Dispatch;
  private lmHead!: Dispatch;
  private all: Dispatch[] = [];

  constructor(private a: PlanArgs) {
    const { spec, weights: W, kernels: K, act, rows } = a;
    const w = (n: string) => weightOf(W, n);
    const vec = (n: string) => w(n).parts[0].data;
    const track = <T extends Dispatch>(d: T): T => {
      this.all.push(d);
      return d;
    };
    this.rows = rows;
    try {
      this.embed = track(K.embed.prepare({ ids: act.ids, table: w('embed'), out: act.x, rows }));
      if (a.fused) {
        this.buildFused(track);
        return;
      }
      for (let l = 0; l < spec.nLayers; l++) {
        const p = `layers.${l}.`;
        const bias = spec.qkvBias ? vec(p + 'bqkv') : undefined;
        this.layers.push({
          attnNorm: track(
            K.norm.prepare({ x: act.x, w: vec(p + 'attnNorm'), y: act.h, rows, dim: spec.dim, eps: spec.normEps, res: l > 0 ? act.tmp : undefined }),
          ),
          qkv: track(K.linear.prepare({ x: act.h, w: w(p + 'wqkv'), bias, y: act.qkv, rows })),
          rope: track(K.rope.prepare({ qkv: act.qkv, table: act.ropeTable, q: act.q, kv: a.cache.layers[l], step: a.step, rows })),
          attn: a.flash ? undefined : track(K.splitAttention.prepare({ q: act.q, kv: a.cache.layers[l], out: act.att, step: a.step })),
          wo: track(K.linear.prepare({ x: act.att, w: w(p + 'wo'), y: act.tmp, rows })),
          ffnNorm: track(K.norm.prepare({ x: act.x, w: vec(p + 'ffnNorm'), y: act.h, rows, dim: spec.dim, eps: spec.normEps, res: act.tmp })),
          gateUp: track(K.linear.prepareGateUp({ x: act.h, w: w(p + 'wGateUp'), y: act.ff, rows })),
          down: track(K.linear.prepare({ x: act.ff, w: w(p + 'wDown'), y: act.tmp, rows })),
        });
      }
      this.finalNorm = track(K.norm.prepare({ x: act.x, w: vec('finalNorm'), y: act.h, rows, dim: spec.dim, eps: spec.normEps, res: act.tmp }));
      // Logits are f32 in every tier (yF32): sampling and the read-backs take them as they are.
      this.lmHead = a.allLogits
        ? track(K.linear.prepare({ x: act.h, w: w('lmHead'), y: a.allLogits, yF32: true, rows }))
        : track(
            K.linear.prepare({ x: act.h, xOffsetBytes: (rows - 1) * spec.dim * actBytes(a.tier ?? 'f32'), w: w('lmHead'), y: act.logits, yF32: true, rows: 1 }),
          );
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** The fused decode layers (a.fused; the file comment). */
  private buildFused(track: <T extends Dispatch>(d: T) => T): void {
    const { spec, weights: W, kernels: K, act, cache } = this.a;
    if (this.a.rows !== 1 || this.a.allLogits) throw new ConfigError("the fused decode plan takes one row and the last row's logits", { rows: this.a.rows });
    const w = (n: string) => weightOf(W, n);
    const vec = (n: string) => w(n).parts[0].data;
    const { dim, normEps: eps, nHeads, nKvHeads, headDim } = spec;
    const ropeFits = K.linear.ropeFits(headDim, spec.rope.rotaryDim);
    // Partial sums of squares left in act.ss by the last residual epilogue (0: h is already normed, layer 0).
    let ssCount = 0;
    const normIn = () => (ssCount ? { ss: act.ss, count: ssCount, dim, eps } : undefined);
    for (let l = 0; l < spec.nLayers; l++) {
      const p = `layers.${l}.`;
      const bias = spec.qkvBias ? vec(p + 'bqkv') : undefined;
      const attnNorm = l === 0 ? track(K.norm.prepare({ x: act.x, w: vec(p + 'attnNorm'), y: act.h, rows: 1, dim, eps })) : undefined;
      const kv = cache.layers[l];
      const fuseRope = ropeFits && w(p + 'wqkv').parts.length === 1;
      const qkv = fuseRope
        ? track(
            K.linear.prepare({
              x: act.h,
              w: w(p + 'wqkv'),
              bias,
              y: act.q,
              rows: 1,
              normIn: normIn(),
              rope: {
                table: act.ropeTable,
                k: kv.k,
                v: kv.v,
                step: this.a.step,
                nHeads,
                nKvHeads,
                headDim,
                rotaryDim: spec.rope.rotaryDim,
                neox: spec.rope.variant === 'neox',
                capacity: cache.capacity,
                kvF16: cache.dtype === 'f16',
              },
            }),
          )
        : track(K.linear.prepare({ x: act.h, w: w(p + 'wqkv'), bias, y: act.qkv, rows: 1, normIn: normIn() }));
      const rope = fuseRope ? undefined : track(K.rope.prepare({ qkv: act.qkv, table: act.ropeTable, q: act.q, kv, step: this.a.step, rows: 1 }));
      const wW = w(p + 'wo');
      const residual = { normW: vec(p + 'ffnNorm'), h: act.h, ss: act.ss };
      const attn = track(K.splitAttention.prepare({ q: act.q, kv, out: act.att, step: this.a.step }));
      const wo = track(K.linear.prepare({ x: act.att, w: wW, y: act.x, rows: 1, residual }));
      ssCount = wo.workgroups;
      const gateUp = track(K.linear.prepareGateUp({ x: act.h, w: w(p + 'wGateUp'), y: act.ff, rows: 1, normIn: normIn() }));
      const next = l + 1 < spec.nLayers ? `layers.${l + 1}.attnNorm` : 'finalNorm';
      const down = track(K.linear.prepare({ x: act.ff, w: w(p + 'wDown'), y: act.x, rows: 1, residual: { normW: vec(next), h: act.h, ss: act.ss } }));
      ssCount = down.workgroups;
      this.layers.push({ attnNorm, qkv, rope, attn, wo, gateUp, down });
    }
    if (ssCount > act.ss.size / 4) throw new ConfigError(`fused decode: ${ssCount} partial sums exceed act.ss`, { ssCount });
    this.lmHead = track(K.linear.prepare({ x: act.h, w: w('lmHead'), y: act.logits, yF32: true, rows: 1, normIn: normIn() }));
  }

  /**
   * Records the pass for positions [pos, pos + rows) into `encoder`. The
   * caller has written ids, the RoPE table and the step uniform.
   */
  encode(
    encoder: GPUCommandEncoder,
    pos: number,
    attention: AttentionOptions,
    timer?: GpuTimer,
    perOp = false,
    tail?: (pass: GPUComputePassEncoder) => void,
  ): void {
    const K = this.a.kernels;
    const begin = (label: string) => encoder.beginComputePass(timer ? timer.pass(label) : { label });
    let pass = begin(perOp ? 'embed' : 'forward');
    // perOp (profiling): every op in its own timed pass, labelled by op family.
    const op = (label: string, d: Dispatch) => {
      if (perOp) {
        pass.end();
        pass = begin(label);
      }
      d.encode(pass);
    };
    this.embed.encode(pass);
    this.layers.forEach((L, l) => {
      if (L.attnNorm) op('attn_norm', L.attnNorm);
      op('qkv', L.qkv);
      if (L.rope) op('rope', L.rope);
      if (L.attn) {
        op('attention', L.attn);
      } else {
        pass.end();
        K.prefillAttention!.encode(
          encoder,
          { q: this.a.act.q, kv: this.a.cache.layers[l], out: this.a.act.att, pos, rows: this.rows, layer: l },
          attention,
          timer,
        );
        pass = begin(perOp ? 'wo' : `layer${l}.after_attention`);
        L.wo.encode(pass);
        if (L.ffnNorm) op('ffn_norm', L.ffnNorm);
        op('gate_up', L.gateUp);
        op('down', L.down);
        return;
      }
      op('wo', L.wo);
      if (L.ffnNorm) op('ffn_norm', L.ffnNorm);
      op('gate_up', L.gateUp);
      op('down', L.down);
    });
    if (this.finalNorm) op('final_norm', this.finalNorm);
    op('lm_head', this.lmHead);
    // (tail: more work in the same pass, e.g. the argmax of the logits)
    tail?.(pass);
    pass.end();
  }

  /**
   * Dispatches one step of this plan records (decode plans: the split-K
   * attention path; counted by recording into a pass that only counts).
   */
  dispatchCount(pos: number, attention: AttentionOptions): number {
    let n = 0;
    const pass = {
      setPipeline() {},
      setBindGroup() {},
      end() {},
      dispatchWorkgroups() {
        n++;
      },
      dispatchWorkgroupsIndirect() {
        n++;
      },
    } as unknown as GPUComputePassEncoder;
    const encoder = { beginComputePass: () => pass } as unknown as GPUCommandEncoder;
    this.encode(encoder, pos, attention);
    return n;
  }

  destroy(): void {
    for (const d of this.all) d.destroy();
    this.all = [];
  }
}
