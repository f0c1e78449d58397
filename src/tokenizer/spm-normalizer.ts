/**
 * SentencePiece's normalizer, exactly: the precompiled character map (a Darts
 * double-array trie over UTF-8 bytes plus a blob of NUL-terminated
 * replacements; e.g. nmt_nfkc), user-defined symbols kept verbatim, leading /
 * trailing / repeated whitespace removal, the dummy prefix, and spaces
 * escaped to U+2581 (▁).
 *
 * Why not @huggingface/tokenizers' normalizers: that library applies its
 * normalizer to each section of text between added tokens separately (so a
 * dummy prefix or whitespace collapsing would happen per section, unlike
 * SentencePiece, which normalizes the whole text once), and its "Precompiled"
 * normalizer approximates the charsmap with NFKC. The converted tokenizer.json
 * therefore carries these settings in its `sentencepiece` block and this class
 * applies them before the text reaches the library's BPE model.
 */
import { ModelFormatError } from '../errors.ts';

export interface SpmNormalizerSettings {
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  treatWhitespaceAsSuffix: boolean;
  /** Symbols copied verbatim (SentencePiece USER_DEFINED pieces). */
  userDefined: string[];
}

const SPACE = 0x20;
const WS_ESCAPED = [0xe2, 0x96, 0x81]; // U+2581
const REPLACEMENT_CHAR = [0xef, 0xbf, 0xbd]; // U+FFFD

/** A byte trie for longest-prefix matching of user-defined symbols. */
class ByteTrie {
  private readonly root = new Map<number, ByteTrieNode>();
  add(word: Uint8Array): void {
    let level = this.root;
    for (let i = 0; i < word.length; i++) {
      let node = level.get(word[i]);
      if (!node) level.set(word[i], (node = { end: false, next: new Map() }));
      if (i === word.length - 1) node.end = true;
      level = node.next;
    }
  }
  /** Length of the longest symbol starting at `pos`, or 0. */
  match(bytes: Uint8Array, pos: number): number {
    let level = this.root;
    let best = 0;
    for (let i = pos; i < bytes.length; i++) {
      const node = level.get(bytes[i]);
      if (!node) break;
      if (node.end) best = i - pos + 1;
      level = node.next;
    }
    return best;
  }
  get empty(): boolean {
    return this.root.size === 0;
  }
}
interface ByteTrieNode {
  end: boolean;
  next: Map<number, ByteTrieNode>;
}

/** Length of the valid UTF-8 character at `pos`, or 0 when malformed. */
function utf8Length(b: Uint8Array, pos: number): number {
  const c = b[pos];
  if (c < 0x80) return 1;
  let n: number;
  let min: number;
  if ((c & 0xe0) === 0xc0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xf0) === 0xe0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xf8) === 0xf0) {
    n = 4;
    min = 0x10000;
  } else return 0;
  if (pos + n > b.length) return 0;
  let cp = c & (0x7f >> n);
  for (let i = 1; i < n; i++) {
    const cc = b[pos + i];
    if ((cc & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

/** A growable byte buffer. */
class Bytes {
  buf: Uint8Array;
  len = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(16, capacity));
  }
  push(b: number): void {
    if (this.len === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.len++] = b;
  }
  endsWith(s: number[]): boolean {
    if (this.len < s.length) return false;
    for (let i = 0; i < s.length; i++) if (this.buf[this.len - s.length + i] !== s[i]) return false;
    return true;
  }
}

/** The precompiled charsmap: `uint32 trieBytes | trie units | replacement strings`. */
class CharsMap {
  private readonly units: Uint32Array;
  readonly strings: Uint8Array;
  matchValue = 0;
  constructor(blob: Uint8Array, file: string) {
    if (blob.length <= 4) throw new ModelFormatError(file, `precompiled_charsmap of ${blob.length} bytes is too short`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || 4 + trieBytes >= blob.length) {
      throw new ModelFormatError(file, `precompiled_charsmap trie of ${trieBytes} bytes does not fit its ${blob.length}-byte blob`);
    }
    this.units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.strings = blob.subarray(4 + trieBytes);
  }

  /**
   * Longest rule matching `bytes` at `pos`: its length (0: none), with the
   * replacement's start in the strings blob left in `matchValue`. Darts unit layout: bit 8 has_leaf,
   * label = unit & (2^31 | 0xff), offset = (unit >> 10) << ((unit & 2^9) >> 6),
   * value = unit & (2^31 - 1).
   */
  match(bytes: Uint8Array, pos: number): number {
    const u = this.units;
    let node = offset(u[0]);
    let bestLen = 0;
    let bestValue = 0;
    for (let i = pos; i < bytes.length; i++) {
      const c = bytes[i];
      node ^= c;
      if (node >= u.length) break;
      const unit = u[node];
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      node ^= offset(unit);
      if ((unit >>> 8) & 1) {
        if (node >= u.length) break;
        bestLen = i - pos + 1;
        bestValue = u[node] & 0x7fffffff;
      }
    }
    this.matchValue = bestValue;
    return bestLen;
  }

  /** End of the NUL-terminated replacement starting at `start`. */
  replacementEnd(start: number): number {
    let end = start;
    while (end < this.strings.length && this.strings[end] !== 0) end++;
    return end;
  }
}

function offset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

export class SpmNormalizer {
  private readonly charsMap?: CharsMap;
  private readonly userTrie = new ByteTrie();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  constructor(
    readonly settings: SpmNormalizerSettings,
    precompiledCharsmap: Uint8Array,
    file = 'tokenizer.model',
  ) {
    if (precompiledCharsmap.length > 0) this.charsMap = new CharsMap(precompiledCharsmap, file);
    for (const s of settings.userDefined) this.userTrie.add(this.encoder.encode(s));
  }

  // The normalized form of the prefix at a position, set by `prefix` without allocating:
  // bytes spArr[spStart, spEnd).
  private spArr: Uint8Array = new Uint8Array(0);
  private spStart = 0;
  private spEnd = 0;
  private static readonly REPLACEMENT = Uint8Array.from(REPLACEMENT_CHAR);

  /** Normalizes the prefix of `input` at `pos` into spArr/spStart/spEnd; returns the bytes consumed. */
  private prefix(input: Uint8Array, pos: number): number {
    if (!this.userTrie.empty) {
      const n = this.userTrie.match(input, pos);
      if (n > 0) {
        this.spArr = input;
        this.spStart = pos;
        this.spEnd = pos + n;
        return n;
      }
    }
    if (this.charsMap) {
      const len = this.charsMap.match(input, pos);
      if (len > 0) {
        this.spArr = this.charsMap.strings;
        this.spStart = this.charsMap.matchValue;
        this.spEnd = this.charsMap.replacementEnd(this.spStart);
        return len;
      }
    }
    const n = utf8Length(input, pos);
    if (n === 0) {
      this.spArr = SpmNormalizer.REPLACEMENT;
      this.spStart = 0;
      this.spEnd = 3;
      return 1;
    }
    this.spArr = input;
    this.spStart = pos;
    this.spEnd = pos + n;
    return n;
  }

  /** Normalizes a whole text as SentencePiece's Normalizer::Normalize does. */
  normalize(text: string): string {
    const s = this.settings;
    const input = this.encoder.encode(text);
    let pos = 0;
    if (s.removeExtraWhitespaces) {
      while (pos < input.length) {
        const n = this.prefix(input, pos);
        if (!(this.spEnd - this.spStart === 1 && this.spArr[this.spStart] === SPACE)) break;
        pos += n;
      }
    }
    if (pos >= input.length) return '';
    const out = new Bytes(input.length + (input.length >> 2) + 16);
    const addWs = () => {
      if (s.escapeWhitespaces) for (const b of WS_ESCAPED) out.push(b);
      else out.push(SPACE);
    };
    if (!s.treatWhitespaceAsSuffix && s.addDummyPrefix) addWs();
    let prevSpace = s.removeExtraWhitespaces;
    while (pos < input.length) {
      const n = this.prefix(input, pos);
      const sp = this.spArr;
      let start = this.spStart;
      const end = this.spEnd;
      if (prevSpace) while (start < end && sp[start] === SPACE) start++;
      if (start < end) {
        for (let i = start; i < end; i++) {
          if (s.escapeWhitespaces && sp[i] === SPACE) addWs();
          else out.push(sp[i]);
        }
        prevSpace = sp[end - 1] === SPACE;
      }
      pos += n;
      if (!s.removeExtraWhitespaces) prevSpace = false;
    }
    if (s.removeExtraWhitespaces) {
      const ws = s.escapeWhitespaces ? WS_ESCAPED : [SPACE];
      while (out.endsWith(ws)) out.len -= ws.length;
    }
    if (s.treatWhitespaceAsSuffix && s.addDummyPrefix) addWs();
    return this.decoder.decode(out.buf.subarray(0, out.len));
  }
}
