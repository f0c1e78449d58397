import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { FIXTURES } from '../helpers/gpu.ts';
import { memSource, rawSafetensors } from './mem-source.ts';
import { readCheckpoint, readSafetensorsHeader } from '../../src/loader/safetensors.ts';
import { writeSafetensors } from '../../src/loader/safetensors-write.ts';
import { readModel } from '../../src/loader/model.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { writeSyntheticModel, type SyntheticOptions } from '../../bench/synthetic/checkpoint.ts';
import { readTensorF32 } from '../helpers/readback.ts';
import { ConfigError, MissingFileError, ModelFormatError, SieveError, UnsupportedModelError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const F = 'model.safetensors';
const header = (f: Uint8Array) => readSafetensorsHeader(memSource({ [F]: f }), F);
const fault = async (f: Uint8Array, re: RegExp) => {
  const e = await header(f).then(
    () => undefined,
    (x) => x,
  );
  expect(e).toBeInstanceOf(ModelFormatError);
  expect(e.message).toMatch(new RegExp(`^${F}: `));
  expect(e.message).toMatch(re);
};
const t = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

describe('safetensors header reader: valid files', () => {
  it('reads every supported dtype, keeps __metadata__, absolute offsets', async () => {
    const file = writeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
        { name: 'b', dtype: 'I64', shape: [1], data: new BigInt64Array([7n]) },
        { name: 'c', dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
        { name: 'd', dtype: 'I8', shape: [1], data: new Int8Array([-1]) },
        { name: 'e', dtype: 'U8', shape: [], data: new Uint8Array([9]) },
        { name: 'f', dtype: 'I32', shape: [1], data: new Int32Array([5]) },
        { name: 'g', dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
        { name: 'h', dtype: 'F16', shape: [0], data: new Uint16Array(0) },
      ],
      { format: 'pt', note: 'x' },
    );
    const src = memSource({ [F]: file });
    const h = await readSafetensorsHeader(src, F);
    expect(h.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(h.entries.map((e) => e.dtype)).toEqual(['F32', 'I64', 'BOOL', 'I8', 'U8', 'I32', 'BF16', 'F16']);
    expect(h.dataStart % 8).toBe(0);
    expect(await readTensorF32(src, h.entries[0])).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    expect(await readTensorF32(src, h.entries[6])).toEqual(new Float32Array([1]));
  });
});

describe('safetensors header reader: each fault is a ModelFormatError naming file and fault', () => {
  const stories = () => new Uint8Array(readFileSync(`${FIXTURES}stories260k/model.safetensors`));
  it('truncated file', async () => {
    const f = stories();
    await fault(f.slice(0, f.byteLength - 1000), /out of range|truncated/);
    await fault(f.slice(0, 5), /truncated/);
  });
  it('header length past the end of the file', async () => fault(rawSafetensors({}, 0, 5000), /past the end/));
  it('header length above 100 MiB', async () => fault(rawSafetensors({}, 0, 2 ** 40), /100 MiB/));
  it('invalid JSON', async () => fault(rawSafetensors('{"a": {', 0), /not valid JSON/));
  it('overlapping offsets', async () => fault(rawSafetensors({ a: t('F32', [2], 0, 8), b: t('F32', [2], 4, 12) }, 12), /'a' and 'b' overlap/));
  it('gap between tensors / trailing bytes', async () => {
    await fault(rawSafetensors({ a: t('F32', [1], 0, 4), b: t('F32', [1], 8, 12) }, 12), /not contiguous/);
    await fault(rawSafetensors({ a: t('F32', [1], 0, 4) }, 8), /trailing/);
  });
  it('unknown dtype', async () => fault(rawSafetensors({ a: t('F8_E9', [1], 0, 1) }, 1), /'a': unknown dtype "F8_E9"/));
  it('shape whose byte size differs from its offsets', async () =>
    fault(rawSafetensors({ a: t('F32', [3], 0, 8) }, 8), /'a': shape \[3\] of F32 is 12 bytes but its offsets span 8/));
  it('offsets out of range', async () => fault(rawSafetensors({ a: t('F32', [4], 0, 16) }, 8), /out of range/));
  it('duplicate tensor', async () =>
    fault(
      rawSafetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
      /duplicate tensor 'a'/,
    ));
  it('bad entries: negative shape, non-string metadata', async () => {
    await fault(rawSafetensors({ a: t('U8', [-1], 0, 1) }, 1), /shape/);
    await fault(rawSafetensors({ __metadata__: { x: 1 } }, 0), /__metadata__/);
  });
});

describe('checkpoints: missing pieces and config faults', () => {
  const tiny: SyntheticOptions = { family: 'internlm2', dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 64, vocabSize: 40, shards: 2 };
  async function synth(o: Partial<SyntheticOptions> = {}) {
    const dir = mkdtempSync(`${tmpdir()}/sieve-ckpt-`);
    await writeSyntheticModel(dir, { ...tiny, ...o });
    return dir;
  }
  async function expectErr(dir: string, cls: new (...a: never[]) => SieveError, re: RegExp) {
    const src = nodeSource(dir);
    const e = await readModel(src).then(
      () => undefined,
      (x) => x,
    );
    await src.close();
    rmSync(dir, { recursive: true });
    expect(e).toBeInstanceOf(cls);
    expect(e.message).toMatch(re);
  }
  it('a synthetic sharded checkpoint reads cleanly (baseline)', async () => {
    const dir = await synth();
    const src = nodeSource(dir);
    const m = await readModel(src);
    expect(m.checkpoint.files.length).toBe(2);
    await src.close();
    rmSync(dir, { recursive: true });
  });
  it('missing shard', async () => {
    const dir = await synth();
    unlinkSync(`${dir}/model-00002-of-00002.safetensors`);
    await expectErr(dir, MissingFileError, /^model-00002-of-00002\.safetensors: shard named by model\.safetensors\.index\.json is missing/);
  });
  it('index naming a missing file', async () => {
    const dir = await synth();
    const idx = JSON.parse(readFileSync(`${dir}/model.safetensors.index.json`, 'utf8'));
    idx.weight_map['model.norm.weight'] = 'model-00003-of-00002.safetensors';
    writeFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(idx));
    await expectErr(dir, MissingFileError, /model-00003-of-00002\.safetensors/);
  });
  it('index listing a tensor that its file lacks', async () => {
    const dir = await synth();
    const idx = JSON.parse(readFileSync(`${dir}/model.safetensors.index.json`, 'utf8'));
    idx.weight_map['model.extra.weight'] = 'model-00001-of-00002.safetensors';
    writeFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(idx));
    await expectErr(dir, ModelFormatError, /'model\.extra\.weight' listed in model\.safetensors\.index\.json is not in the file/);
  });
  it('missing tensor', async () => {
    const dir = await synth({ shards: 1 });
    // Rewrite the file without model.norm.weight.
    const src = nodeSource(dir);
    const ck = await readCheckpoint(src);
    const kept = [];
    for (const e of ck.entries)
      if (e.name !== 'model.norm.weight') kept.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: await src.read(e.file, e.offset, e.byteLength) });
    await src.close();
    writeFileSync(`${dir}/model.safetensors`, writeSafetensors(kept));
    await expectErr(dir, ModelFormatError, /^model\.safetensors: missing tensor 'model\.norm\.weight'/);
  });
  it('shape mismatch against config', async () => {
    const dir = await synth();
    const cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
    cfg.intermediate_size = 96;
    writeFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await expectErr(dir, ConfigError, /feed_forward\.w1\.weight' has shape \[64,32\] but config\.json implies \[96,32\]/);
  });
  it('config without required fields', async () => {
    const dir = await synth();
    const cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
    delete cfg.rms_norm_eps;
    writeFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await expectErr(dir, ConfigError, /field 'rms_norm_eps' is missing/);
  });
  it('unknown model_type', async () => {
    const dir = await synth();
    const cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
    cfg.model_type = 'qwen2';
    writeFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await expectErr(dir, UnsupportedModelError, /'qwen2' is not supported; supported families: chatglm2 .*internlm2/);
  });
  it('missing config.json and missing weights', async () => {
    const dir = await synth({ shards: 1 });
    copyFileSync(`${dir}/config.json`, `${dir}/config.bak`);
    unlinkSync(`${dir}/model.safetensors`);
    const src = nodeSource(dir);
    await expect(readModel(src)).rejects.toThrow(/model\.safetensors: no model\.safetensors or model\.safetensors\.index\.json/);
    await src.close();
    unlinkSync(`${dir}/config.json`);
    await expectErr(dir, MissingFileError, /^config\.json: not found/);
  });
  it('a chatglm2 synthetic checkpoint maps (rotary inv_freq dropped)', async () => {
    const dir = await synth({ family: 'chatglm2', shards: 1 });
    const src = nodeSource(dir);
    const m = await readModel(src);
    expect(m.plan.dropped).toEqual(['transformer.rotary_pos_emb.inv_freq']);
    await src.close();
    rmSync(dir, { recursive: true });
  });
});

describe('fuzz: 10,000 seeded mutations of a valid file', () => {
  it('every case parses or throws a typed error, never reading past the file', async () => {
    const base = writeSafetensors(
      [
        { name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
        { name: 'b', dtype: 'BF16', shape: [3], data: new Uint16Array([1, 2, 3]) },
        { name: 'n', dtype: 'I64', shape: [1], data: new BigInt64Array([5n]) },
      ],
      { format: 'pt' },
    );
    const rng = new Rng(1234);
    const headerEnd = 8 + new DataView(base.buffer).getUint32(0, true);
    let ok = 0,
      typed = 0;
    const digits = '0123456789'.split('').map((c) => c.charCodeAt(0));
    for (let i = 0; i < 10_000; i++) {
      let f = base.slice();
      const kind = rng.int(6);
      const edits = 1 + rng.int(3);
      for (let k = 0; k < edits; k++) {
        if (kind === 0)
          f[rng.int(f.length)] = rng.int(256); // any byte
        else if (kind === 1)
          f[8 + rng.int(headerEnd - 8)] = digits[rng.int(10)]; // digits inside the JSON
        else if (kind === 2)
          f = f.slice(0, rng.int(f.length + 1)); // truncation
        else if (kind === 3)
          f[rng.int(8)] = rng.int(256); // length prefix
        else if (kind === 4) {
          const p = 8 + rng.int(headerEnd - 8);
          f = new Uint8Array([...f.slice(0, p), ...f.slice(p + 1)]);
        } // delete a header byte
        else {
          const p = 8 + rng.int(headerEnd - 8);
          f = new Uint8Array([...f.slice(0, p), 32 + rng.int(90), ...f.slice(p)]);
        } // insert one
      }
      const src = memSource({ [F]: f });
      try {
        const h = await readSafetensorsHeader(src, F);
        for (const e of h.entries) expect(e.offset + e.byteLength).toBeLessThanOrEqual(f.byteLength);
        ok++;
      } catch (e) {
        if (!(e instanceof SieveError)) throw new Error(`case ${i} (kind ${kind}): untyped ${(e as Error)?.name}: ${(e as Error)?.message}`);
        expect(e.message.startsWith(`${F}: `)).toBe(true);
        typed++;
      }
      expect(src.maxEnd.get(F) ?? 0).toBeLessThanOrEqual(f.byteLength);
    }
    expect(ok + typed).toBe(10_000);
    expect(typed).toBeGreaterThan(1000);
    expect(ok).toBeGreaterThan(10);
  });
});
