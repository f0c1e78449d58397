/**
 * Launcher for gpu-quant.wgsl: quantizes row blocks of a weight to q8/q4 on
 * the GPU while it streams in, so the CPU only copies bytes. One staging
 * buffer (BLOCK_BYTES) and one params buffer are reused for every block; the
 * queue orders each block's upload after the previous block's dispatch.
 * `accepts` says when a block can take this path (one source dtype, word
 * aligned pieces, groups that fill whole words); otherwise the loader packs
 * on the CPU (quant-fast.ts).
 */
import type { GpuContext } from '../gpu/device.ts';
import { createBuffer, releaseBuffer, STORAGE, writeBuffer } from '../gpu/buffers.ts';
import { bindBuffers, dispatchDims, getPipeline } from '../gpu/pipelines.ts';
import type { FileDtype, TensorEntry } from './source.ts';
import quantSource from './gpu-quant.wgsl?raw';
import f16BitsSource from '../../kernels/f16_bits.wgsl?raw';

/** The quantizer with the shared f32 -> f16 rounding (kernels/f16_bits.wgsl) it calls. */
const source = f16BitsSource + quantSource;

const SRC_CODE: Partial<Record<FileDtype, number>> = { F32: 0, F16: 1, BF16: 2 };
const ELEM_BYTES: Partial<Record<FileDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export interface RawPiece {
  entry: TensorEntry;
  bytes: Uint8Array;
  at: number;
}

export class GpuQuantizer {
  private staging: GPUBuffer;
  private params: GPUBuffer;
  constructor(
    private ctx: GpuContext,
    private stagingBytes: number,
  ) {
    this.staging = createBuffer(ctx, stagingBytes, STORAGE.rw, 'quant-staging');
    this.params = createBuffer(ctx, 32, STORAGE.uniform, 'quant-params');
  }

  /** Whether a block of `nElems` elements in `pieces` can be quantized here. */
  accepts(pieces: RawPiece[], nElems: number, format: 'q8' | 'q4', groupSize: number): boolean {
    const dtype = pieces[0]?.entry.dtype;
    const eb = dtype && ELEM_BYTES[dtype];
    if (!eb || groupSize % (format === 'q4' ? 8 : 4) !== 0 || nElems * eb > this.stagingBytes) return false;
    return pieces.every((p) => p.entry.dtype === dtype && (p.at * eb) % 4 === 0);
  }

  /** Encodes and submits the quantization of one block into `data`/`scales` at the given words. */
  async run(
    pieces: RawPiece[],
    nElems: number,
    format: 'q8' | 'q4',
    groupSize: number,
    data: GPUBuffer,
    scales: GPUBuffer,
    dataWord: number,
    scaleWord: number,
  ): Promise<void> {
    const ctx = this.ctx;
    const dtype = pieces[0].entry.dtype;
    const eb = ELEM_BYTES[dtype]!;
    for (const p of pieces) writeBuffer(ctx, this.staging, p.at * eb, p.bytes);
    const pipeline = await getPipeline(ctx, {
      label: `quant-${format}-${dtype}`,
      code: source,
      constants: { SRC: SRC_CODE[dtype]!, Q4: format === 'q4' ? 1 : 0 },
    });
    const nGroups = nElems / groupSize;
    const [x, y] = dispatchDims(ctx, Math.ceil(Math.ceil(nGroups / 2) / 64));
    ctx.device.queue.writeBuffer(this.params, 0, new Uint32Array([nGroups, groupSize, dataWord, scaleWord, x * 64, 0, 0, 0]));
    const enc = ctx.device.createCommandEncoder({ label: 'quantize block' });
    const pass = enc.beginComputePass({ label: 'quantize block' });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindBuffers(ctx, pipeline, [this.staging, data, scales, this.params], 'quantize block'));
    pass.dispatchWorkgroups(x, y);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  }

  destroy(): void {
    releaseBuffer(this.ctx, this.staging);
    releaseBuffer(this.ctx, this.params);
  }
}
