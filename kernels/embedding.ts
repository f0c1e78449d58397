/**
 * Launcher and CPU reference for kernels/embedding.wgsl: gathers rows of an
 * embedding table in any GPU weight format, split in parts or not.
 */
import type { GpuContext } from '../src/gpu/device.ts';
import { bindBuffers, pipeline, type PipelineSpec } from '../src/gpu/pipelines.ts';
import { releaseBuffer, uniformBuffer } from '../src/gpu/buffers.ts';
import type { Dispatch } from './prepared.ts';
import type { GpuWeight, WeightFormat } from '../src/gpu/formats.ts';
import source from './embedding.wgsl?raw';

const FORMAT_CODE: Record<WeightFormat, number> = { f32: 0, f16: 1, q8: 2, q4: 3 };

export interface EmbeddingArgs {
  /** (rows) u32 token ids */
  ids: GPUBuffer;
  /** [vocabSize, dim] in any format, split by rows or not */
  table: GpuWeight;
  /** (rows, dim) f32 */
  out: GPUBuffer;
  rows: number;
}

/** The pipelines prepare() takes for tables in these formats (one per format). */
export function embeddingSpecs(formats: WeightFormat[]): PipelineSpec[] {
  return formats.map((f) => ({ label: `embedding_${f}`, code: source, constants: { FORMAT: FORMAT_CODE[f] } }));
}

export class Embedding {
  private constructor(private ctx: GpuContext) {}

  /** Pipelines come from the cache in prepare() (embeddingSpecs; precompiled by an engine's load). */
  static create(ctx: GpuContext): Embedding {
    return new Embedding(ctx);
  }

  prepare(a: EmbeddingArgs): Dispatch {
    const { table } = a;
    const pipe = pipeline(this.ctx, embeddingSpecs([table.format])[0]);
    const dim = table.shape[1];
    const owned: GPUBuffer[] = [];
    const groups: GPUBindGroup[] = [];
    for (const part of table.parts) {
      const params = uniformBuffer(this.ctx, [a.rows, dim, part.rowStart, part.rows, table.groupSize || 1, 0, 0, 0], `${table.name}_gather_params`);
      owned.push(params);
      groups.push(bindBuffers(this.ctx, pipe, [a.ids, part.data, part.scales ?? part.data, a.out, params], `${table.name}_gather`));
    }
    const ctx = this.ctx;
    return {
      encode(pass) {
        pass.setPipeline(pipe);
        for (const bg of groups) {
          pass.setBindGroup(0, bg);
          pass.dispatchWorkgroups(Math.ceil(dim / 256), a.rows);
        }
      },
      destroy() {
        for (const b of owned) releaseBuffer(ctx, b);
        owned.length = 0;
      },
    };
  }
}

/** CPU reference: rows of `table` (already dequantized, [vocab, dim]) picked by ids. */
export function embeddingRef(table: Float32Array, dim: number, ids: ArrayLike<number>): Float32Array {
  const out = new Float32Array(ids.length * dim);
  for (let r = 0; r < ids.length; r++) out.set(table.subarray(ids[r] * dim, ids[r] * dim + dim), r * dim);
  return out;
}
