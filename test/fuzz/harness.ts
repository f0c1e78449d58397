/**
 * Seeded fuzz runner for the hostile-input suites (issue 20): runs `cases`
 * cases, each drawn from its own seed, and asserts that every case ends in a
 * result or a typed SieveError (an untyped throw fails the suite, naming the
 * case and seed), within a per-case time bound and with the heap below a
 * bound after each case. Returns counts for the suite to check its inputs
 * exercised both outcomes.
 */
import { expect } from 'vitest';
import { SieveError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';

export interface FuzzBounds {
  /** Wall time one case may take. */
  perCaseMs: number;
  /** Heap growth over the suite's start that no case may leave behind (MiB). */
  heapMiB: number;
}

export interface FuzzStats {
  cases: number;
  ok: number;
  errors: Map<string, number>;
  slowestMs: number;
  maxHeapMiB: number;
  totalMs: number;
}

export async function runFuzz(
  name: string,
  cases: number,
  seed: number,
  bounds: FuzzBounds,
  body: (rng: Rng, i: number) => unknown | Promise<unknown>,
): Promise<FuzzStats> {
  const heap0 = process.memoryUsage().heapUsed;
  const stats: FuzzStats = { cases, ok: 0, errors: new Map(), slowestMs: 0, maxHeapMiB: 0, totalMs: 0 };
  const t00 = performance.now();
  const cpu0 = process.cpuUsage();
  const messages = new Map<string, number>();
  for (let i = 0; i < cases; i++) {
    const caseSeed = (seed * 1_000_003 + i) >>> 0;
    const rng = new Rng(caseSeed);
    const t0 = performance.now();
    let err: unknown;
    try {
      await body(rng, i);
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    if (err !== undefined) {
      if (!(err instanceof SieveError)) {
        throw new Error(`${name}: case ${i} (seed ${caseSeed}) threw an untyped ${(err as Error)?.name}: ${(err as Error)?.message}`);
      }
      stats.errors.set(err.name, (stats.errors.get(err.name) ?? 0) + 1);
      const key = err.message.replace(/\d+/g, 'N').slice(0, 90);
      messages.set(key, (messages.get(key) ?? 0) + 1);
    } else stats.ok++;
    stats.slowestMs = Math.max(stats.slowestMs, ms);
    expect(ms, `${name}: case ${i} (seed ${caseSeed}) took ${ms.toFixed(0)} ms`).toBeLessThan(bounds.perCaseMs);
    if (i % 16 === 0 || ms > 20) {
      const heapMiB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
      stats.maxHeapMiB = Math.max(stats.maxHeapMiB, heapMiB);
      expect(heapMiB, `${name}: heap after case ${i} (seed ${caseSeed})`).toBeLessThan(bounds.heapMiB);
    }
  }
  stats.totalMs = performance.now() - t00;
  const cpu = process.cpuUsage(cpu0);
  const errs = [...stats.errors].map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(
    `${name}: ${cases} cases in ${stats.totalMs.toFixed(0)} ms (${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU): ${stats.ok} ok, errors: ${errs || 'none'}; slowest case ${stats.slowestMs.toFixed(0)} ms, heap +${stats.maxHeapMiB.toFixed(0)} MiB at most`,
  );
  if (process.env.FUZZ_VERBOSE)
    console.log(
      [...messages]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([k, v]) => `${v} ${k}`)
        .join('\n'),
    );
  return stats;
}

/** A random element. */
export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

/** Byte-level mutations of a valid file: flips, overwrites, inserts, deletes, truncation, duplicated ranges. */
export function mutateBytes(rng: Rng, src: Uint8Array): Uint8Array {
  let b = src.slice();
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const at = rng.int(Math.max(1, b.length));
    switch (rng.int(6)) {
      case 0:
        b[at] ^= 1 << rng.int(8);
        break;
      case 1:
        b[at] = pick(rng, [0, 0x7f, 0x80, 0xff, 0x0a, 0x08, 0x12, 0x1a, 0x22]);
        break;
      case 2: {
        // insert random bytes
        const ins = new Uint8Array(1 + rng.int(8)).map(() => rng.int(256));
        const out = new Uint8Array(b.length + ins.length);
        out.set(b.subarray(0, at));
        out.set(ins, at);
        out.set(b.subarray(at), at + ins.length);
        b = out;
        break;
      }
      case 3: {
        // delete a range
        const len = Math.min(1 + rng.int(16), b.length - at);
        const out = new Uint8Array(b.length - len);
        out.set(b.subarray(0, at));
        out.set(b.subarray(at + len), at);
        b = out;
        break;
      }
      case 4:
        b = b.slice(0, at);
        break;
      default: {
        // duplicate a range
        const len = Math.min(b.length - at, 1 + rng.int(64));
        const out = new Uint8Array(b.length + len);
        out.set(b.subarray(0, at + len));
        out.set(b.subarray(at, at + len), at + len);
        out.set(b.subarray(at + len), at + 2 * len);
        b = out;
      }
    }
  }
  return b;
}

/** Random text with specials, controls, surrogates and long runs. */
export function randomText(rng: Rng, maxLen = 64): string {
  const parts = [
    'a',
    'ab',
    ' ',
    '  ',
    '\n',
    '\t',
    '你好',
    '😀',
    '\u0000',
    '\ud800',
    '<s>',
    '</s>',
    '<|im_start|>',
    '<|im_end|>',
    '▁',
    'é',
    'e\u0301',
    '[gMASK]',
    'sop',
    '{{',
    '{%',
    '%}',
    '}}',
    '\\',
    '"',
  ];
  let s = '';
  while (s.length < maxLen && rng.next() < 0.9) s += rng.next() < 0.7 ? pick(rng, parts) : String.fromCharCode(rng.int(0x3000));
  return s.slice(0, maxLen);
}
