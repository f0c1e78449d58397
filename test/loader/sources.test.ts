import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { firstDiff } from './mem-source.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { fileListSource, nodeSource, openSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { readRecipeF32 } from '../helpers/readback.ts';
import { InvalidOptionError, MissingFileError, ModelFormatError } from '../../src/errors.ts';

const DIR = `${FIXTURES}golden/internlm2-tiny`;

/** Files as <input webkitdirectory> gives them: webkitRelativePath "folder/name". */
function asFileList(dir: string, folder: string): File[] {
  return readdirSync(dir).map((n) => {
    const f = new File([readFileSync(`${dir}/${n}`)], n);
    Object.defineProperty(f, 'webkitRelativePath', { value: `${folder}/${n}` });
    return f;
  });
}

describe('sources', () => {
  it('nodeSource: sizes, positional reads, range faults, missing files', async () => {
    const s = nodeSource(DIR);
    expect(await s.has('config.json')).toBe(true);
    expect(await s.has('nope.json')).toBe(false);
    const size = await s.size('model-00001-of-00002.safetensors');
    expect((await s.read('model-00001-of-00002.safetensors', size - 4, 4)).byteLength).toBe(4);
    await expect(s.read('model-00001-of-00002.safetensors', size - 4, 5)).rejects.toThrow(ModelFormatError);
    await expect(s.size('nope.bin')).rejects.toThrow(MissingFileError);
    await expect(s.text('nope.json')).rejects.toThrow(/^nope\.json: not found in /);
    expect((await s.list!())!.sort()).toEqual(readdirSync(DIR).sort());
    await s.close();
  });
  it('fileListSource (webkitdirectory File[]) reads the same tensors as nodeSource', async () => {
    const files = fileListSource(asFileList(DIR, 'internlm2-tiny'));
    const local = nodeSource(DIR);
    const a = await readModel(files);
    const b = await readModel(local);
    expect(a.spec).toEqual(b.spec);
    for (const name of ['layers.1.wqkv', 'layers.2.wGateUp', 'finalNorm']) {
      const ra = a.plan.recipes.find((r) => r.name === name)!,
        rb = b.plan.recipes.find((r) => r.name === name)!;
      expect(firstDiff(await readRecipeF32(files, ra), await readRecipeF32(local, rb))).toBe(-1);
    }
    await expect(files.size('missing.safetensors')).rejects.toThrow(MissingFileError);
    await local.close();
  });
  it('openSource picks by type', () => {
    expect(openSource(DIR).name).toBe(DIR);
    expect(openSource('http://example.com/m/').name).toBe('http://example.com/m/');
    expect(openSource(new URL('https://example.com/m')).name).toBe('https://example.com/m/');
    const fl = openSource(asFileList(DIR, 'x'));
    expect(fl.name).toBe('selected files');
    expect(openSource(fl)).toBe(fl);
    expect(() => openSource(42 as never)).toThrow(InvalidOptionError);
  });
});
