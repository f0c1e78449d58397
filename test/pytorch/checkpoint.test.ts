/**
 * PyTorch .bin checkpoints: the fixtures (torch.save of the golden
 * chatglm2-tiny) give TensorEntry records whose bytes equal the golden
 * safetensors values; malformed archives give typed errors.
 */
import { existsSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MissingFileError, ModelFormatError, UnsafePickleError } from '../../src/errors.ts';
import { readPytorchBin, readPytorchCheckpoint } from '../../src/loader/pytorch/checkpoint.ts';
import { openZip } from '../../src/loader/pytorch/zip.ts';
import type { TensorEntry } from '../../src/loader/source.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { dirSource, entryValues, memSource, readBytes, readSafetensorsF32, unzipAll, zipStored, type ZipItem } from './helpers.ts';

const PT = `${FIXTURES}pytorch/`;
const golden = readSafetensorsF32(`${FIXTURES}golden/chatglm2-tiny/model.safetensors`);

async function compareWithGolden(dir: string, relTol: number): Promise<TensorEntry[]> {
  const src = dirSource(dir);
  const ck = await readPytorchCheckpoint(src);
  expect(new Set(ck.entries.map((e) => e.name))).toEqual(new Set(golden.keys()));
  for (const e of ck.entries) {
    const g = golden.get(e.name)!;
    expect(e.shape, e.name).toEqual(g.shape);
    const v = await entryValues(src, e);
    let maxErr = 0,
      maxRef = 0;
    for (let i = 0; i < v.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(v[i] - g.values[i]) / Math.max(Math.abs(g.values[i]), 1e-30));
      maxRef = Math.max(maxRef, Math.abs(g.values[i]));
    }
    expect(v.length, e.name).toBe(g.values.length);
    expect(maxErr, `${e.name}: max relative error`).toBeLessThanOrEqual(relTol);
    expect(maxRef, `${e.name} is not all zeros`).toBeGreaterThan(0);
  }
  return ck.entries;
}

describe('PyTorch .bin fixtures', () => {
  it('single-fp16 gives exactly the golden fp16 tensors, reading only directory, headers and data.pkl', async () => {
    const entries = await compareWithGolden(`${PT}single-fp16`, 0);
    const emb = entries.find((e) => e.name === 'transformer.embedding.word_embeddings.weight')!;
    expect(emb.dtype).toBe('F16');
    expect(emb.offset % 64).toBe(0); // torch aligns storages to 64 bytes
    // Index reading does not touch tensor data: bytes read well under the file size.
    const src = dirSource(`${PT}single-fp16`);
    await readPytorchCheckpoint(src);
    const readBytesTotal = src.reads.reduce((a, r) => a + r.length, 0);
    const size = statSync(`${PT}single-fp16/pytorch_model.bin`).size;
    expect(readBytesTotal).toBeLessThan(size * 0.3);
    expect(Math.max(...src.reads.map((r) => r.length))).toBeLessThanOrEqual(96 * 1024);
  });

  it('sharded-bf16 gives the golden tensors within bf16 precision', async () => {
    const entries = await compareWithGolden(`${PT}sharded-bf16`, 2 ** -8);
    expect(new Set(entries.map((e) => e.file))).toEqual(new Set(['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']));
    expect(entries.find((e) => e.name.endsWith('query_key_value.weight'))!.dtype).toBe('BF16');
  });

  it('malicious is refused naming posix.system, and nothing runs', async () => {
    const marker = '/tmp/pwned';
    const before = existsSync(marker) ? statSync(marker).mtimeMs : -1;
    const err = await readPytorchCheckpoint(dirSource(`${PT}malicious`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePickleError);
    expect((err as Error).message).toContain('posix.system');
    expect((err as UnsafePickleError).details.global).toBe('posix.system');
    expect(existsSync(marker) ? statSync(marker).mtimeMs : -1).toBe(before);
  });
});

describe('malformed archives', () => {
  let items: ZipItem[];
  const load = async (files: Record<string, Uint8Array | string>) => readPytorchCheckpoint(memSource(files));
  const fault = async (files: Record<string, Uint8Array | string>) =>
    load(files).then(
      () => undefined,
      (e: unknown) => e,
    );
  const getItems = async () => (items ??= await unzipAll(readBytes(`${PT}single-fp16/pytorch_model.bin`)));

  it('a rebuilt archive (our zip writer) reads back the same, plain and zip64', async () => {
    const it0 = await getItems();
    const ref = await readPytorchBin(dirSource(`${PT}single-fp16`), 'pytorch_model.bin');
    for (const zip64 of [false, true]) {
      const bin = zipStored(it0, { zip64 });
      const src = memSource({ 'pytorch_model.bin': bin });
      const got = await readPytorchBin(src, 'pytorch_model.bin');
      const zip = await openZip(src, 'pytorch_model.bin');
      expect([...zip.entries.values()].every((e) => e.zip64 === zip64)).toBe(true);
      expect(got.entries.map((e) => [e.name, e.dtype, e.shape, e.byteLength])).toEqual(ref.entries.map((e) => [e.name, e.dtype, e.shape, e.byteLength]));
      const fileSrc = dirSource(`${PT}single-fp16`);
      for (let k = 0; k < got.entries.length; k += 5) {
        const a = await src.read('pytorch_model.bin', got.entries[k].offset, got.entries[k].byteLength);
        const b = await fileSrc.read('pytorch_model.bin', ref.entries[k].offset, ref.entries[k].byteLength);
        expect(Buffer.compare(a, b)).toBe(0);
      }
    }
  });

  it('truncated archives are ModelFormatErrors', async () => {
    const bin = readBytes(`${PT}single-fp16/pytorch_model.bin`);
    for (const keep of [10, 1000, bin.byteLength >> 1, bin.byteLength - 30, bin.byteLength - 1]) {
      const err = await fault({ 'pytorch_model.bin': bin.slice(0, keep) });
      expect(err, `truncated to ${keep} bytes`).toBeInstanceOf(ModelFormatError);
    }
    // Directory intact but the data of the last storages cut away (zip without the tail data).
    const it0 = await getItems();
    const whole = zipStored(it0);
    const cut = zipStored(
      it0.map((x) => (x.name.endsWith('data/16') ? { ...x, data: x.data.slice(0, 100) } : x)),
      { sizes: { 'pytorch_model/data/16': it0.find((x) => x.name.endsWith('data/16'))!.data.byteLength } },
    );
    expect(whole.byteLength).toBeGreaterThan(cut.byteLength);
    const err = await fault({ 'pytorch_model.bin': cut });
    expect(err).toBeInstanceOf(ModelFormatError);
  });

  it('a storage entry of the wrong size is a ModelFormatError naming the entry', async () => {
    const it0 = await getItems();
    const bad = it0.map((x) => (x.name === 'pytorch_model/data/3' ? { ...x, data: x.data.slice(0, x.data.byteLength - 2) } : x));
    const err = await fault({ 'pytorch_model.bin': zipStored(bad) });
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toMatch(/pytorch_model\/data\/3.*bytes/);
    const missing = await fault({ 'pytorch_model.bin': zipStored(it0.filter((x) => x.name !== 'pytorch_model/data/5')) });
    expect(missing).toBeInstanceOf(ModelFormatError);
    expect((missing as Error).message).toContain("storage '5'");
  });

  it('a non-zip file, a bare pickle and an empty folder get typed errors', async () => {
    const notZip = await fault({ 'pytorch_model.bin': readBytes(`${PT}single-fp16/config.json`) });
    expect(notZip).toBeInstanceOf(ModelFormatError);
    expect((notZip as Error).message).toContain('pytorch_model.bin');
    const pkl = (await getItems()).find((x) => x.name.endsWith('data.pkl'))!.data;
    const bare = await fault({ 'pytorch_model.bin': pkl });
    expect(bare).toBeInstanceOf(ModelFormatError);
    expect((bare as Error).message).toMatch(/legacy/);
    expect(await fault({ 'config.json': '{}' })).toBeInstanceOf(MissingFileError);
  });

  it('big-endian archives and broken indexes are refused', async () => {
    const it0 = await getItems();
    const big = it0.map((x) => (x.name.endsWith('byteorder') ? { ...x, data: new TextEncoder().encode('big') } : x));
    const err = await fault({ 'pytorch_model.bin': zipStored(big) });
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toMatch(/little-endian/);
    const bin = zipStored(it0);
    const idx = (map: Record<string, string>) => JSON.stringify({ weight_map: map });
    expect(await fault({ 'pytorch_model.bin.index.json': idx({ x: 'a.bin' }) })).toBeInstanceOf(MissingFileError);
    const names = (await readPytorchBin(memSource({ b: bin }), 'b')).entries.map((e) => e.name);
    const map = Object.fromEntries(names.slice(1).map((n) => [n, 'a.bin']));
    const e2 = await fault({ 'pytorch_model.bin.index.json': idx(map), 'a.bin': bin });
    expect(e2).toBeInstanceOf(ModelFormatError);
    expect((e2 as Error).message).toContain(names[0]);
  });
});
