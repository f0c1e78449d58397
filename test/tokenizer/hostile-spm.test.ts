/**
 * Issue 20, failure 2: converting tokenizer.model is near-linear in the file's
 * size. A 50,000- and a 200,000-character piece, and a chain of nested pieces
 * (a, aa, aaa, ...), convert in bounded time or end in a TokenizerError naming
 * the limit; the conversion's work grows linearly with the file.
 */
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { sentencePieceToJson } from '../../src/tokenizer/convert.ts';
import { tokenizerFromSentencePiece } from '../helpers/tokenizer.ts';
import { parseSentencePiece } from '../../src/tokenizer/sentencepiece.ts';
import { bpeModel } from './spm-writer.ts';

/** Conversion time: wall ms, and this process's CPU ms (less disturbed by a busy machine). */
function convert(bytes: Uint8Array): { ms: number; cpuMs: number; merges?: number; err?: unknown } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const done = () => {
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
  };
  try {
    const json = sentencePieceToJson(parseSentencePiece(bytes, 'tokenizer.model'), 'tokenizer.model');
    return { ...done(), merges: (json.model.merges as unknown[]).length };
  } catch (err) {
    return { ...done(), err };
  }
}

describe('tokenizer.model conversion is near-linear', () => {
  it('one 50,000-character piece and one 200,000-character piece convert fast', async () => {
    // Before: 102 s for 50,000 characters, 200,000 hung. Bounds here are loose (a loaded machine);
    // the ratio is the point: 4x the characters must cost far less than the 16x of a quadratic step.
    const ms: number[] = [];
    for (const n of [50_000, 200_000]) {
      const long = 'ab'.repeat(n / 2);
      const bytes = bpeModel(['\u2581', 'a', 'b', 'ab', long]);
      // Best of three (the machine may be busy).
      const runs = [convert(bytes), convert(bytes), convert(bytes)];
      const r = runs[0];
      ms.push(Math.min(...runs.map((x) => x.cpuMs)));
      expect(r.err).toBeUndefined();
      expect(r.ms).toBeLessThan(10_000);
      // Only 'ab' splits into two symbols; the long piece has no split (its halves are not pieces).
      expect(r.merges).toBe(1);
      // The whole tokenizer loads and encodes.
      const tok = await tokenizerFromSentencePiece(bytes, { name: `long-${n}` });
      expect(tok.decode(tok.encode('abab'))).toBe('abab');
    }
    console.log(`one long piece: 50,000 chars ${ms[0].toFixed(0)} ms CPU, 200,000 chars ${ms[1].toFixed(0)} ms CPU`);
    expect(ms[1]).toBeLessThan(10 * Math.max(ms[0], 30)); // a floor: tiny timings are mostly noise
  });

  it('a piece splitting everywhere (aaaa... with every shorter run a piece) is bounded by the merge budget', () => {
    // Chain a, aa, ..., a^k: piece a^j has j-1 splits of j characters each (~k^3/3 characters of merges
    // for a file of ~k^2/2 bytes). Small chains convert; long ones end in a TokenizerError, fast.
    const chain = (k: number) => bpeModel(Array.from({ length: k }, (_, j) => 'a'.repeat(j + 1)));
    const small = convert(chain(100));
    expect(small.err).toBeUndefined();
    expect(small.merges).toBe((100 * 99) / 2);
    const big = chain(1500); // ~1.1 MB file, ~1.1e9 characters of merges
    const r = convert(big);
    expect(r.err).toBeInstanceOf(TokenizerError);
    expect((r.err as Error).message).toMatch(/limit: 16 per byte/);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('time grows about linearly with the file: 4x the pieces, well under 16x the time', () => {
    const model = (k: number) => bpeModel(Array.from({ length: k }, (_, j) => `p${j.toString(36)}x${'y'.repeat(j % 50)}`));
    const t1 = convert(model(2_500));
    const t4 = convert(model(10_000));
    expect(t1.err).toBeUndefined();
    expect(t4.err).toBeUndefined();
    console.log(`conversion: 2,500 pieces ${t1.cpuMs.toFixed(0)} ms CPU, 10,000 pieces ${t4.cpuMs.toFixed(0)} ms CPU`);
    expect(t4.cpuMs).toBeLessThan(16 * Math.max(t1.cpuMs, 20));
  });
});
