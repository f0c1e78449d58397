/**
 * Issue 20, lower severity: a flipped bit in a PyTorch storage fails its
 * zip CRC-32 (checked while the bytes stream to the GPU, pieces combined in
 * any order); NaN/Inf weights are counted while uploading and refused,
 * naming the tensor, unless allowNonFinite is set. Real WebGPU.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../src/errors.ts';
import { countNonFinite, crc32, crc32Combine } from '../../src/loader/integrity.ts';
import { readModel } from '../../src/loader/model.ts';
import { readSafetensorsHeader } from '../../src/loader/safetensors.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { loadWeights, releaseWeights } from '../../src/loader/weights.ts';
import { Rng } from '../../src/util/rng.ts';
import { FIXTURES, testGpu, liveBytes } from '../helpers/gpu.ts';

function copyDir(from: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sieve-integrity-'));
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(dir, f));
  return dir;
}

describe('CRC-32 helpers', () => {
  it('crc32 is the zip one, and combining pieces equals hashing the whole', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    const rng = new Rng(5);
    for (let t = 0; t < 50; t++) {
      const a = new Uint8Array(rng.int(200)).map(() => rng.int(256));
      const b = new Uint8Array(rng.int(5000)).map(() => rng.int(256));
      const ab = new Uint8Array(a.length + b.length);
      ab.set(a);
      ab.set(b, a.length);
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(ab));
    }
  });

  it('counts NaN and Inf by exponent bits in F32, F16 and BF16', () => {
    expect(countNonFinite('F32', new Uint8Array(new Float32Array([1, NaN, Infinity, -Infinity, 3.4e38]).buffer))).toBe(3);
    expect(countNonFinite('F16', new Uint8Array(new Uint16Array([0x3c00, 0x7c00, 0xfc00, 0x7e00, 0x7bff]).buffer))).toBe(3);
    expect(countNonFinite('BF16', new Uint8Array(new Uint16Array([0x3f80, 0x7f80, 0xff80, 0x7fc0, 0x7f7f]).buffer))).toBe(3);
    expect(countNonFinite('I32', new Uint8Array(16).fill(0xff))).toBe(0);
  });
});

describe('while loading (real WebGPU)', () => {
  it("the fixtures' storages are all verified as they load (single and sharded, fused QKV read in pieces)", async () => {
    const ctx = await testGpu();
    for (const d of ['single-fp16', 'sharded-bf16']) {
      const src = nodeSource(`${FIXTURES}pytorch/${d}`);
      const m = await readModel(src);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f16' });
      // Storages of the tensors the model uses (dropped ones, e.g. rotary inv_freq, are never read).
      const storages = new Set(m.plan.recipes.flatMap((r) => r.segments.map((g) => `${g.entry.file}:${g.entry.storage?.entry}`)));
      expect(w.storagesVerified, d).toBe(storages.size);
      releaseWeights(ctx, w.values());
    }
  });

  it('a flipped bit in a PyTorch storage is a ModelFormatError naming the zip entry; the intact file loads', async () => {
    const ctx = await testGpu();
    const dir = copyDir(`${FIXTURES}pytorch/single-fp16`);
    try {
      const src = nodeSource(dir);
      const m = await readModel(src);
      const ok = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f32' });
      expect(ok.storagesVerified).toBeGreaterThan(0);
      releaseWeights(ctx, ok.values());
      // Flip a low mantissa bit of the last element of the largest tensor (the value stays finite).
      const big = m.checkpoint.entries.reduce((a, b) => (b.byteLength > a.byteLength ? b : a));
      const bytes = readFileSync(join(dir, big.file));
      bytes[big.offset + big.byteLength - 2] ^= 0x01;
      writeFileSync(join(dir, big.file), bytes);
      const before = liveBytes(ctx);
      const m2 = await readModel(nodeSource(dir));
      const err = await loadWeights(ctx, nodeSource(dir), m2.spec, m2.plan, { format: 'f16' }).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ModelFormatError);
      expect((err as Error).message).toMatch(/zip entry '.*data\/\d+' \(storage of tensor '.+'\) fails its CRC-32/);
      expect(liveBytes(ctx)).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a NaN in a weight is refused naming the tensor; allowNonFinite loads it with a note', async () => {
    const ctx = await testGpu();
    const dir = copyDir(`${FIXTURES}stories260k`);
    try {
      const h = await readSafetensorsHeader(nodeSource(dir), 'model.safetensors');
      const t = h.entries.find((e) => e.dtype === 'F32' && e.byteLength >= 64)!;
      const bytes = readFileSync(join(dir, 'model.safetensors'));
      new DataView(bytes.buffer, bytes.byteOffset).setFloat32(t.offset + 4, NaN, true);
      new DataView(bytes.buffer, bytes.byteOffset).setFloat32(t.offset + 8, -Infinity, true);
      writeFileSync(join(dir, 'model.safetensors'), bytes);
      const src = nodeSource(dir);
      const m = await readModel(src);
      const before = liveBytes(ctx);
      const err = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f32' }).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ModelFormatError);
      expect((err as Error).message).toContain(`tensor '${t.name}' holds 2 non-finite values`);
      expect(liveBytes(ctx)).toBe(before);
      const w = await loadWeights(ctx, src, m.spec, m.plan, { format: 'f32', allowNonFinite: true });
      expect(w.notes.some((n) => n.includes(`'${t.name}' holds 2 non-finite values`))).toBe(true);
      releaseWeights(ctx, w.values());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
