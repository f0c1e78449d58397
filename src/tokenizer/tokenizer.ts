/**
 * The runtime's Tokenizer over @huggingface/tokenizers, for two kinds of
 * folders: a tokenizer.json (run as is), or a SentencePiece tokenizer.model
 * converted to an equivalent tokenizer.json (convert.ts) whose text goes
 * through SpmNormalizer first. Adds what the library does not know: model
 * family specials (ChatGLM2's appended tokens and prefix, InternLM2's stop
 * token), BOS without doubling, special-token parsing for chat text, and
 * streaming decode.
 */
import { Tokenizer as HfTokenizer, type BPE } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.ts';
import { fromBase64, WS, type TokenizerJson } from './convert.ts';
import { SpmNormalizer } from './spm-normalizer.ts';
import { createStreamDecoder, type StreamDecoder } from './stream.ts';

export type TokenizerFamily = 'chatglm2' | 'internlm2' | 'generic';

export interface EncodeOptions {
  /** Add the model's leading specials: BOS, or ChatGLM2's [gMASK] sop. Default false. */
  addSpecial?: boolean;
  /** Alias of addSpecial. */
  bos?: boolean;
  /**
   * Recognise special tokens written as text (`<s>`, `<|im_start|>`...), as
   * chat templates produce them. Default false: text is text, as spm_encode does it.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop control tokens (BOS, EOS, ChatGLM2's [gMASK]/sop...). Default true. */
  skipSpecial?: boolean;
}

/** A special token a model family appends after the SentencePiece vocabulary. */
export interface AppendedSpecial {
  content: string;
  id: number;
}

export interface CoreOptions {
  family: TokenizerFamily;
  /** tokenizer_config.json (or an override of it). */
  config: Record<string, unknown>;
  /** For messages. */
  name: string;
}

/** tokenizer_config.json token fields may be strings or {content: string}. */
export function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** Characters per library call when encoding long SentencePiece texts. */
const CHUNK_CHARS = 8192;

const CHATGLM2_SPECIALS = ['[MASK]', '[gMASK]', '[sMASK]', 'sop', 'eop'];

export class SieveTokenizer {
  readonly family: TokenizerFamily;
  readonly kind: 'sentencepiece' | 'tokenizer.json';
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  /** Padding id when the model has one (batching; generation never needs it). */
  readonly padId: number | undefined;
  /** Stop ids: EOS, plus the family's end-of-turn token. */
  readonly eosIds: number[];
  /** Ids encode({addSpecial: true}) puts before the text. */
  readonly prefixIds: number[];
  /** Specials appended after the SentencePiece vocabulary (ChatGLM2). */
  readonly appended: AppendedSpecial[] = [];
  readonly config: Record<string, unknown>;
  private readonly hf: HfTokenizer;
  private readonly normalizer?: SpmNormalizer;
  private readonly spmFirstNormalizer?: SpmNormalizer;
  private readonly skipIds = new Set<number>();
  /** Special strings recognised in text when parseSpecial is set: one alternation, longest first. */
  private readonly specialIds = new Map<string, number>();
  private readonly specialPattern?: RegExp;
  private readonly hfVocabSize: number;
  /** Normalized SentencePiece text may be cut before any ▁ (the pre-tokenizer splits there anyway). */
  private readonly chunkable: boolean;
  /** tokenizer.json: its special added tokens as one alternation (chat content masking). */
  private readonly jsonSpecialPattern?: RegExp;
  private hfPlain?: HfTokenizer;
  private readonly json: TokenizerJson;
  private readonly name: string;

  constructor(json: TokenizerJson, opts: CoreOptions) {
    this.family = opts.family;
    this.config = opts.config;
    this.kind = json.sentencepiece ? 'sentencepiece' : 'tokenizer.json';
    this.json = json;
    this.name = opts.name;
    try {
      this.hf = new HfTokenizer(json, { clean_up_tokenization_spaces: false, ...opts.config });
    } catch (e) {
      throw new TokenizerError(`${opts.name}: tokenizer.json could not be built: ${(e as Error).message}`, { source: opts.name });
    }
    // Ids run to the largest one (a tokenizer.json may leave gaps).
    let maxId = -1;
    const vocabMap = this.hf.get_vocab(true);
    for (const id of vocabMap.values()) if (id > maxId) maxId = id;
    this.hfVocabSize = Math.max(vocabMap.size, maxId + 1);
    const spm = json.sentencepiece;
    const cfgTok = (k: string) => tokenString(this.config[k]);
    if (spm) {
      const settings = {
        addDummyPrefix: spm.addDummyPrefix,
        removeExtraWhitespaces: spm.removeExtraWhitespaces,
        escapeWhitespaces: spm.escapeWhitespaces,
        treatWhitespaceAsSuffix: spm.treatWhitespaceAsSuffix,
        userDefined: spm.userDefined,
      };
      const charsmap = fromBase64(spm.precompiledCharsmap);
      this.normalizer = new SpmNormalizer(settings, charsmap, opts.name);
      this.spmFirstNormalizer = new SpmNormalizer({ ...settings, addDummyPrefix: false }, charsmap, opts.name);
      this.applySameScoreRanks(json);
      this.chunkable = json.pre_tokenizer !== null && !spm.userDefined.some((u) => u.includes(WS));
      for (const id of spm.controlIds) this.skipIds.add(id);
      for (const id of spm.controlIds) this.specialIds.set(this.hf.id_to_token(id)!, id);
      for (const s of spm.userDefined) this.specialIds.set(s, this.hf.token_to_id(s)!);
      let vocabSize = spm.pieceCount;
      if (this.family === 'chatglm2') {
        for (const [i, content] of CHATGLM2_SPECIALS.entries()) this.appended.push({ content, id: spm.pieceCount + i });
        vocabSize += CHATGLM2_SPECIALS.length;
        for (const s of this.appended) this.skipIds.add(s.id);
      }
      this.vocabSize = vocabSize;
      this.bosId = spm.bosId >= 0 ? spm.bosId : undefined;
      this.padId = spm.padId >= 0 ? spm.padId : undefined;
      const eos = spm.eosId >= 0 ? spm.eosId : undefined;
      this.eosIds = eos === undefined ? [] : [eos];
      if (this.family === 'chatglm2') {
        this.prefixIds = [this.appended[1].id, this.appended[3].id]; // [gMASK] sop
      } else {
        const addBos = this.config.add_bos_token === undefined ? true : this.config.add_bos_token === true;
        this.prefixIds = addBos && this.bosId !== undefined ? [this.bosId] : [];
      }
    } else {
      this.chunkable = false;
      this.vocabSize = this.hfVocabSize;
      const bos = cfgTok('bos_token');
      this.bosId = bos === undefined ? undefined : this.hf.token_to_id(bos);
      const pad = cfgTok('pad_token');
      this.padId = pad === undefined ? undefined : this.hf.token_to_id(pad);
      const eos = cfgTok('eos_token');
      const eosId = eos === undefined ? undefined : this.hf.token_to_id(eos);
      this.eosIds = eosId === undefined ? [] : [eosId];
      // The post-processor decides what add_special_tokens prepends: measure it.
      const withSpecial = this.hf.encode('a', { add_special_tokens: true }).ids;
      const plain = this.hf.encode('a', { add_special_tokens: false }).ids;
      const at = indexOfRun(withSpecial, plain);
      this.prefixIds = at > 0 ? withSpecial.slice(0, at) : [];
      // tokenizer_config.json's add_bos_token overrides the post-processor, as in transformers.
      if (this.config.add_bos_token === false && this.bosId !== undefined) this.prefixIds = this.prefixIds.filter((id) => id !== this.bosId);
      if (this.config.add_bos_token === true && this.bosId !== undefined && this.prefixIds[0] !== this.bosId) this.prefixIds = [this.bosId, ...this.prefixIds];
      const specials: string[] = [];
      for (const [id, t] of this.hf.get_added_tokens_decoder()) {
        if (!t.special) continue;
        this.skipIds.add(id);
        if (t.content) specials.push(t.content);
      }
      if (specials.length) this.jsonSpecialPattern = alternation(specials);
    }
    // The family's end-of-turn token stops generation too.
    if (this.family === 'internlm2') {
      const imEnd = this.tokenToId('<|im_end|>');
      if (imEnd !== undefined && !this.eosIds.includes(imEnd)) this.eosIds.push(imEnd);
    }
    if (this.specialIds.size > 0) this.specialPattern = alternation([...this.specialIds.keys()]);
  }

  /**
   * SentencePiece merges pairs of equal score leftmost first; give merges of
   * equal score one rank so the library's position tie-break does the same.
   * The library keys ranks by JSON.stringify([left, right]); when that does
   * not hold (another version), merges keep their distinct ranks, which only
   * differs on equal-score pieces.
   */
  private applySameScoreRanks(json: TokenizerJson, hf: HfTokenizer = this.hf): void {
    const ranks = json.sentencepiece?.mergeRanks;
    const merges = json.model.merges as [string, string][];
    const model = hf.model as BPE | null;
    if (!ranks || !model || !(model.bpe_ranks instanceof Map) || merges.length === 0) return;
    if (model.bpe_ranks.get(JSON.stringify(merges[0])) !== 0 || model.bpe_ranks.size !== merges.length) return;
    for (let i = 0; i < merges.length; i++) if (ranks[i] !== i) model.bpe_ranks.set(JSON.stringify(merges[i]), ranks[i]);
  }

  tokenToId(token: string): number | undefined {
    const app = this.appended.find((s) => s.content === token);
    return app ? app.id : this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    const app = this.appended.find((s) => s.id === id);
    return app ? app.content : this.hf.id_to_token(id);
  }

  /** Text -> ids. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`encode expects a string, got ${typeof text}`);
    const ids = this.guard('encode', () => (opts.parseSpecial ? this.encodeParsingSpecials(text) : this.encodeText(text, true)));
    const addSpecial = opts.addSpecial ?? opts.bos ?? false;
    return addSpecial ? this.withPrefix(ids) : ids;
  }

  /** Prepends the prefix ids unless the text already starts with them (no double BOS). */
  withPrefix(ids: number[]): number[] {
    const p = this.prefixIds;
    if (p.length === 0) return ids;
    if (ids.length >= p.length && p.every((id, i) => ids[i] === id)) return ids;
    const out = p.slice();
    append(out, ids);
    return out;
  }

  private encodeText(text: string, first: boolean, hf: HfTokenizer = this.hf): number[] {
    if (text.length === 0) return [];
    if (this.normalizer) {
      const normalized = (first ? this.normalizer : this.spmFirstNormalizer!).normalize(text);
      if (normalized.length === 0) return [];
      if (!this.chunkable || normalized.length <= CHUNK_CHARS) return hf.encode(normalized, { add_special_tokens: false }).ids;
      // Long texts in pieces: the library's encode slows down more than linearly on
      // very long inputs; cuts fall before a ▁, where its pre-tokenizer splits anyway.
      const ids: number[] = [];
      for (let start = 0; start < normalized.length;) {
        let end = start + CHUNK_CHARS;
        if (end < normalized.length) {
          const ws = normalized.indexOf(WS, end);
          end = ws < 0 ? normalized.length : ws;
        } else end = normalized.length;
        append(ids, hf.encode(normalized.slice(start, end), { add_special_tokens: false }).ids);
        start = end;
      }
      return ids;
    }
    return hf.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Splits the text at special tokens written in it; the pieces between are
   * encoded as text, the dummy prefix only at the start of the whole text
   * (as Hugging Face's SentencePiece-derived tokenizers do).
   */
  private encodeParsingSpecials(text: string, spans?: readonly (readonly [number, number])[]): number[] {
    if (!this.normalizer || !this.specialPattern) return this.encodeText(text, true);
    const ids: number[] = [];
    const re = new RegExp(this.specialPattern);
    let segStart = 0;
    let k = 0;
    // A segment holding a special written inside a message's content is
    // encoded by a copy of the tokenizer without added tokens: it stays text.
    let masked = false;
    const flush = (end: number) => {
      if (end > segStart) append(ids, this.encodeText(text.slice(segStart, end), segStart === 0, masked ? (this.hfPlain ??= this.buildPlain()) : this.hf));
      masked = false;
    };
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (spans) {
        while (k < spans.length && spans[k][1] <= m.index) k++;
        if (k < spans.length && spans[k][0] < m.index + m[0].length) {
          masked = true;
          continue;
        }
      }
      flush(m.index);
      ids.push(this.specialIds.get(m[0])!);
      segStart = m.index + m[0].length;
    }
    flush(text.length);
    return ids;
  }

  /**
   * Runs a call into the tokenizer library: a failure inside it (a
   * tokenizer.json it accepted but cannot run) is a TokenizerError, and an id
   * it produces outside the vocabulary is one too.
   */
  private guard(what: string, f: () => number[]): number[] {
    let ids: number[];
    try {
      ids = f();
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(`${this.name}: ${what} failed in the tokenizer: ${(e as Error)?.message ?? String(e)}`, { source: this.name });
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(
          `${this.name}: ${what} produced token id ${id}, outside the vocabulary [0, ${this.vocabSize}) (the tokenizer file is inconsistent)`,
          { source: this.name, id },
        );
      }
    }
    return ids;
  }

  /** Whether `text` contains a special-token string (one that parseSpecial would turn into a special id). */
  containsSpecial(text: string): boolean {
    const re = this.specialPattern ?? this.jsonSpecialPattern;
    if (!re) return false;
    return new RegExp(re.source, 'u').test(text);
  }

  /**
   * Encodes a rendered chat prompt: special-token strings become special ids
   * only outside `spans` (the messages' contents, sorted, non-overlapping);
   * inside them they are text. The text is otherwise encoded exactly as
   * encode(text, { parseSpecial: true }) does it.
   */
  encodeMasked(text: string, spans: readonly (readonly [number, number])[]): number[] {
    return this.guard('encode', () => this.encodeMaskedUnchecked(text, spans));
  }

  private encodeMaskedUnchecked(text: string, spans: readonly (readonly [number, number])[]): number[] {
    if (this.normalizer) return this.encodeParsingSpecials(text, spans);
    const re0 = this.jsonSpecialPattern;
    if (!re0) return this.encodeText(text, true);
    const inSpan = (a: number, b: number, k: { i: number }) => {
      while (k.i < spans.length && spans[k.i][1] <= a) k.i++;
      return k.i < spans.length && spans[k.i][0] < b;
    };
    // The library splits at every added special by itself: when no content holds one, let it.
    const re = new RegExp(re0);
    const cursor = { i: 0 };
    const allowed: [number, number][] = [];
    let masked = false;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (inSpan(m.index, m.index + m[0].length, cursor)) masked = true;
      else allowed.push([m.index, m.index + m[0].length]);
    }
    if (!masked) return this.encodeText(text, true);
    // Otherwise: the template's specials by id, the text between them by a
    // copy of the tokenizer that knows no special added tokens.
    const plain = (this.hfPlain ??= this.buildPlain());
    const ids: number[] = [];
    let at = 0;
    for (const [a, b] of allowed) {
      if (a > at) append(ids, plain.encode(text.slice(at, a), { add_special_tokens: false }).ids);
      ids.push(this.hf.token_to_id(text.slice(a, b))!);
      at = b;
    }
    if (at < text.length) append(ids, plain.encode(text.slice(at), { add_special_tokens: false }).ids);
    return ids;
  }

  /** The tokenizer without special added tokens (SentencePiece: without user-defined symbols). */
  private buildPlain(): HfTokenizer {
    const keep = (t: { special: boolean }) => !this.normalizer && !t.special;
    const json = { ...this.json, added_tokens: this.json.added_tokens.filter(keep) };
    const hf = new HfTokenizer(json, { clean_up_tokenization_spaces: false, ...this.config });
    this.applySameScoreRanks(this.json, hf);
    return hf;
  }

  /** Ids -> text. */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial ?? true;
    const parts: string[] = [];
    let run: number[] = [];
    const flushRun = () => {
      if (run.length) {
        try {
          parts.push(this.hf.decode(run, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
        } catch (e) {
          throw new TokenizerError(`${this.name}: decode failed in the tokenizer: ${(e as Error)?.message ?? String(e)}`, { source: this.name });
        }
      }
      run = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`, { id, vocabSize: this.vocabSize });
      }
      if (skip && this.skipIds.has(id)) continue;
      if (id >= this.hfVocabSize) {
        flushRun();
        parts.push(this.idToToken(id) ?? '');
        continue;
      }
      run.push(id);
    }
    flushRun();
    return parts.join('');
  }

  streamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    return createStreamDecoder((ids) => this.decode(ids, opts));
  }
}

/** Literal strings as one global regex, longest first. */
function alternation(strings: string[]): RegExp {
  const alternatives = strings
    .slice()
    .sort((a, b) => b.length - a.length)
    .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(alternatives.join('|'), 'gu');
}

/** Appends without spreading (a spread of 100k+ ids would overflow the call stack). */
function append(to: number[], from: number[]): void {
  for (let i = 0; i < from.length; i++) to.push(from[i]);
}

/** Index where `run` occurs in `arr`, or -1. */
function indexOfRun(arr: number[], run: number[]): number {
  outer: for (let i = 0; i + run.length <= arr.length; i++) {
    for (let j = 0; j < run.length; j++) if (arr[i + j] !== run[j]) continue outer;
    return i;
  }
  return -1;
}
