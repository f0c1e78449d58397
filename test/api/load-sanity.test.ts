/**
 * Issue 20, lower-severity items: config values outside sane ranges are
 * refused naming the field; contextLength above the model's maximum is
 * refused; a tokenizer larger than the model's vocabulary is refused before
 * any weight loads; NaN and Infinity in options are reported as such.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseChatglm2Config } from '../../models/chatglm2.ts';
import { parseInternlm2Config } from '../../models/internlm2.ts';
import { checkVocab, loadModel } from '../../src/api/load.ts';
import { resolveGenerate, validateInput, validateLoadOptions } from '../../src/api/options.ts';
import { loadEngine } from '../../src/engine/index.ts';
import { ConfigError, InvalidOptionError, TokenizerError } from '../../src/errors.ts';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';

const internlm2 = JSON.parse(readFileSync(`${FIXTURES}golden/internlm2-tiny/config.json`, 'utf8'));
const chatglm2 = JSON.parse(readFileSync(`${FIXTURES}golden/chatglm2-tiny/config.json`, 'utf8'));

describe('config values in sane ranges', () => {
  const cases: [string, Record<string, unknown>, (c: Record<string, unknown>) => unknown][] = [
    ['rms_norm_eps', { rms_norm_eps: 1e308 }, parseInternlm2Config as never],
    ['rms_norm_eps', { rms_norm_eps: 1e-300 }, parseInternlm2Config as never],
    ['rope_theta', { rope_theta: 1e-300 }, parseInternlm2Config as never],
    ['rope_theta', { rope_theta: 1e300 }, parseInternlm2Config as never],
    ['max_position_embeddings', { max_position_embeddings: 2 ** 40 }, parseInternlm2Config as never],
    ['vocab_size', { vocab_size: 1e9 }, parseInternlm2Config as never],
    ['rope_scaling', { rope_scaling: { type: 'linear', factor: 1e12 } }, parseInternlm2Config as never],
    ['layernorm_epsilon', { layernorm_epsilon: 1e308 }, parseChatglm2Config as never],
    ['rope_ratio', { rope_ratio: 1e300 }, parseChatglm2Config as never],
    ['seq_length', { seq_length: 2 ** 40 }, parseChatglm2Config as never],
  ];
  for (const [field, patch, parse] of cases) {
    it(`${field} = ${JSON.stringify(Object.values(patch)[0])} is a ConfigError naming '${field}'`, () => {
      const base = parse === (parseInternlm2Config as never) ? internlm2 : chatglm2;
      let err: unknown;
      try {
        parse({ ...base, ...patch });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(`'${field}'`);
    });
  }
  it("the fixtures' own configs still parse", () => {
    expect(parseInternlm2Config(internlm2).normEps).toBe(1e-5);
    expect(parseChatglm2Config(chatglm2).normEps).toBe(1e-5);
  });
});

describe('options: NaN and Infinity reported by name', () => {
  it('says NaN / Infinity, not null', () => {
    expect(() => validateLoadOptions({ contextLength: NaN })).toThrow(/got NaN \(NaN is not a finite number\)/);
    expect(() => resolveGenerate({ temperature: Infinity })).toThrow(/got Infinity/);
    expect(() => resolveGenerate({ topP: -Infinity })).toThrow(/got -Infinity/);
    expect(() => validateInput({ ids: [1, NaN] })).toThrow(/got NaN/);
    expect(() => validateLoadOptions({ allowSpecialTokens: 'yes' as never })).toThrow(InvalidOptionError);
    for (const f of [() => validateLoadOptions({ contextLength: NaN }), () => resolveGenerate({ seed: Infinity })]) {
      try {
        f();
      } catch (e) {
        expect((e as Error).message).not.toContain('null');
      }
    }
  });
});

describe('model limits at load (real WebGPU, refused before any weight is read)', () => {
  it('contextLength above max_position_embeddings is an InvalidOptionError naming both', async () => {
    const ctx = await testGpu();
    const before = new Set(ctx.allocations.keys());
    const err = await loadEngine(ctx, `${FIXTURES}stories260k`, { contextLength: 100_000 }).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toMatch(/100000 is above the model's maximum of 512/);
    expect([...ctx.allocations.keys()].filter((b) => !before.has(b))).toEqual([]);
  });

  it('a tokenizer larger than the model vocabulary is a TokenizerError', async () => {
    expect(() => checkVocab(1200, 512, 'm')).toThrow(TokenizerError);
    expect(() => checkVocab(512, 512, 'm')).not.toThrow();
    expect(() => checkVocab(64799, 65024, 'm')).not.toThrow(); // ChatGLM2: padded_vocab_size rounds up
    const dir = mkdtempSync(join(tmpdir(), 'sieve-vocab-'));
    try {
      for (const f of ['model.safetensors', 'tokenizer.model', 'tokenizer_config.json']) copyFileSync(`${FIXTURES}stories260k/${f}`, join(dir, f));
      // The same weights, but a bpe_zh tokenizer of 1200 pieces (the model has 512 rows).
      copyFileSync(`${FIXTURES}tokenizers/bpe_zh.model`, join(dir, 'tokenizer.model'));
      writeFileSync(join(dir, 'config.json'), readFileSync(`${FIXTURES}stories260k/config.json`));
      const ctx = await testGpu();
      const err = await loadModel(dir, { gpu: ctx }).then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(TokenizerError);
      expect((err as Error).message).toMatch(/tokenizer has 1200 tokens but the model's vocabulary .* has 512/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
