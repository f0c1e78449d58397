/**
 * Conversion details on synthetic SentencePiece models (tie-breaking, model
 * types, malformed files), the tokenizer.json path, and loading errors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MissingFileError, ModelFormatError, TokenizerError } from '../../src/errors.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { tokenizerFromSentencePiece } from '../helpers/tokenizer.ts';
import { loadTokenizer, parseSentencePiece, sentencePieceToJson } from '../../src/tokenizer/index.ts';
import { PieceType } from '../../src/tokenizer/sentencepiece.ts';
import { cachedConversions, sha256Hex } from '../../src/tokenizer/cache.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { bpeModel } from './spm-writer.ts';

const noPrefix = { normalizer: { addDummyPrefix: false } };
const tmp = mkdtempSync(join(tmpdir(), 'sieve-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('SentencePiece conversion', () => {
  it('reads pieces, types and specs, including a negative pad_id', () => {
    const m = parseSentencePiece(bpeModel(['a', 'b', 'ab'], { padId: -1, eosId: 2 }));
    expect(m.pieces.map((p) => p.piece)).toEqual(['<unk>', '<s>', '</s>', 'a', 'b', 'ab']);
    expect(m.pieces.map((p) => p.type)).toEqual([PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL, 1, 1, 1]);
    expect(m.pieces[5].score).toBe(-2);
    expect(m.trainer).toMatchObject({ modelType: 'bpe', padId: -1, eosId: 2, unkId: 0 });
    expect(m.normalizer).toMatchObject({ name: 'identity', addDummyPrefix: true, removeExtraWhitespaces: true });
  });

  it('merges by piece score, highest first', async () => {
    // "abc": ab (-10) vs bc (-5): SentencePiece merges bc first -> a|bc.
    const tok = await tokenizerFromSentencePiece(
      bpeModel(
        [
          { piece: 'a', score: -1 },
          { piece: 'b', score: -2 },
          { piece: 'c', score: -3 },
          { piece: 'ab', score: -10 },
          { piece: 'bc', score: -5 },
        ],
        noPrefix,
      ),
    );
    expect(tok.encode('abc').map((id) => tok.idToToken(id))).toEqual(['a', 'bc']);
  });

  it('breaks score ties leftmost first, as SentencePiece does, whatever the piece order', async () => {
    // ab and bc have the same score; bc comes first in the vocabulary.
    const tok = await tokenizerFromSentencePiece(
      bpeModel(
        [
          { piece: 'a', score: -1 },
          { piece: 'b', score: -2 },
          { piece: 'c', score: -3 },
          { piece: 'bc', score: -5 },
          { piece: 'ab', score: -5 },
        ],
        noPrefix,
      ),
    );
    expect(tok.encode('abc').map((id) => tok.idToToken(id))).toEqual(['ab', 'c']);
    expect(tok.encode('cbc').map((id) => tok.idToToken(id))).toEqual(['c', 'bc']);
  });

  it('falls back to bytes for characters outside the vocabulary, and to <unk> without byte pieces', async () => {
    const bytes = Array.from({ length: 256 }, (_, b) => ({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, type: PieceType.BYTE }));
    const withBytes = await tokenizerFromSentencePiece(bpeModel([...bytes, { piece: 'a', score: -1 }], { ...noPrefix, byteFallback: true }));
    const ids = withBytes.encode('aé');
    expect(ids.map((id) => withBytes.idToToken(id))).toEqual(['a', '<0xC3>', '<0xA9>']);
    expect(withBytes.decode(ids)).toBe('aé');
    const noBytes = await tokenizerFromSentencePiece(bpeModel([{ piece: 'a', score: -1 }], noPrefix));
    expect(noBytes.encode('aé')).toEqual([3, 0]);
  });

  it('caches a conversion by the hash of the model bytes', async () => {
    const bytes = bpeModel(['x', 'y', 'xy'], noPrefix);
    const before = cachedConversions();
    const a = await tokenizerFromSentencePiece(bytes);
    expect(cachedConversions()).toBe(before + 1);
    const b = await tokenizerFromSentencePiece(bytes.slice());
    expect(cachedConversions()).toBe(before + 1);
    expect(b.encode('xyx')).toEqual(a.encode('xyx'));
    await tokenizerFromSentencePiece(bpeModel(['x', 'y', 'yx'], noPrefix));
    expect(cachedConversions()).toBe(before + 2);
    expect(await sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('refuses a Unigram model with a TokenizerError naming the model type', () => {
    const bytes = bpeModel(['a'], { modelType: 1 });
    expect(() => sentencePieceToJson(parseSentencePiece(bytes))).toThrow(TokenizerError);
    expect(() => sentencePieceToJson(parseSentencePiece(bytes))).toThrow(/model type 'unigram'/);
  });

  it('refuses malformed files with a ModelFormatError naming the fault', () => {
    const good = bpeModel(['a', 'b']);
    expect(() => parseSentencePiece(good.subarray(0, good.length - 3), 'x.model')).toThrow(ModelFormatError);
    expect(() => parseSentencePiece(good.subarray(0, good.length - 3), 'x.model')).toThrow(/x\.model: protobuf: .* at byte/);
    expect(() => parseSentencePiece(new Uint8Array([0x0a, 0x05, 0x01]))).toThrow(/runs past the end/);
    expect(() => parseSentencePiece(new Uint8Array(0))).toThrow(/no pieces/);
    expect(() => parseSentencePiece(new TextEncoder().encode('{"model": {}}'))).toThrow(ModelFormatError);
  });
});

describe('tokenizer.json folders', () => {
  /** A Llama-style tokenizer.json (as Hugging Face's converter writes it) made from stories260k. */
  function llamaStyleJson(): Record<string, unknown> {
    const json = sentencePieceToJson(parseSentencePiece(readFileSync(FIXTURES + 'stories260k/tokenizer.model')));
    delete json.sentencepiece;
    return {
      ...json,
      added_tokens: [0, 1, 2].map((id) => ({
        id,
        content: ['<unk>', '<s>', '</s>'][id],
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '\u2581' },
          { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
        ],
      },
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
    };
  }

  it('runs tokenizer.json as is, finds its BOS, and formats chat without a double BOS', async () => {
    const dir = join(tmp, 'json');
    rmSync(dir, { recursive: true, force: true });
    await import('node:fs').then((fs) => fs.mkdirSync(dir));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(llamaStyleJson()));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        bos_token: '<s>',
        eos_token: { content: '</s>' },
        clean_up_tokenization_spaces: false,
        chat_template: "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}",
      }),
    );
    const src = nodeSource(dir);
    const tok = await loadTokenizer(src);
    await src.close();
    expect(tok.kind).toBe('tokenizer.json');
    expect([tok.bosId, tok.eosIds, tok.prefixIds]).toEqual([1, [2], [1]]);
    const gold = JSON.parse(readFileSync(FIXTURES + 'stories260k/tokenizer.golden.json', 'utf8')) as { cases: { text: string; ids: number[] }[] };
    const once = gold.cases.find((c) => c.text.startsWith('Once upon'))!;
    expect(tok.encode(once.text)).toEqual(once.ids);
    expect(tok.encode(once.text, { addSpecial: true })).toEqual([1, ...once.ids]);
    expect(tok.decode([1, ...once.ids])).toBe(once.text);
    const chat = tok.formatChat([{ role: 'user', content: 'hi' }]);
    expect(chat.text).toBe('<s>[user] hi\n');
    expect(chat.ids.filter((id) => id === 1)).toEqual([1]);
    expect(chat.ids[0]).toBe(1);
  });

  it('fails with MissingFileError when the folder has no tokenizer, ModelFormatError on bad JSON', async () => {
    const empty = join(tmp, 'empty');
    await import('node:fs').then((fs) => fs.mkdirSync(empty, { recursive: true }));
    await expect(loadTokenizer(nodeSource(empty))).rejects.toThrow(MissingFileError);
    const bad = join(tmp, 'bad');
    await import('node:fs').then((fs) => fs.mkdirSync(bad, { recursive: true }));
    writeFileSync(join(bad, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(nodeSource(bad))).rejects.toThrow(/tokenizer\.json: not valid JSON/);
  });
});
