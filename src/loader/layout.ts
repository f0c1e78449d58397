/**
 * Where each canonical tensor goes on the GPU: its format (vectors always
 * f32; matrices the requested format, with a documented fallback when the
 * quantization group does not divide the row), and its row split into parts
 * that fit maxStorageBufferBindingSize. Shared by the memory plan and by
 * loadWeights, so the plan's bytes are exactly what gets allocated.
 */
import { GpuLimitError, InvalidOptionError } from '../errors.ts';
import { packedBytes, scaleBytes, type WeightFormat } from './formats.ts';

export type LoadFormat = 'f32' | 'f16' | 'q8' | 'q4';
export const Q4_GROUPS = [32, 64, 128];

/** Rows per part and per upload block are multiples of this, so every packed offset is word aligned. */
export const ROW_ALIGN = 8;

export interface FormatOptions {
  /** Matrix format (default 'f16'). */
  format?: LoadFormat;
  /** q4: 32 | 64 | 128 (default 32). q8: a divisor of each row; default 0 = per output channel. */
  groupSize?: number;
  /** Largest bytes of one part (default: the adapter's maxStorageBufferBindingSize). */
  maxPartBytes?: number;
}

export interface PartLayout {
  rowStart: number;
  rows: number;
  /** Bytes createBuffer will allocate (4-aligned, at least 4). */
  dataBytes: number;
  scaleBytes: number;
}

export interface WeightLayout {
  name: string;
  shape: number[];
  format: WeightFormat;
  groupSize: number;
  parts: PartLayout[];
  /** Why the format differs from the requested one, if it does. */
  note?: string;
}

const alloc = (n: number) => Math.max(4, Math.ceil(n / 4) * 4);

export function checkFormatOptions(o: FormatOptions): void {
  const f = o.format ?? 'f16';
  if (!['f32', 'f16', 'q8', 'q4'].includes(f)) throw new InvalidOptionError('format', `'${f}' is not one of f16, q8, q4, f32`);
  const g = o.groupSize;
  if (f === 'q4' && g !== undefined && !Q4_GROUPS.includes(g)) throw new InvalidOptionError('groupSize', `q4 groups are 32, 64 or 128, got ${g}`);
  if (f === 'q8' && g !== undefined && !(Number.isSafeInteger(g) && g >= 0))
    throw new InvalidOptionError('groupSize', `q8 group must be a positive integer or 0 (per channel), got ${g}`);
}

/** Format and group of one canonical tensor. */
export function chooseFormat(shape: number[], o: FormatOptions): { format: WeightFormat; groupSize: number; note?: string } {
  if (shape.length === 1) return { format: 'f32', groupSize: 0 };
  const cols = shape[1];
  const f = o.format ?? 'f16';
  if (f === 'f32' || f === 'f16') return { format: f, groupSize: 0 };
  if (f === 'q8') {
    const g = o.groupSize || cols;
    if (cols % g === 0) return { format: 'q8', groupSize: g };
    return { format: 'q8', groupSize: cols, note: `q8 group ${g} does not divide the row of ${cols}: per-channel scales` };
  }
  const want = o.groupSize ?? 32;
  const g = [want, ...Q4_GROUPS.filter((x) => x < want).reverse()].find((x) => cols % x === 0);
  if (g !== undefined) return { format: 'q4', groupSize: g, note: g !== want ? `q4 group ${want} does not divide the row of ${cols}: group ${g}` : undefined };
  return { format: 'q8', groupSize: cols, note: `no q4 group (32/64/128) divides the row of ${cols}: q8 per-channel` };
}

/** Bytes of one row in `format` (exact; rows are multiples of ROW_ALIGN so this is word aligned per block). */
function rowBytes(format: WeightFormat, cols: number): number {
  return { f32: 4, f16: 2, q8: 1, q4: 0.5 }[format] * cols;
}

/** Splits [rows, cols] in `format` into parts of at most `maxPartBytes`. */
export function layoutWeight(name: string, shape: number[], format: WeightFormat, groupSize: number, maxPartBytes: number, note?: string): WeightLayout {
  const rows = shape[0];
  const cols = shape.length === 1 ? 1 : shape[1];
  const perRow = rowBytes(format, cols);
  let rowsPerPart = rows;
  if (perRow * rows > maxPartBytes) {
    rowsPerPart = Math.floor(maxPartBytes / perRow / ROW_ALIGN) * ROW_ALIGN;
    if (rowsPerPart < ROW_ALIGN) {
      throw new GpuLimitError(
        `tensor '${name}' [${shape}] in ${format}: ${ROW_ALIGN} rows need ${perRow * ROW_ALIGN} bytes, more than this GPU's storage binding limit of ${maxPartBytes} bytes`,
        { tensor: name, maxStorageBufferBindingSize: maxPartBytes },
      );
    }
  }
  const parts: PartLayout[] = [];
  for (let r = 0; r < rows || (rows === 0 && parts.length === 0); r += rowsPerPart) {
    const n = Math.min(rowsPerPart, rows - r);
    parts.push({
      rowStart: r,
      rows: n,
      dataBytes: alloc(packedBytes(format, n * cols)),
      scaleBytes: format === 'q8' || format === 'q4' ? alloc(scaleBytes(format, n * cols, groupSize)) : 0,
    });
    if (rows === 0) break;
  }
  return { name, shape, format, groupSize, parts, note };
}

export function layoutFor(name: string, shape: number[], o: FormatOptions, maxPartBytes: number): WeightLayout {
  const { format, groupSize, note } = chooseFormat(shape, o);
  return layoutWeight(name, shape, format, groupSize, maxPartBytes, note);
}

export function layoutBytes(l: WeightLayout): number {
  return l.parts.reduce((s, p) => s + p.dataBytes + p.scaleBytes, 0);
}
