/**
 * The KV cache: per layer K and V, each (nKvHeads, capacity, headDim) in f32
 * or f16 pairs (types.ts), preallocated once. `length` is the offset: the
 * number of positions holding valid entries; truncate() only moves it.
 */
import type { GpuContext } from '../gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE } from '../gpu/buffers.ts';
import { GpuLimitError } from '../errors.ts';
import type { KvCacheInfo, KvDtype, LayerKv } from './types.ts';

export interface KvCacheShape {
  nLayers: number;
  nKvHeads: number;
  headDim: number;
  capacity: number;
  dtype: KvDtype;
}

export function kvLayerBytes(s: Omit<KvCacheShape, 'nLayers'>): number {
  return s.nKvHeads * s.capacity * s.headDim * (s.dtype === 'f32' ? 4 : 2);
}

export class KvCache implements KvCacheInfo {
  readonly layers: LayerKv[] = [];
  readonly dtype: KvDtype;
  readonly capacity: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  /** Positions [0, length) hold valid K/V. */
  length = 0;

  constructor(
    private ctx: GpuContext,
    s: KvCacheShape,
  ) {
    this.dtype = s.dtype;
    this.capacity = s.capacity;
    this.nKvHeads = s.nKvHeads;
    this.headDim = s.headDim;
    if (s.dtype === 'f16' && s.headDim % 2 !== 0) throw new RangeError(`an f16 KV cache needs an even headDim (got ${s.headDim})`);
    const bytes = kvLayerBytes(s);
    const max = ctx.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new GpuLimitError(
        `KV cache of one layer needs ${bytes} bytes for K (nKvHeads ${s.nKvHeads} x capacity ${s.capacity} x headDim ${s.headDim} ${s.dtype}), over maxStorageBufferBindingSize ${max}: lower the context length or use an f16 cache`,
        { bytes, max, capacity: s.capacity },
      );
    }
    try {
      for (let l = 0; l < s.nLayers; l++) {
        this.layers.push({
          k: createBuffer(ctx, bytes, STORAGE.rw, `kv.${l}.k`),
          v: createBuffer(ctx, bytes, STORAGE.rw, `kv.${l}.v`),
        });
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Total bytes of all layers' K and V. */
  get bytes(): number {
    return this.layers.length * 2 * kvLayerBytes(this);
  }

  truncate(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.length)) throw new RangeError(`truncate(${n}): must be an integer in [0, ${this.length}]`);
    this.length = n;
  }

  destroy(): void {
    for (const l of this.layers) {
      releaseBuffer(this.ctx, l.k);
      releaseBuffer(this.ctx, l.v);
    }
    this.layers.length = 0;
  }
}
