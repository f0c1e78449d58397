/**
 * Issue 20, failure 3: a hostile tokenizer.json ends in a TokenizerError, fast:
 * backtracking regexes ((a+)+$ in a pre-tokenizer or normalizer) are refused
 * before they run, and an id of 1e9 is refused against the vocabulary's size.
 */
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import { backtrackingRisk } from '../../src/tokenizer/validate-json.ts';
import { memSource } from '../loader/mem-source.ts';
import { smallTokenizerJson } from './json-fixture.ts';

async function load(json: Record<string, unknown> | string) {
  const text = typeof json === 'string' ? json : JSON.stringify(json);
  return loadTokenizer(memSource({ 'tokenizer.json': text }), { family: 'generic', config: {} });
}

async function refused(json: Record<string, unknown> | string, re: RegExp): Promise<void> {
  const t0 = performance.now();
  const err = await load(json).then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(TokenizerError);
  expect((err as Error).message).toMatch(re);
  expect((err as Error).message).toContain('tokenizer.json');
  expect(performance.now() - t0).toBeLessThan(1000);
}

describe('tokenizer.json regexes', () => {
  it('refuses (a+)+$ in the pre-tokenizer and in a normalizer sequence', async () => {
    await refused(
      smallTokenizerJson({ pre_tokenizer: { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false } }),
      /pre_tokenizer\.pattern\.Regex.*backtrack/,
    );
    await refused(
      smallTokenizerJson({ normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '(a|aa)*b' }, content: 'x' }] } }),
      /normalizer\.normalizers\[0\]\.pattern\.Regex/,
    );
  });

  it("judges patterns: catastrophic ones refused, the real tokenizers' accepted", () => {
    for (const bad of [
      '(a+)+$',
      '(a*)*',
      '(?:a|a)+',
      '(\\w?)+x',
      '([ab]+c?)*$',
      '(x+x+)+y',
      '(a)\\1',
      '((ab)*)+',
      '(a{1,3}){2,}',
      '\\s*\\s*\\s*$',
      'a+(b*c+)',
      'x|a*b*c*',
    ]) {
      expect(backtrackingRisk(bad), bad).toBeDefined();
    }
    const gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    const llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    for (const good of [gpt2, llama3, '\u2581[^\u2581]*|[^\u2581]+', '(a)+', '(?:ab)+', '(a|b)?', '[(a+)+]+', ' {2,}', 'a*b*|c*d*|e+']) {
      expect(backtrackingRisk(good), good).toBeUndefined();
    }
  });

  it("a refused pattern would really hang: (a+)+$ on 16 a's and a b takes visible time in V8 (2x per a)", () => {
    // Shows the rule guards against something real (small input to keep the test quick).
    const t0 = performance.now();
    /(a+)+$/.test('a'.repeat(16) + 'b');
    expect(performance.now() - t0).toBeGreaterThan(2);
  });
});

describe('tokenizer.json ids', () => {
  it('refuses a vocabulary id of 1e9 and an added-token id of 1e9, naming them', async () => {
    const a = smallTokenizerJson();
    (a.model as { vocab: Record<string, number> }).vocab.zz = 1e9;
    await refused(a, /id 1000000000 is not an integer in \[0, \d+\)/);
    const b = smallTokenizerJson();
    (b.added_tokens as { id: number }[]).push({ id: 1e9, content: '<x>', special: true } as never);
    await refused(b, /added_tokens\[2\]\.id: id 1000000000/);
    const c = smallTokenizerJson();
    (c.model as { vocab: Record<string, number> }).vocab.zz = -1;
    await refused(c, /id -1/);
  });

  it('refuses nesting past the limit without recursion', async () => {
    // Built as text: JSON.stringify itself would recurse 5,000 deep.
    const deep = '{"type":"Sequence","normalizers":['.repeat(5000) + '{"type":"Lowercase"}' + ']}'.repeat(5000);
    const text = JSON.stringify(smallTokenizerJson({ normalizer: 'NORMALIZER' })).replace('"NORMALIZER"', deep);
    await refused(text, /nested more than 64 deep/);
  });

  it('a valid small tokenizer.json still loads and encodes', async () => {
    const tok = await load(smallTokenizerJson());
    expect(tok.encode('abc').map((id) => tok.idToToken(id))).toEqual(['ab', 'c']);
  });
});
