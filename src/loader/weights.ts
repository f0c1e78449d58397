/**
 * loadWeights: canonical tensors from a FileSource to GPU buffers in the
 * formats of formats.ts. Each tensor is streamed in row blocks of at most
 * BLOCK_BYTES (read -> convert/quantize on the CPU -> queue.writeBuffer), and
 * the queue is drained every FLUSH_BYTES so neither JS nor the driver's
 * staging memory grows with the model. Reads run `readAhead` blocks ahead of
 * the block being converted (default 1; a URL source asks for more). Conversions:
 *   F16 -> f16: raw copy (bit exact); BF16 -> f16: table lookup; F32 -> f16:
 *   round to nearest even. A tensor with a finite value beyond the f16 range
 *   is reloaded as f32 and listed in `keptF32` (and in onNote).
 *   q8 / q4: on the GPU (gpu-quant.wgsl, raw bytes uploaded) or on the CPU
 *   (quant-fast.ts) per block; groups run along a row, blocks hold whole rows.
 * Any failure (bad bytes, abort, GPU limit) releases every buffer created so far.
 */
import { AbortedError, ModelFormatError } from '../errors.ts';
import { createBuffer, releaseBuffer, STORAGE, writeBuffer } from '../gpu/buffers.ts';
import type { GpuContext } from '../gpu/device.ts';
import { weightPlan, type TensorRecipe, type WeightPlan } from '../../models/index.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { GpuWeight, GpuWeightPart } from './formats.ts';
import { checkFormatOptions, layoutFor, layoutWeight, ROW_ALIGN, type FormatOptions, type WeightLayout } from './layout.ts';
import { bf16ToF32, f16ToF32, f32ToF16 } from './quant.ts';
import { fastQuantizeQ4, fastQuantizeQ8 } from './quant-fast.ts';
import { GpuQuantizer } from './gpu-quant.ts';
import { countNonFinite, StorageCrcTracker } from './integrity.ts';
import type { FileSource, TensorEntry } from './source.ts';
import type { ByteProgress } from './url-source.ts';

/** Upper bound of one block of f32 rows held in JS while converting. */
export const BLOCK_BYTES = 4 << 20;
/** Bytes written to the queue between waits for the GPU to catch up. */
export const FLUSH_BYTES = 64 << 20;

export interface LoadWeightsOptions extends FormatOptions {
  onProgress?: (p: ByteProgress) => void;
  /** After each tensor is on the GPU: tensors done of total. */
  onTensor?: (done: number, total: number) => void;
  /** Format fallbacks (group changes, tensors kept f32). */
  onNote?: (note: string) => void;
  signal?: AbortSignal;
  /**
   * Where q8/q4 packing runs: 'gpu' (gpu-quant.wgsl, the CPU only copies
   * bytes) or 'cpu' (quant-fast.ts, bit-identical to quant.ts). Default: 'gpu'
   * on a hardware adapter, 'cpu' on a software one (SwiftShader runs the
   * kernel on the same CPU, slower than plain JS). Blocks the GPU path cannot
   * take (mixed dtypes, unaligned pieces) use the CPU.
   */
  quantizeOn?: 'gpu' | 'cpu';
  /**
   * Row blocks read ahead of the one being converted (1 to 8): at most
   * readAhead + 1 blocks of raw bytes in flight. Default: the source's
   * `readAhead` (urlSource: Range requests are latency-bound), else 1.
   */
  readAhead?: number;
  /**
   * Load tensors holding NaN or Inf values (reported in `notes` / onNote).
   * Default false: such a tensor is a ModelFormatError naming it and the count.
   */
  allowNonFinite?: boolean;
}

/** The loaded weights by canonical name, with what the loader decided. */
export class WeightMap extends Map<string, GpuWeight> {
  /** Tensors kept in f32 because a value is beyond the f16 range. */
  keptF32: string[] = [];
  notes: string[] = [];
  /** Bytes allocated for all parts (data + scales). */
  bytes = 0;
  /** PyTorch storages read whole and found equal to their zip CRC-32. */
  storagesVerified = 0;
}

let bf16ToF16Lut: Uint16Array | undefined;
let f16ToF32Lut: Float32Array | undefined;
let bf16ToF32Lut: Float32Array | undefined;
function luts() {
  if (!bf16ToF16Lut) {
    bf16ToF16Lut = new Uint16Array(65536);
    f16ToF32Lut = new Float32Array(65536);
    bf16ToF32Lut = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) {
      bf16ToF32Lut[b] = bf16ToF32(b);
      bf16ToF16Lut[b] = f32ToF16(bf16ToF32Lut[b]);
      f16ToF32Lut[b] = f16ToF32(b);
    }
  }
  return { bf16ToF16: bf16ToF16Lut, f16ToF32: f16ToF32Lut!, bf16ToF32: bf16ToF32Lut! };
}

class OutOfF16Range extends Error {}

const isInfF16 = (h: number) => (h & 0x7fff) === 0x7c00;

/** Converts `n` source elements at byte `src` into `out` (Uint16 f16 bits or Float32) at element `at`. */
function convert(entry: TensorEntry, src: Uint8Array, out: Uint16Array | Float32Array, at: number): void {
  if (src.byteOffset % 4 !== 0) src = src.slice();
  const n = src.byteLength / (entry.dtype === 'F32' ? 4 : 2);
  const L = luts();
  if (out instanceof Uint16Array) {
    if (entry.dtype === 'F16') {
      out.set(new Uint16Array(src.buffer, src.byteOffset, n), at);
    } else if (entry.dtype === 'BF16') {
      const s = new Uint16Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = L.bf16ToF16[s[i]];
        if (isInfF16(h) && (s[i] & 0x7f80) !== 0x7f80) throw new OutOfF16Range();
        out[at + i] = h;
      }
    } else {
      const s = new Float32Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32ToF16(s[i]);
        if (isInfF16(h) && Number.isFinite(s[i])) throw new OutOfF16Range();
        out[at + i] = h;
      }
    }
  } else if (entry.dtype === 'F32') {
    out.set(new Float32Array(src.buffer, src.byteOffset, n), at);
  } else {
    const s = new Uint16Array(src.buffer, src.byteOffset, n);
    const lut = entry.dtype === 'F16' ? L.f16ToF32 : L.bf16ToF32;
    for (let i = 0; i < n; i++) out[at + i] = lut[s[i]];
  }
}

function checkDtype(e: TensorEntry): void {
  if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') {
    throw new ModelFormatError(e.file, `tensor '${e.name}' has dtype ${e.dtype}; only F32, F16 and BF16 convert to weights`, { tensor: e.name });
  }
}

/** Raw bytes of canonical rows, one piece per contiguous run of source rows. */
export interface RawRows {
  pieces: { entry: TensorEntry; bytes: Uint8Array; at: number; offset: number }[];
}

/** Reads canonical rows [r0, r0 + n) of a recipe (cols elements per row), one read per contiguous source run. */
export async function fetchRows(source: FileSource, recipe: TensorRecipe, cols: number, r0: number, n: number): Promise<RawRows> {
  const reads: Promise<RawRows['pieces'][number]>[] = [];
  let canonStart = 0;
  for (const seg of recipe.segments) {
    const a = Math.max(r0, canonStart),
      b = Math.min(r0 + n, canonStart + seg.rows);
    if (a < b) {
      const e = seg.entry;
      checkDtype(e);
      const srcRowBytes = (e.byteLength / Math.max(1, e.shape[0] ?? 1)) | 0;
      const srcRow = seg.rowStart + (a - canonStart);
      const offset = e.offset + srcRow * srcRowBytes,
        length = (b - a) * srcRowBytes;
      reads.push(
        source.read(e.file, offset, length).then((bytes) => {
          if (bytes.byteLength !== length)
            throw new ModelFormatError(e.file, `read of tensor '${e.name}' returned ${bytes.byteLength} of ${length} bytes at offset ${offset}`, {
              tensor: e.name,
            });
          return { entry: e, bytes, at: (a - r0) * cols, offset };
        }),
      );
    }
    canonStart += seg.rows;
  }
  return { pieces: await Promise.all(reads) };
}

export function convertRows(raw: RawRows, out: Uint16Array | Float32Array, onBytes: (file: string, bytes: number) => void): void {
  for (const p of raw.pieces) {
    convert(p.entry, p.bytes, out, p.at);
    onBytes(p.entry.file, p.bytes.byteLength);
  }
}

export function releaseWeights(ctx: GpuContext, weights: Iterable<GpuWeight>): void {
  for (const w of weights)
    for (const p of w.parts) {
      releaseBuffer(ctx, p.data);
      releaseBuffer(ctx, p.scales);
    }
}

export function maxPartBytes(ctx: GpuContext, o: FormatOptions): number {
  return Math.min(o.maxPartBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
}

/**
 * Streams every canonical tensor of `plan` (or of the entries, mapped through
 * the spec's family) to the GPU. Returns a WeightMap keyed by canonical name.
 */
export async function loadWeights(
  ctx: GpuContext,
  source: FileSource,
  spec: ModelSpec,
  planOrEntries: WeightPlan | TensorEntry[],
  opts: LoadWeightsOptions = {},
): Promise<WeightMap> {
  checkFormatOptions(opts);
  const plan = Array.isArray(planOrEntries) ? weightPlan(spec, planOrEntries) : planOrEntries;
  const maxPart = maxPartBytes(ctx, opts);
  const readAhead = Math.min(8, Math.max(1, Math.floor(opts.readAhead ?? (source as { readAhead?: number }).readAhead ?? 1)));
  const out = new WeightMap();
  let bytesTotal = plan.recipes.reduce((s, r) => s + r.segments.reduce((t, g) => t + g.rows * (g.entry.byteLength / Math.max(1, g.entry.shape[0] ?? 1)), 0), 0);
  let bytesDone = 0;
  let sinceFlush = 0;
  // Drain the queue every FLUSH_BYTES so the driver's staging copies stay bounded, even inside one big tensor.
  const written = async (n: number) => {
    sinceFlush += n;
    if (sinceFlush >= FLUSH_BYTES) {
      sinceFlush = 0;
      await ctx.device.queue.onSubmittedWorkDone();
    }
  };
  const onBytes = (file: string, n: number) => {
    bytesDone += n;
    opts.onProgress?.({ file, bytesDone, bytesTotal });
  };
  const note = (s: string) => {
    out.notes.push(s);
    opts.onNote?.(s);
  };
  // Integrity while streaming (integrity.ts): NaN/Inf per checkpoint tensor, PyTorch storages' CRC-32.
  const crc = new StorageCrcTracker();
  let nonFinite = new Map<string, number>();
  const inspect = (raw: RawRows) => {
    for (const p of raw.pieces) {
      const n = countNonFinite(p.entry.dtype, p.bytes);
      if (n) nonFinite.set(p.entry.name, (nonFinite.get(p.entry.name) ?? 0) + n);
      crc.add(p.entry, p.offset, p.bytes);
    }
  };
  const quantizer =
    (opts.format === 'q8' || opts.format === 'q4') && (opts.quantizeOn ?? (ctx.info.isSoftware ? 'cpu' : 'gpu')) === 'gpu'
      ? new GpuQuantizer(ctx, BLOCK_BYTES)
      : undefined;
  try {
    for (const recipe of plan.recipes) {
      let layout = layoutFor(recipe.name, recipe.shape, opts, maxPart);
      if (layout.note) note(`${recipe.name}: ${layout.note}`);
      const doneBefore = bytesDone;
      let w: GpuWeight;
      nonFinite = new Map();
      try {
        w = await uploadTensor(ctx, source, recipe, layout, opts.signal, onBytes, written, readAhead, quantizer, inspect);
      } catch (e) {
        if (!(e instanceof OutOfF16Range)) throw e;
        bytesTotal += bytesDone - doneBefore; // the tensor is read again: progress stays monotonic
        layout = layoutWeight(recipe.name, recipe.shape, 'f32', 0, maxPart);
        note(`${recipe.name}: values beyond the f16 range (|x| > 65504), kept in f32`);
        out.keptF32.push(recipe.name);
        nonFinite = new Map();
        w = await uploadTensor(ctx, source, recipe, layout, opts.signal, onBytes, written, readAhead, quantizer, inspect);
      }
      out.set(recipe.name, w);
      for (const [tensor, n] of nonFinite) {
        const msg = `tensor '${tensor}' holds ${n} non-finite values (NaN or Inf)`;
        const file = recipe.segments.find((g) => g.entry.name === tensor)?.entry.file ?? recipe.name;
        if (!opts.allowNonFinite)
          throw new ModelFormatError(file, `${msg}: the model would produce garbage (pass allowNonFinite to load it anyway)`, { tensor, count: n });
        note(`${recipe.name}: ${msg}, loaded as allowed`);
      }
      opts.onTensor?.(out.size, plan.recipes.length);
      out.bytes += w.parts.reduce((s, p) => s + (ctx.allocations.get(p.data) ?? 0) + (p.scales ? (ctx.allocations.get(p.scales) ?? 0) : 0), 0);
    }
    out.storagesVerified = crc.verify();
    await ctx.device.queue.onSubmittedWorkDone();
    return out;
  } catch (e) {
    releaseWeights(ctx, out.values());
    out.clear();
    throw e;
  } finally {
    quantizer?.destroy();
  }
}

async function uploadTensor(
  ctx: GpuContext,
  source: FileSource,
  recipe: TensorRecipe,
  layout: WeightLayout,
  signal: AbortSignal | undefined,
  onBytes: (file: string, n: number) => void,
  onWritten: (n: number) => Promise<void>,
  readAhead: number,
  quantizer?: GpuQuantizer,
  inspect?: (raw: RawRows) => void,
): Promise<GpuWeight> {
  const cols = recipe.shape.length === 1 ? 1 : recipe.shape[1];
  const parts: GpuWeightPart[] = [];
  const fmt = layout.format;
  try {
    for (const [k, pl] of layout.parts.entries()) {
      const label = layout.parts.length > 1 ? `${recipe.name}#${k}` : recipe.name;
      const part: GpuWeightPart = { rowStart: pl.rowStart, rows: pl.rows, data: createBuffer(ctx, pl.dataBytes, STORAGE.rw, label) };
      parts.push(part);
      if (pl.scaleBytes) part.scales = createBuffer(ctx, pl.scaleBytes, STORAGE.rw, `${label}.scales`);
      // Rows per block: a multiple of ROW_ALIGN (so packed offsets are word aligned) within BLOCK_BYTES of f32.
      const blockRows = Math.max(ROW_ALIGN, Math.floor(BLOCK_BYTES / (cols * 4) / ROW_ALIGN) * ROW_ALIGN);
      // Read blocks k + 1 .. k + readAhead while block k is converted and written (at most readAhead + 1 blocks of raw bytes in flight).
      const ahead: Promise<RawRows>[] = [];
      let nextRow = 0;
      const readMore = () => {
        for (; ahead.length < readAhead && nextRow < pl.rows; nextRow += blockRows) {
          const p = fetchRows(source, recipe, cols, pl.rowStart + nextRow, Math.min(blockRows, pl.rows - nextRow));
          p.catch(() => undefined); // surfaced when awaited
          ahead.push(p);
        }
      };
      readMore();
      for (let r = 0; r < pl.rows; r += blockRows) {
        if (signal?.aborted) {
          await Promise.all(ahead.map((p) => p.catch(() => undefined)));
          throw new AbortedError('loading weights was aborted');
        }
        const n = Math.min(blockRows, pl.rows - r);
        const raw: RawRows = await ahead.shift()!;
        readMore();
        inspect?.(raw);
        const elemStart = r * cols;
        if (fmt === 'f16') {
          const h = new Uint16Array(n * cols);
          convertRows(raw, h, onBytes);
          writeBuffer(ctx, part.data, elemStart * 2, h);
          await onWritten(h.byteLength);
        } else if ((fmt === 'q8' || fmt === 'q4') && quantizer?.accepts(raw.pieces, n * cols, fmt, layout.groupSize)) {
          await quantizer.run(
            raw.pieces,
            n * cols,
            fmt,
            layout.groupSize,
            part.data,
            part.scales!,
            fmt === 'q8' ? elemStart / 4 : elemStart / 8,
            elemStart / layout.groupSize / 2,
          );
          for (const p of raw.pieces) onBytes(p.entry.file, p.bytes.byteLength);
          await onWritten(raw.pieces.reduce((a, p) => a + p.bytes.byteLength, 0));
        } else {
          const f = new Float32Array(n * cols);
          convertRows(raw, f, onBytes);
          if (fmt === 'f32') {
            writeBuffer(ctx, part.data, elemStart * 4, f);
            await onWritten(f.byteLength);
          } else {
            const q = fmt === 'q8' ? fastQuantizeQ8(f, cols, layout.groupSize) : fastQuantizeQ4(f, cols, layout.groupSize);
            writeBuffer(ctx, part.data, fmt === 'q8' ? elemStart : elemStart / 2, q.data);
            writeBuffer(ctx, part.scales!, (elemStart / layout.groupSize) * 2, q.scales);
            await onWritten(q.data.byteLength + q.scales.byteLength);
          }
        }
      }
    }
    return { name: recipe.name, format: fmt, shape: recipe.shape.slice(), groupSize: layout.groupSize, parts };
  } catch (e) {
    for (const p of parts) {
      releaseBuffer(ctx, p.data);
      releaseBuffer(ctx, p.scales);
    }
    throw e;
  }
}
