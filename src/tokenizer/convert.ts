/**
 * SentencePiece ModelProto -> an equivalent tokenizer.json (the Hugging Face
 * format), built in memory and run by @huggingface/tokenizers.
 *
 * BPE: SentencePiece does not store merges; at each step it merges the
 * adjacent pair whose concatenation is the highest-scoring piece (ties: the
 * leftmost pair). The equivalent merge list holds, for every piece and every
 * split of it into two symbols that can occur (a piece or a single
 * character), the pair (left, right), ordered by the piece's score, highest
 * first. Merges of equal score share one rank (see `sameScoreRanks`), so the
 * library's position tie-break reproduces SentencePiece's.
 *
 * What SentencePiece does to the text before BPE (charsmap, whitespace,
 * dummy prefix) is kept in the `sentencepiece` block and applied by
 * SpmNormalizer; user-defined symbols become added tokens (never split or
 * merged); control pieces (<s>, </s>, ...) are only in the vocabulary, since
 * SentencePiece never matches them in text.
 */
import { TokenizerError } from '../errors.ts';
import { PieceType, type SpmModel } from './sentencepiece.ts';

export const WS = '\u2581';

/** The subset of tokenizer.json this runtime writes and reads. */
export interface TokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null | Record<string, unknown>;
  pre_tokenizer: null | Record<string, unknown>;
  post_processor: null | Record<string, unknown>;
  decoder: null | Record<string, unknown>;
  model: Record<string, unknown>;
  /** Present on tokenizers converted from a tokenizer.model (ignored by other readers). */
  sentencepiece?: SentencePieceBlock;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** What the runtime needs from the ModelProto beyond the tokenizer.json pipeline. */
export interface SentencePieceBlock {
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  treatWhitespaceAsSuffix: boolean;
  /** split_digits is a training option: the vocabulary has no multi-digit pieces, so encoding needs nothing more. */
  splitDigits: boolean;
  normalizerName: string;
  /** base64 of precompiled_charsmap ('' for identity). */
  precompiledCharsmap: string;
  userDefined: string[];
  /** Ids of pieces that decode to nothing (CONTROL) and the unknown piece. */
  controlIds: number[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  /** Number of pieces in the ModelProto (ids >= this were appended by a model family). */
  pieceCount: number;
  /** Merges grouped by score: mergeRanks[i] is the rank of merges[i] (equal scores share a rank). */
  mergeRanks: number[];
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Converts a parsed SentencePiece BPE model; other model types get a TokenizerError. */
export function sentencePieceToJson(m: SpmModel, file = 'tokenizer.model'): TokenizerJson {
  const t = m.trainer;
  if (t.modelType !== 'bpe') {
    throw new TokenizerError(
      `${file}: SentencePiece model type '${t.modelType}' is not supported (only 'bpe' converts to a tokenizer.json the runtime can run exactly); supply a tokenizer.json instead`,
      { file, modelType: t.modelType },
    );
  }
  if (t.treatWhitespaceAsSuffix) {
    throw new TokenizerError(`${file}: treat_whitespace_as_suffix is not supported (the spaces of this model's pieces come last)`, { file });
  }
  const vocab: Record<string, number> = Object.create(null);
  const mergeable = new Set<string>();
  for (const [id, p] of m.pieces.entries()) {
    if (p.piece in vocab) throw new TokenizerError(`${file}: piece ${JSON.stringify(p.piece)} appears twice (ids ${vocab[p.piece]} and ${id})`, { file });
    vocab[p.piece] = id;
    if (p.type === PieceType.NORMAL || p.type === PieceType.UNUSED) mergeable.add(p.piece);
  }
  const unk = m.pieces[t.unkId];
  if (!unk || unk.type !== PieceType.UNKNOWN) {
    throw new TokenizerError(`${file}: unk_id ${t.unkId} is not an UNKNOWN piece`, { file, unkId: t.unkId });
  }

  // Merges: every split of every normal piece into two symbols that can occur.
  const candidates: { left: string; right: string; score: number; id: number }[] = [];
  const isSymbol = (s: string) => mergeable.has(s) || isSingleCodePoint(s);
  for (const [id, p] of m.pieces.entries()) {
    if (p.type !== PieceType.NORMAL) continue;
    const chars = Array.from(p.piece);
    if (chars.length < 2) continue;
    let left = '';
    for (let i = 1; i < chars.length; i++) {
      left += chars[i - 1];
      const right = chars.slice(i).join('');
      if (isSymbol(left) && isSymbol(right)) candidates.push({ left, right, score: p.score, id });
    }
  }
  candidates.sort((a, b) => b.score - a.score || a.id - b.id || a.left.length - b.left.length);
  const merges: [string, string][] = candidates.map((c) => [c.left, c.right]);
  const mergeRanks: number[] = [];
  for (let i = 0; i < candidates.length; i++) {
    mergeRanks.push(i > 0 && candidates[i].score === candidates[i - 1].score ? mergeRanks[i - 1] : i);
  }

  // Splitting before each ▁ is exact when no mergeable piece has ▁ past its first character.
  const splitOnWs = m.normalizer.escapeWhitespaces && !t.treatWhitespaceAsSuffix
    && ![...mergeable].some((p) => p.indexOf(WS, 1) > 0);

  const added_tokens: AddedTokenJson[] = [];
  const controlIds: number[] = [];
  const userDefined: string[] = [];
  for (const [id, p] of m.pieces.entries()) {
    if (p.type === PieceType.CONTROL) controlIds.push(id);
    if (p.type === PieceType.USER_DEFINED) {
      userDefined.push(p.piece);
      added_tokens.push({ id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
    }
  }

  const decoders: Record<string, unknown>[] = [
    { type: 'Replace', pattern: { String: WS }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
  ];
  if (m.normalizer.addDummyPrefix && !t.treatWhitespaceAsSuffix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: null,
    pre_tokenizer: splitOnWs
      ? { type: 'Split', pattern: { Regex: `${WS}[^${WS}]*|[^${WS}]+` }, behavior: 'Isolated', invert: true }
      : null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk.piece,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: !t.byteFallback,
      byte_fallback: t.byteFallback,
      ignore_merges: false,
      vocab,
      merges,
    },
    sentencepiece: {
      addDummyPrefix: m.normalizer.addDummyPrefix,
      removeExtraWhitespaces: m.normalizer.removeExtraWhitespaces,
      escapeWhitespaces: m.normalizer.escapeWhitespaces,
      treatWhitespaceAsSuffix: t.treatWhitespaceAsSuffix,
      splitDigits: t.splitDigits,
      normalizerName: m.normalizer.name,
      precompiledCharsmap: base64(m.normalizer.precompiledCharsmap),
      userDefined,
      controlIds,
      unkId: t.unkId,
      bosId: t.bosId,
      eosId: t.eosId,
      padId: t.padId,
      pieceCount: m.pieces.length,
      mergeRanks,
    },
  };
}

function isSingleCodePoint(s: string): boolean {
  const c = s.codePointAt(0);
  return c !== undefined && s.length === (c > 0xffff ? 2 : 1);
}
