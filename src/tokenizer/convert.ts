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
  for (const [field, id] of [
    ['unk_id', t.unkId],
    ['bos_id', t.bosId],
    ['eos_id', t.eosId],
    ['pad_id', t.padId],
  ] as const) {
    if (!Number.isInteger(id) || id < -1 || id >= m.pieces.length) {
      throw new TokenizerError(`${file}: trainer_spec.${field} ${id} is outside the ${m.pieces.length} pieces (and not -1)`, { file, field, id });
    }
  }
  const unk = m.pieces[t.unkId];
  if (!unk || unk.type !== PieceType.UNKNOWN) {
    throw new TokenizerError(`${file}: unk_id ${t.unkId} is not an UNKNOWN piece`, { file, unkId: t.unkId });
  }

  // Merges: every split of every normal piece into two symbols that can occur.
  // Found in time linear in the pieces' length: a forward trie of the
  // mergeable pieces marks which prefixes of a piece are symbols, a backward
  // trie which suffixes are (no substring is built or hashed per split).
  const candidates: { left: string; right: string; score: number; id: number }[] = [];
  const fwd = new PieceTrie();
  const bwd = new PieceTrie();
  for (const p of mergeable) {
    fwd.add(p, false);
    bwd.add(p, true);
  }
  // What the merge list may cost: each merge holds its piece's characters
  // (the tokenizer library keys its ranks by them), so their total is
  // bounded linearly in the file's size.
  const budget = MERGE_CHARS_PER_BYTE * m.sourceBytes + MERGE_CHARS_BASE;
  let mergeChars = 0;
  for (const [id, p] of m.pieces.entries()) {
    if (p.type !== PieceType.NORMAL) continue;
    const s = p.piece;
    const n = s.length;
    if (n < 2) continue;
    const leftOk = new Uint8Array(n + 1);
    const rightOk = new Uint8Array(n + 1);
    fwd.markPrefixes(s, leftOk);
    bwd.markSuffixes(s, rightOk);
    const first = codePointLength(s, 0);
    leftOk[first] = 1;
    rightOk[n - lastCodePointLength(s)] = 1;
    for (let i = 1; i < n; i++) {
      if (!leftOk[i] || !rightOk[i]) continue;
      mergeChars += n;
      if (mergeChars > budget) {
        throw new TokenizerError(
          `${file}: the pieces' merges would hold more than ${budget} characters (limit: ${MERGE_CHARS_PER_BYTE} per byte of the file + ${MERGE_CHARS_BASE}), at piece ${id} of ${n} characters: not a usable BPE vocabulary`,
          { file, limit: budget, piece: id },
        );
      }
      candidates.push({ left: s.slice(0, i), right: s.slice(i), score: p.score, id });
    }
  }
  candidates.sort((a, b) => b.score - a.score || a.id - b.id || a.left.length - b.left.length);
  const merges: [string, string][] = candidates.map((c) => [c.left, c.right]);
  const mergeRanks: number[] = [];
  for (let i = 0; i < candidates.length; i++) {
    mergeRanks.push(i > 0 && candidates[i].score === candidates[i - 1].score ? mergeRanks[i - 1] : i);
  }

  // Splitting before each ▁ is exact when no mergeable piece has ▁ past its first character.
  const splitOnWs = m.normalizer.escapeWhitespaces && !t.treatWhitespaceAsSuffix && ![...mergeable].some((p) => p.indexOf(WS, 1) > 0);

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

  const decoders: Record<string, unknown>[] = [{ type: 'Replace', pattern: { String: WS }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }];
  if (m.normalizer.addDummyPrefix && !t.treatWhitespaceAsSuffix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: null,
    pre_tokenizer: splitOnWs ? { type: 'Split', pattern: { Regex: `${WS}[^${WS}]*|[^${WS}]+` }, behavior: 'Isolated', invert: true } : null,
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

/** Merge characters allowed per byte of tokenizer.model, plus a base (real vocabularies use about 1 per byte). */
export const MERGE_CHARS_PER_BYTE = 16;
export const MERGE_CHARS_BASE = 4 << 20;

function codePointLength(s: string, at: number): number {
  const c = s.charCodeAt(at);
  return c >= 0xd800 && c <= 0xdbff && at + 1 < s.length ? 2 : 1;
}

function lastCodePointLength(s: string): number {
  const c = s.charCodeAt(s.length - 1);
  return c >= 0xdc00 && c <= 0xdfff && s.length >= 2 ? 2 : 1;
}

/**
 * A trie of strings over UTF-16 code units. Most nodes of a vocabulary's trie
 * have one child: it sits in two small-integer arrays; a node with more gets
 * a Map. (One Map keyed by node * 65536 + unit made keys beyond the small-
 * integer range, boxed numbers, and a 200,000-character piece 10x slower
 * than a 50,000-character one.)
 */
class PieceTrie {
  private readonly onlyUnit: number[] = [-1];
  private readonly onlyChild: number[] = [0];
  private readonly multi: (Map<number, number> | undefined)[] = [undefined];
  private readonly terminal: boolean[] = [false];

  private child(node: number, unit: number): number | undefined {
    const m = this.multi[node];
    if (m) return m.get(unit);
    return this.onlyUnit[node] === unit ? this.onlyChild[node] : undefined;
  }

  private addChild(node: number, unit: number): number {
    const child = this.terminal.length;
    this.terminal.push(false);
    this.onlyUnit.push(-1);
    this.onlyChild.push(0);
    this.multi.push(undefined);
    const m = this.multi[node];
    if (m) m.set(unit, child);
    else if (this.onlyUnit[node] === -1) {
      this.onlyUnit[node] = unit;
      this.onlyChild[node] = child;
    } else {
      this.multi[node] = new Map([
        [this.onlyUnit[node], this.onlyChild[node]],
        [unit, child],
      ]);
    }
    return child;
  }

  add(s: string, reversed: boolean): void {
    let node = 0;
    for (let k = 0; k < s.length; k++) {
      const unit = s.charCodeAt(reversed ? s.length - 1 - k : k);
      node = this.child(node, unit) ?? this.addChild(node, unit);
    }
    this.terminal[node] = true;
  }

  /** out[i] = 1 where s[0, i) is in the trie (forward-built). */
  markPrefixes(s: string, out: Uint8Array): void {
    let node = 0;
    for (let i = 0; i < s.length; i++) {
      const child = this.child(node, s.charCodeAt(i));
      if (child === undefined) return;
      node = child;
      if (this.terminal[node]) out[i + 1] = 1;
    }
  }

  /** out[i] = 1 where s[i, n) is in the trie (built over reversed strings). */
  markSuffixes(s: string, out: Uint8Array): void {
    let node = 0;
    for (let i = s.length - 1; i >= 0; i--) {
      const child = this.child(node, s.charCodeAt(i));
      if (child === undefined) return;
      node = child;
      if (this.terminal[node]) out[i] = 1;
    }
  }
}
