/**
 * Launcher and CPU reference for kernels/sample.wgsl: picks the next token
 * from the engine's logits on the GPU (penalty, greedy, temperature, top-k,
 * top-p) and reads back one u32. Buffers are made once per engine; a step
 * writes the 32-byte params uniform (and one history slot) and allocates nothing.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { createBuffer, releaseBuffer, STORAGE, writeBuffer } from '../src/gpu/buffers.ts';
import source from './sample.wgsl?raw';

export interface SampleParams {
  /** Pick the argmax (temperature 0). */
  greedy: boolean;
  /** > 0 (ignored when greedy). */
  temperature: number;
  /** Keep the k most likely tokens; 0 = all. */
  topK: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP: number;
  /** > 0; 1 = off. Applied to every token id in the history. */
  repetitionPenalty: number;
}

export const GREEDY: SampleParams = { greedy: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 };

/** The sampler's one pipeline. */
export function samplerSpecs(): PipelineSpec[] {
  return [{ label: 'sample', code: source }];
}

export class GpuSampler {
  private params: GPUBuffer; // Params (8 words)
  private history: GPUBuffer; // (capacity) u32
  private scratch: GPUBuffer; // (vocab) f32
  private result: GPUBuffer; // (4) u32
  private staging: GPUBuffer; // (4) u32, MAP_READ
  private bind: GPUBindGroup;
  private words = new ArrayBuffer(32);
  /** Token ids currently in the history buffer. */
  historyLength = 0;

  private constructor(
    private ctx: GpuContext,
    private pipeline: GPUComputePipeline,
    logits: GPUBuffer,
    readonly vocab: number,
    readonly capacity: number,
  ) {
    this.params = createBuffer(ctx, 32, STORAGE.uniform, 'sample-params');
    this.history = createBuffer(ctx, Math.max(1, capacity) * 4, STORAGE.rw, 'sample-history');
    this.scratch = createBuffer(ctx, vocab * 4, STORAGE.rw, 'sample-scratch');
    this.result = createBuffer(ctx, 16, STORAGE.rw, 'sample-result');
    this.staging = createBuffer(ctx, 16, STORAGE.readback, 'sample-staging');
    this.bind = bindBuffers(ctx, pipeline, [logits, this.history, this.scratch, this.result, this.params], 'sample');
  }

  /**
   * `logits`: (vocab) f32 (the engine's last-position logits); `capacity`: history slots (context length).
   * Takes its pipeline from the cache (samplerSpecs; precompiled by an engine's load).
   */
  static create(ctx: GpuContext, logits: GPUBuffer, vocab: number, capacity: number): GpuSampler {
    return new GpuSampler(ctx, pipeline(ctx, samplerSpecs()[0]), logits, vocab, capacity);
  }

  /** Replaces the history with `ids` (only the last `capacity` are kept). */
  setHistory(ids: readonly number[]): void {
    const keep = ids.slice(Math.max(0, ids.length - this.capacity));
    if (keep.length) writeBuffer(this.ctx, this.history, 0, Uint32Array.from(keep));
    this.historyLength = keep.length;
  }

  /** Appends one id (a no-op once the history is full). */
  pushHistory(id: number): void {
    if (this.historyLength >= this.capacity) return;
    writeBuffer(this.ctx, this.history, this.historyLength * 4, Uint32Array.of(id));
    this.historyLength++;
  }

  /** Picks a token from the current logits; `r` is uniform in [0, 1). */
  async sample(p: SampleParams, r: number): Promise<number> {
    const dv = new DataView(this.words);
    dv.setUint32(0, this.vocab, true);
    dv.setUint32(4, p.repetitionPenalty !== 1 ? this.historyLength : 0, true);
    dv.setUint32(8, p.topK, true);
    dv.setUint32(12, p.greedy ? 1 : 0, true);
    dv.setFloat32(16, p.temperature, true);
    dv.setFloat32(20, p.topP, true);
    dv.setFloat32(24, p.repetitionPenalty, true);
    dv.setFloat32(28, r, true);
    const { device } = this.ctx;
    device.queue.writeBuffer(this.params, 0, this.words);
    const enc = device.createCommandEncoder({ label: 'sample' });
    const pass = enc.beginComputePass({ label: 'sample' });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bind);
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(this.result, 0, this.staging, 0, 4);
    device.queue.submit([enc.finish()]);
    await this.staging.mapAsync(GPUMapMode.READ, 0, 4);
    const id = new Uint32Array(this.staging.getMappedRange(0, 4))[0];
    this.staging.unmap();
    return id;
  }

  destroy(): void {
    for (const b of [this.params, this.history, this.scratch, this.result, this.staging]) releaseBuffer(this.ctx, b);
  }
}

export interface SampleRefResult {
  /** The pick for `r`. */
  id: number;
  /** Penalized logits. */
  values: Float32Array;
  /** Tokens kept after top-k/top-p (ascending ids) with their normalized probabilities. */
  kept: number[];
  probs: number[];
  /** Cumulative mass (normalized) after each kept token, in id order. */
  cdf: number[];
}

/** CPU reference of sample.wgsl (f64 sums). */
export function sampleRef(logits: Float32Array, history: readonly number[], p: SampleParams, r: number): SampleRefResult {
  const vocab = logits.length;
  const values = Float32Array.from(logits);
  if (p.repetitionPenalty !== 1) {
    for (const id of history) {
      if (id < vocab) {
        const x = logits[id];
        values[id] = x > 0 ? x / p.repetitionPenalty : x * p.repetitionPenalty;
      }
    }
  }
  let argmax = 0;
  for (let i = 1; i < vocab; i++) if (values[i] > values[argmax]) argmax = i;
  if (p.greedy) return { id: argmax, values, kept: [argmax], probs: [1], cdf: [1] };
  const vmax = values[argmax];
  const sorted = Array.from(values).sort((a, b) => b - a);
  let thresh = -Infinity;
  if (p.topK > 0 && p.topK < vocab) thresh = sorted[p.topK - 1];
  const w = (v: number) => Math.exp((v - vmax) / p.temperature);
  if (p.topP < 1) {
    let massK = 0;
    for (const v of sorted) if (v >= thresh) massK += w(v);
    const need = p.topP * massK;
    // Largest distinct value t with mass(v >= t) >= need.
    let mass = 0;
    for (let i = 0; i < sorted.length; i++) {
      mass += w(sorted[i]);
      const last = i + 1 === sorted.length || sorted[i + 1] !== sorted[i];
      if (last && mass >= need) {
        thresh = Math.max(thresh, sorted[i]);
        break;
      }
    }
  }
  const kept: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < vocab; i++) {
    if (values[i] >= thresh) {
      kept.push(i);
      weights.push(w(values[i]));
    }
  }
  const total = weights.reduce((a, b) => a + b, 0);
  const probs = weights.map((x) => x / total);
  const cdf: number[] = [];
  let run = 0;
  for (const q of probs) cdf.push((run += q));
  let id = kept[kept.length - 1];
  for (let j = 0; j < kept.length; j++)
    if (cdf[j] > r) {
      id = kept[j];
      break;
    }
  return { id, values, kept, probs, cdf };
}
