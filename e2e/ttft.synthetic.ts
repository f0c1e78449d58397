/**
 * The structured synthetic model (src/synthetic/) as a folder the TTFT
 * harness serves over HTTP: config.json and safetensors synthesized on each
 * read (nothing is stored, a 7B shape included), plus a generated word-level
 * tokenizer.json ("t0".."t{vocab-1}") since the harness sends token ids and
 * only needs the model's output decoded. Prompts come from syntheticPrompt:
 * sink at position 0, separator stripes, optional needles and question rows.
 * Imported by scripts/ttft.mjs (through tsx here; inlined by its --bundle).
 */
import { syntheticPrompt } from '../src/synthetic/prompt.ts';
import { structuredSource } from '../src/synthetic/source.ts';
import { PRESETS, type StructuredOptions } from '../src/synthetic/structured.ts';

export interface VirtualFolder {
  name: string;
  config: Record<string, unknown>;
  size(path: string): number | undefined;
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  promptIds(seqLen: number, seed: number): number[];
}

/** The served folder of a preset (PRESETS of src/synthetic/structured.ts) with `overrides` (dtype, seed, sharpness...). */
export async function prepareSynthetic(preset: string, overrides: Partial<StructuredOptions>, contextLength: number): Promise<VirtualFolder> {
  const base = (PRESETS as Record<string, StructuredOptions>)[preset];
  if (!base) throw new Error(`--synthetic: unknown preset '${preset}' (one of ${Object.keys(PRESETS).join(', ')})`);
  const opts: StructuredOptions = { dtype: 'F16', seed: 1, ...base, contextLength, ...overrides };
  const src = structuredSource(opts);
  const vocab: Record<string, number> = {};
  for (let i = 0; i < opts.vocabSize; i++) vocab[`t${i}`] = i;
  const texts = new Map<string, Uint8Array>([['tokenizer.json', new TextEncoder().encode(JSON.stringify({
    version: '1.0', added_tokens: [], normalizer: null, post_processor: null, decoder: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    model: { type: 'WordLevel', vocab, unk_token: 't0' },
  }))]]);
  const sizes = new Map<string, number>();
  for (const p of await src.list()) sizes.set(p, await src.size(p));
  const config = JSON.parse(await src.text('config.json')) as Record<string, unknown>;
  return {
    name: `synthetic-${preset}`,
    config,
    size: (p) => texts.get(p)?.byteLength ?? sizes.get(p),
    async read(p, offset, length) {
      const t = texts.get(p);
      return t ? t.subarray(offset, offset + length) : src.read(p, offset, length);
    },
    promptIds: (seqLen, seed) => Array.from(syntheticPrompt({ seqLen, vocabSize: opts.vocabSize, seed, needles: 4 }).ids),
  };
}
