/**
 * Issue 20, failures 5 and 6: deep nesting in a safetensors header is a
 * ModelFormatError (no recursion anywhere, error messages included), and the
 * tensor count is capped: a 100 MiB header of 1.8M empty tensors fails after
 * reading a few MiB of it, in well under a second.
 */
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../src/errors.ts';
import { brief, MAX_HEADER_DEPTH, MAX_TENSORS, parseHeader, readSafetensorsHeader } from '../../src/loader/safetensors.ts';
import type { FileSource } from '../../src/loader/source.ts';
import { memSource, rawSafetensors } from './mem-source.ts';

async function fails(file: Uint8Array, re: RegExp): Promise<ModelFormatError> {
  const err = await readSafetensorsHeader(memSource({ 'model.safetensors': file }), 'model.safetensors').then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  expect((err as Error).message).toMatch(re);
  return err as ModelFormatError;
}

describe('no recursion on header structure', () => {
  for (const depth of [65, 4102, 100_000]) {
    it(`nesting ${depth} deep is a ModelFormatError naming the limit`, async () => {
      const header = `{"t":{"dtype":"F32","shape":${'['.repeat(depth)}${']'.repeat(depth)},"data_offsets":[0,0]}}`;
      await fails(rawSafetensors(header, 0), new RegExp(`nests deeper than ${MAX_HEADER_DEPTH} levels`));
      // The same through parseHeader (used on in-memory files).
      const json = new TextEncoder().encode(header);
      expect(() => parseHeader('x.safetensors', json, 8 + json.byteLength)).toThrow(ModelFormatError);
    });
  }

  it('a nested shape within the depth limit is reported without recursion', async () => {
    await fails(
      rawSafetensors({ t: { dtype: 'F32', shape: [[[[1]]]], data_offsets: [0, 4] } }, 4),
      /shape \[\[list of 1\]\] is not a list of non-negative integers/,
    );
    // brief() never recurses, whatever it is given.
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(brief(deep)).toBe('[[list of 1]]');
    expect(brief('x'.repeat(1000)).length).toBeLessThan(100);
  });

  it('escaped quotes and brackets inside names do not confuse the scan', async () => {
    const h = { 'a\\"[[[{': { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, __metadata__: { k: ']]]}}}"' } };
    const r = await readSafetensorsHeader(memSource({ 'm.safetensors': rawSafetensors(h, 4) }), 'm.safetensors');
    expect(r.entries.map((e) => e.name)).toEqual(['a\\"[[[{']);
    await fails(
      rawSafetensors('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', 0),
      /duplicate tensor 'a'/,
    );
  });
});

/**
 * A safetensors file whose 100 MiB header is `count` empty tensors, made on
 * demand for each read (never held whole); records the bytes read.
 */
function hugeHeaderSource(count: number): FileSource & { bytesRead: number } {
  const entry = (i: number) => `"${String(i).padStart(7, '0')}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},`;
  const width = entry(0).length;
  const headerBytes = 100 * 1024 * 1024;
  const body = 1 + count * width; // '{' + entries (the last comma becomes '}' padding below)
  expect(body).toBeLessThanOrEqual(headerBytes);
  let lastI = -1;
  let lastS = '';
  const byteAt = (k: number): number => {
    if (k === 0) return 0x7b;
    if (k < body) {
      const i = Math.floor((k - 1) / width);
      if (i !== lastI) [lastI, lastS] = [i, entry(i)];
      const s = lastS;
      const c = s.charCodeAt((k - 1) % width);
      return i === count - 1 && (k - 1) % width === width - 1 ? 0x7d : c;
    }
    return 0x20;
  };
  const src = {
    name: 'huge',
    bytesRead: 0,
    async has() {
      return true;
    },
    async size() {
      return 8 + headerBytes;
    },
    async read(_p: string, offset: number, length: number) {
      src.bytesRead += length;
      const out = new Uint8Array(length);
      for (let j = 0; j < length; j++) {
        const k = offset + j;
        out[j] = k < 8 ? (k === 0 ? headerBytes & 0xff : k < 4 ? (headerBytes >>> (8 * k)) & 0xff : 0) : byteAt(k - 8);
      }
      return out;
    },
    async text() {
      return '';
    },
  };
  return src;
}

describe('tensor count is capped', () => {
  it('a 100 MiB header of 1.8M empty tensors fails fast, having read a few MiB', async () => {
    const src = hugeHeaderSource(1_800_000);
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const err = await readSafetensorsHeader(src, 'model.safetensors').then(
      () => undefined,
      (e) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toContain(`more than ${MAX_TENSORS} tensors`);
    expect((err as Error).message).toContain(`limit ${MAX_TENSORS}`);
    expect(src.bytesRead).toBeLessThan(16 * 1024 * 1024);
    expect(ms).toBeLessThan(5000); // generating the bytes in JS dominates; the scan is a few ms per MiB
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(256 * 1024 * 1024);
    console.log(`1.8M-tensor header: refused after reading ${(src.bytesRead / 2 ** 20).toFixed(1)} MiB in ${ms.toFixed(0)} ms`);
  });

  it('a header of many (20,000) tensors under the cap still parses, read in 1 MiB chunks', async () => {
    const header: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) header[`model.layers.${i}.weight`] = { dtype: 'F32', shape: [1], data_offsets: [4 * i, 4 * i + 4] };
    const r = await readSafetensorsHeader(memSource({ 'm.safetensors': rawSafetensors(header, 80_000) }), 'm.safetensors');
    expect(r.entries.length).toBe(20_000);
  });
});
