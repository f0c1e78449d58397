/**
 * Tokenizers and chat formats: the public entry point.
 *
 *   const tok = await loadTokenizer(source, { family: 'internlm2' });
 *   tok.encode('Hello', { addSpecial: true })   // [bos, ...]
 *   tok.formatChat([{ role: 'user', content: 'hi' }]) // { text, ids }
 *   const s = tok.streamDecoder(); s.push(id) ... s.flush()
 *
 * A folder with tokenizer.json runs it through @huggingface/tokenizers; a
 * folder with only a SentencePiece tokenizer.model (ChatGLM2, InternLM2,
 * llama2.c) is converted to an equivalent tokenizer.json first (cached by the
 * model's hash). tokenizer_config.json, when present, gives the chat template,
 * the special token names and add_bos_token.
 */
import { ConfigError, MissingFileError, ModelFormatError, TokenizerError } from '../errors.ts';
import type { FileSource } from '../loader/source.ts';
import { cachedConversion } from './cache.ts';
import { ChatFormat, type ChatFormatOptions, type ChatMessage } from './chat.ts';
import { sentencePieceToJson, type TokenizerJson } from './convert.ts';
import { parseSentencePiece } from './sentencepiece.ts';
import { validateTokenizerJson } from './validate-json.ts';
import { SieveTokenizer, tokenString, type CoreOptions, type TokenizerFamily } from './tokenizer.ts';

export type { ChatMessage, ChatFormatOptions } from './chat.ts';
export type { StreamDecoder } from './stream.ts';
export type { TokenizerFamily, EncodeOptions, DecodeOptions } from './tokenizer.ts';
export { CHATGLM2_TEMPLATE, INTERNLM2_TEMPLATE } from './chat.ts';
export { parseSentencePiece } from './sentencepiece.ts';
export { sentencePieceToJson } from './convert.ts';
export { validateTokenizerJson, backtrackingRisk } from './validate-json.ts';

export interface LoadTokenizerOptions {
  /** Model family; default: from config.json's model_type ('chatglm' -> chatglm2, 'internlm2'), else generic. */
  family?: TokenizerFamily;
  /** tokenizer_config.json contents; default: read from the folder when present. */
  config?: Record<string, unknown>;
  /** config.json contents (for model_type); default: read from the folder when present. */
  modelConfig?: Record<string, unknown>;
}

export interface ChatEncoding {
  /** The rendered prompt. */
  text: string;
  /** Its ids, family prefix / BOS included exactly once. */
  ids: number[];
}

export class Tokenizer extends SieveTokenizer {
  readonly chat: ChatFormat;

  constructor(json: TokenizerJson, opts: CoreOptions) {
    super(json, opts);
    const vars: Record<string, string> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const v = tokenString(this.config[k]);
      if (v !== undefined) vars[k] = v;
    }
    if (vars.bos_token === undefined && this.bosId !== undefined) vars.bos_token = this.idToToken(this.bosId) ?? '';
    if (vars.eos_token === undefined && this.eosIds.length) vars.eos_token = this.idToToken(this.eosIds[0]) ?? '';
    this.chat = ChatFormat.select(this.config, this.family, this.tokenToId('<|im_start|>') !== undefined, vars);
  }

  /** Whether the model has a chat format; without one formatChat gives plain completion text. */
  get hasChatFormat(): boolean {
    return this.chat.isChat;
  }

  /**
   * Renders messages with the chat format and encodes the result: special
   * tokens written by the template are recognised, and the BOS / family
   * prefix is added only where the template did not already write it.
   */
  formatChat(messages: ChatMessage[], opts: ChatFormatOptions = {}): ChatEncoding {
    if (opts.allowSpecialTokens) {
      const text = this.chat.render(messages, opts);
      return { text, ids: this.withPrefix(this.encode(text, { parseSpecial: true })) };
    }
    // Specials only where the template put them: message content is text.
    const { text, spans } = this.chat.renderWithSpans(messages, opts);
    if (spans) return { text, ids: this.withPrefix(this.encodeMasked(text, spans)) };
    const i = messages.findIndex((m) => this.containsSpecial(m.content));
    if (i >= 0) {
      throw new TokenizerError(
        `message ${i} contains special-token text, and this chat template transforms message content, so it cannot be kept as plain text; remove it or pass allowSpecialTokens: true`,
        { index: i },
      );
    }
    return { text, ids: this.withPrefix(this.encode(text, { parseSpecial: true })) };
  }
}

function familyOf(modelType: unknown): TokenizerFamily {
  if (modelType === 'chatglm') return 'chatglm2';
  if (modelType === 'internlm2') return 'internlm2';
  return 'generic';
}

async function readJson(source: FileSource, path: string): Promise<Record<string, unknown>> {
  const text = await source.text(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`${source.name}/${path}`, `not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ModelFormatError(`${source.name}/${path}`, 'expected a JSON object');
  return v as Record<string, unknown>;
}

/** Loads the tokenizer of a checkpoint folder. */
export async function loadTokenizer(source: FileSource, opts: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  const config = opts.config ?? ((await source.has('tokenizer_config.json')) ? await readJson(source, 'tokenizer_config.json') : {});
  let family = opts.family;
  if (!family) {
    const modelConfig = opts.modelConfig ?? ((await source.has('config.json')) ? await readJson(source, 'config.json') : {});
    family = familyOf(modelConfig.model_type);
  }
  if (!['chatglm2', 'internlm2', 'generic'].includes(family)) {
    throw new ConfigError(`unknown tokenizer family '${family}' (expected chatglm2, internlm2 or generic)`, { family });
  }
  const core: CoreOptions = { family, config, name: source.name };
  if (await source.has('tokenizer.json')) {
    const json = await readJson(source, 'tokenizer.json');
    if (!json.model || typeof json.model !== 'object') {
      throw new ModelFormatError(`${source.name}/tokenizer.json`, 'has no "model" object');
    }
    validateTokenizerJson(json, `${source.name}/tokenizer.json`);
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
    return new Tokenizer(full as unknown as TokenizerJson, core);
  }
  if (await source.has('tokenizer.model')) {
    const file = `${source.name}/tokenizer.model`;
    const bytes = await source.read('tokenizer.model', 0, await source.size('tokenizer.model'));
    const json = await cachedConversion(bytes, () => sentencePieceToJson(parseSentencePiece(bytes, file), file));
    return new Tokenizer(json, core);
  }
  throw new MissingFileError(`${source.name}/tokenizer.json`, 'the folder has neither tokenizer.json nor tokenizer.model: a tokenizer is required');
}
