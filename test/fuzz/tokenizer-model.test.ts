/**
 * Fuzz: tokenizer.model (SentencePiece ModelProto) -> parse, convert, build
 * the tokenizer, encode and decode random text. 1,000 seeded cases: byte
 * mutations of a real model's pieces (bpe_zh), mutations of its real
 * normalization charsmap, and generated models (random pieces, long pieces,
 * nested chains, bad types and ids). Each case ends in a result or a typed
 * error, within the per-case time and heap bounds the harness asserts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { sentencePieceToJson } from '../../src/tokenizer/convert.ts';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { parseSentencePiece } from '../../src/tokenizer/sentencepiece.ts';
import type { Rng } from '../../src/util/rng.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { writeModelProto, type PieceSpec } from '../tokenizer/spm-writer.ts';
import { mutateBytes, pick, randomText, runFuzz } from './harness.ts';

const real = parseSentencePiece(readFileSync(FIXTURES + 'tokenizers/bpe_zh.model'), 'bpe_zh.model');
// A smaller base from the real model: its first 200 pieces (specials, bytes, merges), identity normalizer.
const basePieces: PieceSpec[] = real.pieces.slice(0, 200).map((p) => ({ piece: p.piece, score: p.score, type: p.type }));
const base = writeModelProto({ pieces: basePieces, byteFallback: true });
const charsmap = real.normalizer.precompiledCharsmap;

function randomPiece(rng: Rng): string {
  const r = rng.next();
  if (r < 0.05) return 'ab'.repeat(1 + rng.int(5000));
  if (r < 0.053) return '';
  return randomText(rng, 1 + rng.int(12)) || 'x';
}

function generated(rng: Rng): Uint8Array {
  const pieces: PieceSpec[] = [
    { piece: '<unk>', type: 2 },
    { piece: '<s>', type: 3 },
    { piece: '</s>', type: 3 },
  ];
  const n = rng.int(40);
  const chain = rng.next() < 0.15;
  const seen = new Set(pieces.map((p) => p.piece));
  for (let i = 0; i < n; i++) {
    const type = rng.next() < 0.98 ? 1 : rng.int(9);
    let piece = chain ? 'a'.repeat(i + 1) : randomPiece(rng);
    if (seen.has(piece) && rng.next() < 0.97) piece += `#${i}`;
    seen.add(piece);
    pieces.push({ piece, score: rng.next() < 0.1 ? pick(rng, [NaN, Infinity, -Infinity, 1e30]) : -i, type });
  }
  if (rng.next() < 0.3) pieces.push({ piece: '▁', score: 0, type: 1 });
  return writeModelProto({
    pieces,
    modelType: rng.next() < 0.9 ? 2 : rng.int(6),
    byteFallback: rng.next() < 0.5,
    unkId: rng.next() < 0.9 ? 0 : rng.int(2000) - 5,
    bosId: rng.next() < 0.9 ? 1 : rng.int(2000) - 5,
    eosId: rng.next() < 0.9 ? 2 : rng.int(2000) - 5,
    normalizer: {
      addDummyPrefix: rng.next() < 0.5,
      removeExtraWhitespaces: rng.next() < 0.5,
      escapeWhitespaces: rng.next() < 0.8,
      precompiledCharsmap: rng.next() < 0.03 ? mutateBytes(rng, charsmap.subarray(0, rng.int(charsmap.length))) : undefined,
    },
  });
}

function runCase(rng: Rng): void {
  const kind = rng.int(40);
  const bytes =
    kind < 14
      ? mutateBytes(rng, base)
      : kind < 15
        ? writeModelProto({
            pieces: basePieces,
            byteFallback: true,
            normalizer: { name: 'nmt_nfkc', precompiledCharsmap: rng.next() < 0.5 ? charsmap : mutateBytes(rng, charsmap) },
          })
        : generated(rng);
  const model = parseSentencePiece(bytes, 'fuzz/tokenizer.model');
  const json = sentencePieceToJson(model, 'fuzz/tokenizer.model');
  const tok = new Tokenizer(json, { family: pick(rng, ['generic', 'internlm2', 'chatglm2'] as const), config: {}, name: 'fuzz' });
  for (let k = 0; k < 2; k++) {
    const ids = tok.encode(randomText(rng, 80), { addSpecial: rng.next() < 0.5, parseSpecial: rng.next() < 0.5 });
    for (const id of ids)
      if (!(Number.isInteger(id) && id >= 0 && id < tok.vocabSize))
        throw new Error(
          `encode gave id ${id} (${tok.idToToken(id)}) outside [0, ${tok.vocabSize}): ${ids} ${JSON.stringify(Object.keys(json.model.vocab as object))} ${JSON.stringify(json.added_tokens)}`,
        );
    tok.decode(ids);
    const id = rng.int(tok.vocabSize * 2 + 2) - 1;
    try {
      tok.decode([id]);
    } catch (e) {
      // Ids outside the vocabulary are refused, as such.
      if (!(e instanceof TokenizerError) || (id >= 0 && id < tok.vocabSize)) throw e;
    }
  }
}

describe('fuzz: tokenizer.model', () => {
  it('1,000 seeded cases end in a result or a typed error, in bounded time and memory', async () => {
    const stats = await runFuzz('tokenizer.model', 1000, 20, { perCaseMs: 1500, heapMiB: 512 }, runCase);
    expect(stats.ok).toBeGreaterThan(100);
    expect(stats.cases - stats.ok).toBeGreaterThan(100);
  });
});
