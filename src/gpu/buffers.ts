/**
 * Buffer helpers: every buffer the runtime makes goes through createBuffer so
 * that ctx.allocations knows the live bytes (leak tests read it), and
 * releaseBuffer so that the count goes back down.
 */
import { GpuLimitError } from '../errors.ts';
import type { GpuContext } from './device.ts';

export const STORAGE = GPUBufferUsageFlags();

function GPUBufferUsageFlags() {
  // GPUBufferUsage is a global in browsers and is installed by Dawn's globals in Node;
  // read it lazily so importing this module never fails before getGpu().
  return {
    get rw(): number {
      return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    },
    get uniform(): number {
      return GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    },
    get readback(): number {
      return GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
    },
  };
}

/** Sizes are rounded up to 4 bytes (WebGPU copies and bindings need it). */
export function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

export function createBuffer(ctx: GpuContext, size: number, usage: number, label: string): GPUBuffer {
  const bytes = Math.max(4, align4(size));
  if (bytes > ctx.limits.maxBufferSize) {
    throw new GpuLimitError(`buffer '${label}' needs ${bytes} bytes but this GPU's maxBufferSize is ${ctx.limits.maxBufferSize}`, {
      label,
      bytes,
      maxBufferSize: ctx.limits.maxBufferSize,
    });
  }
  const buf = ctx.device.createBuffer({ size: bytes, usage, label });
  ctx.allocations.set(buf, bytes);
  return buf;
}

export function releaseBuffer(ctx: GpuContext, buf: GPUBuffer | undefined | null): void {
  if (!buf) return;
  ctx.allocations.delete(buf);
  buf.destroy();
}

/** A storage buffer (read/write, copy src/dst) holding `data`. */
export function uploadBuffer(ctx: GpuContext, data: ArrayBufferView, label: string, usage = STORAGE.rw): GPUBuffer {
  const buf = createBuffer(ctx, data.byteLength, usage, label);
  writeBuffer(ctx, buf, 0, data);
  return buf;
}

/** queue.writeBuffer with the 4-byte padding WebGPU requires. */
export function writeBuffer(ctx: GpuContext, buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const u8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const whole = u8.byteLength - (u8.byteLength % 4);
  if (whole > 0) ctx.device.queue.writeBuffer(buf, offset, u8.buffer, u8.byteOffset, whole);
  if (whole < u8.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(u8.subarray(whole));
    ctx.device.queue.writeBuffer(buf, offset + whole, tail);
  }
}

/** Copies `size` bytes of `src` (from `offset`) to the CPU. */
export async function readBuffer(ctx: GpuContext, src: GPUBuffer, size = src.size, offset = 0): Promise<ArrayBuffer> {
  const bytes = align4(size);
  const staging = ctx.device.createBuffer({ size: bytes, usage: STORAGE.readback, label: 'readback' });
  try {
    const enc = ctx.device.createCommandEncoder({ label: 'readback' });
    enc.copyBufferToBuffer(src, offset, staging, 0, bytes);
    ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    return staging.getMappedRange().slice(0, size);
  } finally {
    staging.destroy();
  }
}

export async function readF32(ctx: GpuContext, src: GPUBuffer, count?: number, offsetElems = 0): Promise<Float32Array> {
  const n = count ?? src.size / 4 - offsetElems;
  return new Float32Array(await readBuffer(ctx, src, n * 4, offsetElems * 4));
}

/** A small uniform buffer of u32/i32/f32 words (all 4-byte), padded to 16 bytes. */
export function uniformBuffer(ctx: GpuContext, words: ArrayLike<number>, label: string, kinds?: ('u32' | 'f32' | 'i32')[]): GPUBuffer {
  const n = Math.max(4, Math.ceil(words.length / 4) * 4);
  const ab = new ArrayBuffer(n * 4);
  const dv = new DataView(ab);
  for (let i = 0; i < words.length; i++) {
    const k = kinds?.[i] ?? 'u32';
    if (k === 'f32') dv.setFloat32(i * 4, words[i], true);
    else if (k === 'i32') dv.setInt32(i * 4, words[i], true);
    else dv.setUint32(i * 4, words[i] >>> 0, true);
  }
  const buf = createBuffer(ctx, ab.byteLength, STORAGE.uniform, label);
  ctx.device.queue.writeBuffer(buf, 0, ab);
  return buf;
}
