/**
 * Issue 20, failure 4: the PyTorch zip entry count is capped, checked in the
 * end-of-central-directory record and by walking the directory's headers
 * (the 16-bit count wraps) before zip.js allocates anything per entry; the
 * message names the number and the cap.
 */
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../src/errors.ts';
import { MAX_ZIP_ENTRIES, openZip } from '../../src/loader/pytorch/zip.ts';
import { memSource, zipStored, type ZipItem } from './helpers.ts';

function items(n: number): ZipItem[] {
  const empty = new Uint8Array(0);
  return Array.from({ length: n }, (_, i) => ({ name: `a/${i}`, data: empty }));
}

/**
 * An archive of `n` empty entries written straight into one buffer: a central
 * directory (fixed 8-byte names) and its end records; local headers are never
 * reached. `zip64`: exact count in the zip64 record; else the 16-bit count wraps.
 */
function directoryOnlyZip(n: number, zip64: boolean): Uint8Array {
  const nameLen = 8;
  const cdBytes = n * (46 + nameLen);
  const out = new Uint8Array(cdBytes + (zip64 ? 76 : 0) + 22);
  const dv = new DataView(out.buffer);
  for (let i = 0, o = 0; i < n; i++, o += 46 + nameLen) {
    dv.setUint32(o, 0x02014b50, true);
    dv.setUint16(4 + o, 20, true);
    dv.setUint16(6 + o, 20, true);
    dv.setUint16(28 + o, nameLen, true);
    const name = i.toString(16).padStart(nameLen, '0');
    for (let k = 0; k < nameLen; k++) out[o + 46 + k] = name.charCodeAt(k);
  }
  let e = cdBytes;
  if (zip64) {
    dv.setUint32(e, 0x06064b50, true);
    dv.setBigUint64(e + 4, 44n, true);
    dv.setBigUint64(e + 24, BigInt(n), true);
    dv.setBigUint64(e + 32, BigInt(n), true);
    dv.setBigUint64(e + 40, BigInt(cdBytes), true);
    dv.setBigUint64(e + 48, 0n, true);
    dv.setUint32(e + 56, 0x07064b50, true);
    dv.setBigUint64(e + 64, BigInt(cdBytes), true);
    dv.setUint32(e + 72, 1, true);
    e += 76;
  }
  dv.setUint32(e, 0x06054b50, true);
  dv.setUint16(e + 8, zip64 ? 0xffff : n & 0xffff, true);
  dv.setUint16(e + 10, zip64 ? 0xffff : n & 0xffff, true);
  dv.setUint32(e + 12, zip64 ? 0xffffffff : cdBytes, true);
  dv.setUint32(e + 16, zip64 ? 0xffffffff : 0, true);
  return out;
}

describe('zip entry count', () => {
  const many = MAX_ZIP_ENTRIES + 10;

  it('zip64 archive declaring more entries than the cap: refused naming both numbers', async () => {
    const zip = directoryOnlyZip(many, true);
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const err = await openZip(memSource({ 'pytorch_model.bin': zip }), 'pytorch_model.bin').then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toContain(`has ${many} entries, above the limit of ${MAX_ZIP_ENTRIES}`);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(200 * 1024 * 1024);
  });

  it('classic archive whose 16-bit count wrapped: the directory walk still refuses it', async () => {
    const zip = directoryOnlyZip(many, false); // the EOCD says many % 65536
    const err = await openZip(memSource({ 'pytorch_model.bin': zip }), 'pytorch_model.bin').then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toContain(`more than ${MAX_ZIP_ENTRIES} entries, above the limit of ${MAX_ZIP_ENTRIES}`);
  });

  it('an archive with a few entries opens as before', async () => {
    const zip = zipStored(items(5));
    const z = await openZip(memSource({ 'pytorch_model.bin': zip }), 'pytorch_model.bin');
    expect(z.entries.size).toBe(5);
  });
});
