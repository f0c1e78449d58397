/**
 * SentencePiece tokenizer.model conversion against SentencePiece's own ids
 * (spm_encode goldens), round trips, and streaming decode.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tokenizerFromSentencePiece } from '../helpers/tokenizer.ts';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { Rng } from '../../src/util/rng.ts';
import { FIXTURES } from '../helpers/gpu.ts';

interface Golden {
  cases: { text: string; ids: number[] }[];
}
const golden = (p: string): Golden => JSON.parse(readFileSync(FIXTURES + p, 'utf8'));

const MODELS = [
  { name: 'stories260k', model: 'stories260k/tokenizer.model', golden: golden('stories260k/tokenizer.golden.json') },
  { name: 'bpe_zh', model: 'tokenizers/bpe_zh.model', golden: golden('tokenizers/bpe_zh.golden.json') },
];

/**
 * What SentencePiece's normalizer makes of the golden texts, written
 * independently of the implementation: stories260k is "identity" with
 * extra-whitespace removal; bpe_zh is nmt_nfkc (NFKC, tab -> space) keeping spaces.
 */
const EXPECT_ROUNDTRIP: Record<string, (s: string) => string> = {
  stories260k: (s) => s.replace(/ +/g, ' ').replace(/^ | $/g, ''),
  bpe_zh: (s) => s.normalize('NFKC').replace(/\t/g, ' '),
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Streams ids one by one; checks no chunk has U+FFFD where one-shot decode has none. */
function streamed(tok: Tokenizer, ids: number[]): { text: string; chunks: string[] } {
  const s = tok.streamDecoder();
  const chunks = ids.map((id) => s.push(id));
  chunks.push(s.flush());
  return { text: chunks.join(''), chunks };
}

const load = (m: (typeof MODELS)[number]) => tokenizerFromSentencePiece(readFileSync(FIXTURES + m.model), { name: m.name });

describe.each(MODELS)('SentencePiece $name', (m) => {
  it('encodes every golden case exactly as spm_encode', async () => {
    const tok = await load(m);
    for (const c of m.golden.cases) expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
  });

  it('decodes the golden ids back to the normalized text', async () => {
    const tok = await load(m);
    for (const c of m.golden.cases) {
      expect(tok.decode(c.ids), JSON.stringify(c.text)).toBe(EXPECT_ROUNDTRIP[m.name](c.text));
      expect(tok.decode(tok.encode(c.text))).toBe(EXPECT_ROUNDTRIP[m.name](c.text));
    }
  });

  it('streams every golden case to the one-shot text, never a broken character', async () => {
    const tok = await load(m);
    for (const c of m.golden.cases) {
      const ids = tok.encode(c.text, { addSpecial: true });
      const { text, chunks } = streamed(tok, ids);
      const oneShot = tok.decode(ids);
      expect(text).toBe(oneShot);
      if (!oneShot.includes('\uFFFD')) for (const ch of chunks) expect(ch).not.toContain('\uFFFD');
      // Every chunk is whole UTF-16 (no lone surrogate).
      for (const ch of chunks) expect(ch).not.toMatch(LONE_SURROGATE);
    }
  });

  it('round-trips random Unicode strings (seeded)', async () => {
    const tok = await load(m);
    const rng = new Rng(1234);
    const ranges: [number, number][] = [
      [0x20, 0x7e],
      [0xa0, 0x24f],
      [0x4e00, 0x9fff],
      [0x1f300, 0x1f6ff],
      [0x3040, 0x30ff],
      [0x400, 0x4ff],
    ];
    for (let n = 0; n < 60; n++) {
      let s = '';
      const len = 1 + rng.int(40);
      for (let i = 0; i < len; i++) {
        const [lo, hi] = ranges[rng.int(ranges.length)];
        s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
      }
      const ids = tok.encode(s);
      const expected = EXPECT_ROUNDTRIP[m.name](s);
      expect(tok.decode(ids), JSON.stringify(s)).toBe(expected);
      const { text, chunks } = streamed(tok, ids);
      expect(text).toBe(expected);
      if (!expected.includes('\uFFFD')) for (const ch of chunks) expect(ch).not.toContain('\uFFFD');
    }
  });
});

describe('SentencePiece stories260k folder', () => {
  it('loads through a FileSource, adds BOS once, holds partial characters while streaming', async () => {
    const src = nodeSource(FIXTURES + 'stories260k');
    const tok = await loadTokenizer(src);
    await src.close();
    expect(tok.kind).toBe('sentencepiece');
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.hasChatFormat).toBe(false);
    const ids = tok.encode('Once upon a time', { addSpecial: true });
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    expect(tok.withPrefix(ids)).toEqual(ids); // no double BOS
    // 你 is three byte-fallback pieces: nothing comes out until the third.
    const zh = tok.encode('你');
    const s = tok.streamDecoder();
    const out = zh.map((id) => s.push(id));
    expect(out.slice(0, -1).every((c) => c === '')).toBe(true);
    expect(out.join('') + s.flush()).toBe('你');
    // Plain completion: the messages' text, BOS first.
    const chat = tok.formatChat([{ role: 'user', content: 'Tom had a red car' }]);
    expect(chat.text).toBe('Tom had a red car');
    expect(chat.ids).toEqual([1, ...tok.encode('Tom had a red car')]);
  });

  it('matches llama2.c run.c: prompt ids, and greedy ids decoded to its text', async () => {
    const gen = JSON.parse(readFileSync(FIXTURES + 'stories260k/generation.golden.json', 'utf8')) as {
      cases: { name: string; prompt?: string; prompt_ids: number[]; greedy_ids_first_100?: number[]; text: string }[];
    };
    const tok = await load(MODELS[0]);
    let checked = 0;
    for (const c of gen.cases) {
      if (c.prompt !== undefined) {
        expect(tok.encode(c.prompt, { addSpecial: true })).toEqual(c.prompt_ids);
        checked++;
      }
      if (c.greedy_ids_first_100) {
        const text = tok.decode([...c.prompt_ids, ...c.greedy_ids_first_100]);
        expect(text.length).toBeGreaterThan(100);
        expect(c.text.startsWith(text)).toBe(true);
        expect(streamed(tok, [...c.prompt_ids, ...c.greedy_ids_first_100]).text).toBe(text);
        checked++;
      }
    }
    expect(checked).toBe(2);
  });

  it('encodes long texts (cut into library calls) exactly as short ones', async () => {
    const tok = await load(MODELS[0]);
    const c = MODELS[0].golden.cases[0];
    const n = 600; // ~32k characters: several chunks
    const ids = tok.encode(Array(n).fill(c.text).join(' '));
    expect(ids.length).toBe(n * c.ids.length);
    expect(ids).toEqual(Array(n).fill(c.ids).flat());
  });

  it('rejects ids outside the vocabulary with a TokenizerError', async () => {
    const tok = await load(MODELS[0]);
    expect(() => tok.decode([5, 512])).toThrow(/outside the vocabulary/);
    expect(() => tok.decode([-1])).toThrow(/outside the vocabulary/);
    expect(tok.decode([])).toBe('');
  });
});
