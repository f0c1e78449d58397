/** A tokenizer from in-memory tokenizer.model bytes (tests, bench/tokenize.ts), converted as loadTokenizer converts a folder's. */
import { cachedConversion } from '../../src/tokenizer/cache.ts';
import { sentencePieceToJson } from '../../src/tokenizer/convert.ts';
import { parseSentencePiece } from '../../src/tokenizer/sentencepiece.ts';
import { Tokenizer, type TokenizerFamily } from '../../src/tokenizer/index.ts';

export async function tokenizerFromSentencePiece(
  bytes: Uint8Array,
  opts: { family?: TokenizerFamily; config?: Record<string, unknown>; name?: string } = {},
): Promise<Tokenizer> {
  const name = opts.name ?? 'tokenizer.model';
  const json = await cachedConversion(bytes, () => sentencePieceToJson(parseSentencePiece(bytes, name), name));
  return new Tokenizer(json, { family: opts.family ?? 'generic', config: opts.config ?? {}, name });
}
