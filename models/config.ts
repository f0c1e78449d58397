/**
 * Shared helpers of the family modules: config.json field validation (each
 * field read once, by its own name; a ConfigError names the field) and the
 * checkpoint-name -> canonical-name recipes the weight loader consumes.
 */
import { ConfigError, ModelFormatError } from '../src/errors.ts';
import type { CanonicalTensor, TensorEntry } from './spec.ts';

export type Config = Record<string, unknown>;

interface NumOpts {
  int?: boolean;
  min?: number;
  max?: number;
  positive?: boolean;
}

/**
 * Sane ranges of numeric config fields (issue 20): values outside them load
 * and then produce garbage (rms_norm_eps 1e308 zeroes every activation,
 * rope_theta 1e-300 makes every angle infinite), so they are refused.
 */
export const SANE = {
  /** Norm epsilons: real models use 1e-5 or 1e-6. */
  eps: { min: 1e-12, max: 0.1 },
  /** Rotary base: 10,000 to 1e6 in practice (5e5 Llama 3, 1e6 InternLM2.5). */
  ropeTheta: { min: 1, max: 1e10 },
  /** ChatGLM's rope_ratio multiplies the base 10,000 (50 and 500 exist). */
  ropeRatio: { min: 1e-4, max: 1e6 },
  /** Positions: up to 16M. */
  positions: { max: 1 << 24 },
  /** Vocabulary: up to 4M entries (tokenizer.json's own limit). */
  vocab: { max: 4_000_000 },
  /** rope_scaling factor. */
  ropeFactor: { max: 1024 },
} as const;

function where(family: string, field: string): string {
  return `config.json (${family}): field '${field}'`;
}

/** A required number. */
export function num(c: Config, family: string, field: string, o: NumOpts = {}): number {
  const v = c[field];
  if (v === undefined || v === null) throw new ConfigError(`${where(family, field)} is missing`, { field });
  return checkNum(v, family, field, o);
}

/** An optional number with a default. */
export function optNum(c: Config, family: string, field: string, dflt: number, o: NumOpts = {}): number {
  const v = c[field];
  return v === undefined || v === null ? dflt : checkNum(v, family, field, o);
}

function checkNum(v: unknown, family: string, field: string, o: NumOpts): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ConfigError(`${where(family, field)} must be a finite number, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`, { field });
  if (o.int && !Number.isSafeInteger(v)) throw new ConfigError(`${where(family, field)} must be an integer, got ${v}`, { field });
  if (o.positive && !(v > 0)) throw new ConfigError(`${where(family, field)} must be > 0, got ${v}`, { field });
  if (o.min !== undefined && v < o.min) throw new ConfigError(`${where(family, field)} must be >= ${o.min}, got ${v}`, { field });
  if (o.max !== undefined && v > o.max) throw new ConfigError(`${where(family, field)} must be <= ${o.max}, got ${v} (outside the sane range)`, { field });
  return v;
}

export function optBool(c: Config, family: string, field: string, dflt: boolean): boolean {
  const v = c[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`${where(family, field)} must be true or false, got ${JSON.stringify(v)}`, { field });
  return v;
}

/** eos_token_id: a number or a list of numbers. */
export function tokenIds(c: Config, family: string, field: string): number[] {
  const v = c[field];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list)
    if (!Number.isSafeInteger(x) || (x as number) < 0)
      throw new ConfigError(`${where(family, field)} must be a token id or a list of them, got ${JSON.stringify(v)}`, { field });
  return list as number[];
}

export function optTokenId(c: Config, family: string, field: string): number | undefined {
  const ids = tokenIds(c, family, field);
  return ids.length ? ids[0] : undefined;
}

export function configError(family: string, field: string, why: string): ConfigError {
  return new ConfigError(`${where(family, field)} ${why}`, { field });
}

/** Rows [rowStart, rowStart + rows) of a checkpoint tensor (a vector counts as [n, 1]). */
export interface RowSegment {
  entry: TensorEntry;
  rowStart: number;
  rows: number;
}

/**
 * How one canonical tensor is built: the segments' rows concatenated in
 * order (QKV unpacking and gate/up concatenation are just segment lists).
 */
export interface TensorRecipe {
  name: CanonicalTensor;
  /** Canonical shape: [out, in] for matrices, [n] for vectors. */
  shape: number[];
  segments: RowSegment[];
}

export interface WeightPlan {
  recipes: TensorRecipe[];
  /** Checkpoint tensors deliberately not loaded (e.g. rotary inv_freq buffers). */
  dropped: string[];
}

/**
 * Looks up checkpoint tensors by name for one family, checking shapes
 * against the config and that every checkpoint tensor is used or dropped.
 */
export class TensorTable {
  private byName = new Map<string, TensorEntry>();
  private used = new Set<string>();
  constructor(
    private family: string,
    entries: TensorEntry[],
    private where: string,
  ) {
    for (const e of entries) this.byName.set(e.name, e);
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  /** The tensor `name` with the shape the config implies. */
  get(name: string, shape: number[]): TensorEntry {
    const e = this.byName.get(name);
    if (!e) throw new ModelFormatError(this.where, `missing tensor '${name}' (${this.family} needs it)`, { tensor: name });
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new ConfigError(`${e.file}: tensor '${name}' has shape [${e.shape}] but config.json implies [${shape}]`, {
        tensor: name,
        file: e.file,
        shape: e.shape,
        expected: shape,
      });
    }
    if (!['F32', 'F16', 'BF16'].includes(e.dtype)) {
      throw new ModelFormatError(e.file, `tensor '${name}' has dtype ${e.dtype}; weights must be F32, F16 or BF16`, { tensor: name });
    }
    this.used.add(name);
    return e;
  }
  /** A canonical tensor that is the checkpoint tensor `name` whole. */
  recipe(canonical: CanonicalTensor, name: string, shape: number[]): TensorRecipe {
    return { name: canonical, shape, segments: [whole(this.get(name, shape))] };
  }
  drop(name: string): boolean {
    if (!this.byName.has(name)) return false;
    this.used.add(name);
    return true;
  }
  /** Throws on a checkpoint tensor that no table entry names. */
  checkAllUsed(): void {
    for (const [name, e] of this.byName) {
      if (!this.used.has(name))
        throw new ModelFormatError(e.file, `unexpected tensor '${name}' for the ${this.family} family (not in its weight table)`, { tensor: name });
    }
  }
}

export function whole(entry: TensorEntry): RowSegment {
  return { entry, rowStart: 0, rows: entry.shape[0] };
}
