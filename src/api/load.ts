/**
 * loadModel: a checkpoint folder (URL, FileList, directory handle, Node path)
 * -> a LocalEngine ready to generate. Everything made on the GPU before a
 * failure is released again; a device this call created is destroyed.
 */
import { AbortedError, TokenizerError } from '../errors.ts';
import { getGpu } from '../gpu/device.ts';
import { openSource, type SourceInput } from '../loader/sources.ts';
import type { FileSource } from '../loader/source.ts';
import { loadTokenizer, type Tokenizer } from '../tokenizer/index.ts';
import { loadEngine } from '../engine/index.ts';
import type { Engine } from '../engine/types.ts';
import { LocalEngine, type TokenizerAdapter } from './engine.ts';
import { validateLoadOptions } from './options.ts';
import type { LoadOptions } from './types.ts';

/** The API's view of src/tokenizer's Tokenizer. */
export function adaptTokenizer(tok: Tokenizer, opts: { allowSpecialTokens?: boolean } = {}): TokenizerAdapter {
  const allowSpecialTokens = opts.allowSpecialTokens === true;
  return {
    encode: (text) => tok.encode(text, { addSpecial: true }),
    encodeChat: (messages) => tok.formatChat(messages, { addGenerationPrompt: true, allowSpecialTokens }).ids,
    newDecoder: () => tok.streamDecoder(),
    eosIds: tok.eosIds,
    hasChatFormat: tok.hasChatFormat,
  };
}

/**
 * Every id the tokenizer can produce must have an embedding row: a tokenizer
 * larger than the model's vocabulary belongs to another model (the model's
 * may be larger: padded_vocab_size rounds up).
 */
export function checkVocab(tokenizerSize: number, modelSize: number, folder: string): void {
  if (tokenizerSize > modelSize) {
    throw new TokenizerError(
      `${folder}: the tokenizer has ${tokenizerSize} tokens but the model's vocabulary (config.json vocab_size / padded_vocab_size) has ${modelSize}: they do not belong together`,
      { tokenizerSize, modelSize },
    );
  }
}

function modelName(source: SourceInput, fs: FileSource): string {
  const name = typeof source === 'string' || source instanceof URL ? String(source) : fs.name;
  const parts = name.split(/[\\/]/).filter(Boolean);
  return parts.at(-1) ?? name;
}

export async function loadModel(source: SourceInput, options: LoadOptions = {}): Promise<LocalEngine> {
  validateLoadOptions(options);
  const { signal } = options;
  const checkAbort = () => {
    if (signal?.aborted) throw new AbortedError('loadModel was aborted');
  };
  checkAbort();
  const ownsDevice = !options.gpu;
  const ctx = options.gpu ?? (await getGpu());
  let engine: Engine | undefined;
  try {
    // progress comes from the weight loader (bytes of weights, every source kind), not the URL fetcher too
    const fs = openSource(source, options.cache === false ? { cache: false } : {});
    const tok = await loadTokenizer(fs);
    const tokenizer = adaptTokenizer(tok, { allowSpecialTokens: options.allowSpecialTokens });
    checkAbort();
    engine = await loadEngine(ctx, fs, {
      weights: options.weights,
      contextLength: options.contextLength,
      prefillChunk: options.prefillChunk,
      kvDtype: options.kvDtype,
      attention: options.attention,
      onProgress: options.onProgress,
      signal,
      allowNonFinite: options.allowNonFinite,
      kernels: options.kernels,
      checkSpec: (spec) => checkVocab(tok.vocabSize, spec.vocabSize, fs.name),
    });
    checkAbort();
    return await LocalEngine.create({
      ctx,
      engine: engine!,
      tokenizer,
      ownsDevice,
      attention: options.attention,
      modelId: options.modelId ?? modelName(source, fs),
    });
  } catch (e) {
    try {
      engine?.destroy();
    } catch {
      /* already gone with the device */
    }
    if (ownsDevice) ctx.destroy();
    throw e;
  }
}
