/**
 * Fuzz: tokenizer.json -> load (checks + @huggingface/tokenizers), encode
 * and decode random text, format a chat. 1,000 seeded cases: generated
 * normalizers, pre-tokenizers and decoders with random regexes (catastrophic
 * ones among them), random models (BPE, WordPiece, WordLevel, Unigram) with
 * hostile ids, random added tokens, and byte mutations of valid files. Each
 * case ends in a result or a typed error within the harness's bounds.
 */
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';
import type { Rng } from '../../src/util/rng.ts';
import { memSource } from '../loader/mem-source.ts';
import { smallTokenizerJson } from '../tokenizer/json-fixture.ts';
import { mutateBytes, pick, randomText, runFuzz } from './harness.ts';

const ATOMS = ['a', 'b', ' ', '\\s', '\\S', '\\w', '\\d', '[a-z]', '[^\\s]', '.', '\\p{L}', '\\p{N}', "'s", '\\n', '[\\r\\n]'];
const QUANTS = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '{2,}', '*?', '+?'];

function regex(rng: Rng, depth = 0): string {
  if (rng.next() < 0.05) return pick(rng, ['(', '[', '\\', '(?<', 'a{2,1}', '*', '(?', '\\p{Foo}']);
  const alts: string[] = [];
  const nAlts = 1 + rng.int(3);
  for (let a = 0; a < nAlts; a++) {
    let seq = '';
    const n = 1 + rng.int(4);
    for (let i = 0; i < n; i++) {
      const atom = depth < 2 && rng.next() < 0.25 ? `(${pick(rng, ['', '?:', '?=', '?!'])}${regex(rng, depth + 1)})` : pick(rng, ATOMS);
      seq += atom + pick(rng, QUANTS);
    }
    if (rng.next() < 0.1) seq += '$';
    alts.push(seq);
  }
  return alts.join('|');
}

function pattern(rng: Rng): Record<string, string> {
  return rng.next() < 0.7 ? { Regex: regex(rng) } : { String: randomText(rng, 4) };
}

function normalizer(rng: Rng, depth = 0): unknown {
  const r = rng.int(9);
  if (r === 0 && depth < 3) return { type: 'Sequence', normalizers: Array.from({ length: rng.int(3) }, () => normalizer(rng, depth + 1)) };
  return pick(rng, [
    null,
    { type: 'Lowercase' },
    { type: 'NFC' },
    { type: 'NFKC' },
    { type: 'Strip', strip_left: true, strip_right: rng.next() < 0.5 },
    { type: 'Replace', pattern: pattern(rng), content: randomText(rng, 3) },
    { type: 'Prepend', prepend: '▁' },
    { type: 'Bogus' },
  ]);
}

function preTokenizer(rng: Rng, depth = 0): unknown {
  const r = rng.int(9);
  if (r === 0 && depth < 3) return { type: 'Sequence', pretokenizers: Array.from({ length: rng.int(3) }, () => preTokenizer(rng, depth + 1)) };
  return pick(rng, [
    null,
    { type: 'Whitespace' },
    { type: 'WhitespaceSplit' },
    { type: 'ByteLevel', add_prefix_space: rng.next() < 0.5, use_regex: rng.next() < 0.5 },
    {
      type: 'Split',
      pattern: pattern(rng),
      behavior: pick(rng, ['Isolated', 'Removed', 'MergedWithPrevious', 'Contiguous', 'Weird']),
      invert: rng.next() < 0.3,
    },
    { type: 'Metaspace', replacement: '▁', add_prefix_space: true },
    { type: 'Digits', individual_digits: true },
    { type: 'Punctuation' },
  ]);
}

function decoder(rng: Rng): unknown {
  return pick(rng, [
    null,
    { type: 'ByteLevel' },
    { type: 'Fuse' },
    { type: 'Replace', pattern: pattern(rng), content: ' ' },
    { type: 'Metaspace', replacement: '▁' },
    { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    { type: 'WordPiece', prefix: '##' },
    { type: 'Nope' },
  ]);
}

function hostileId(rng: Rng, n: number): unknown {
  return pick(rng, [rng.int(n), rng.int(n), rng.int(n), n + rng.int(3), 1e9, -1, 2.5, '7', null, 2 ** 53]);
}

function model(rng: Rng): Record<string, unknown> {
  const n = 3 + rng.int(40);
  const tokens = new Set<string>(['<unk>', '<s>', '</s>']);
  while (tokens.size < n) tokens.add(randomText(rng, 1 + rng.int(4)) || `t${tokens.size}`);
  const list = [...tokens];
  const vocab: Record<string, unknown> = {};
  list.forEach((t, i) => {
    vocab[t] = rng.next() < 0.03 ? hostileId(rng, n) : i;
  });
  switch (rng.int(5)) {
    case 0:
      return { type: 'WordPiece', unk_token: '<unk>', vocab, continuing_subword_prefix: '##', max_input_chars_per_word: rng.int(200) };
    case 1:
      return { type: 'WordLevel', unk_token: '<unk>', vocab };
    case 2:
      return {
        type: 'Unigram',
        unk_id: rng.next() < 0.9 ? 0 : hostileId(rng, n),
        vocab: list.map((t) => [t, rng.next() < 0.05 ? NaN : -rng.next() * 10]),
        byte_fallback: rng.next() < 0.5,
      };
    default: {
      const merges: [string, string][] = [];
      for (let i = 0; i < rng.int(20); i++) merges.push([pick(rng, list), pick(rng, list)]);
      return {
        type: 'BPE',
        unk_token: rng.next() < 0.9 ? '<unk>' : 'missing',
        vocab,
        merges,
        byte_fallback: rng.next() < 0.5,
        fuse_unk: rng.next() < 0.5,
        dropout: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
      };
    }
  }
}

function generated(rng: Rng): Record<string, unknown> {
  const m = model(rng);
  const n = Array.isArray(m.vocab) ? (m.vocab as unknown[]).length : Object.keys(m.vocab as object).length;
  const added = [];
  for (let i = 0; i < rng.int(5); i++) {
    added.push({
      id: rng.next() < 0.9 ? n + i : hostileId(rng, n),
      content: pick(rng, ['<|im_start|>', '<|im_end|>', '<s>', '</s>', randomText(rng, 6) || 'x']),
      special: rng.next() < 0.7,
      single_word: false,
      lstrip: rng.next() < 0.2,
      rstrip: rng.next() < 0.2,
      normalized: rng.next() < 0.3,
    });
  }
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: normalizer(rng),
    pre_tokenizer: preTokenizer(rng),
    post_processor:
      rng.next() < 0.8
        ? null
        : {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [],
            special_tokens: { '<s>': { id: '<s>', ids: [rng.next() < 0.8 ? 1 : 1e9], tokens: ['<s>'] } },
          },
    decoder: decoder(rng),
    model: m,
  };
}

const validText = new TextEncoder().encode(JSON.stringify(smallTokenizerJson({ pre_tokenizer: { type: 'Whitespace' }, decoder: { type: 'Fuse' } })));
const IM_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}";

async function runCase(rng: Rng): Promise<void> {
  const text = rng.next() < 0.2 ? new TextDecoder().decode(mutateBytes(rng, validText)) : JSON.stringify(generated(rng));
  const config: Record<string, unknown> = rng.next() < 0.3 ? { chat_template: IM_TEMPLATE, bos_token: '<s>', eos_token: '</s>' } : {};
  const tok = await loadTokenizer(memSource({ 'tokenizer.json': text }), { family: 'generic', config });
  for (let k = 0; k < 2; k++) {
    const ids = tok.encode(randomText(rng, 100), { addSpecial: rng.next() < 0.5, parseSpecial: rng.next() < 0.5 });
    tok.decode(ids, { skipSpecial: rng.next() < 0.5 });
  }
  if (config.chat_template) tok.formatChat([{ role: 'user', content: randomText(rng, 40) }]);
}

describe('fuzz: tokenizer.json', () => {
  it('1,000 seeded cases end in a result or a typed error, in bounded time and memory', async () => {
    const stats = await runFuzz('tokenizer.json', 1000, 21, { perCaseMs: 1500, heapMiB: 512 }, runCase);
    expect(stats.ok).toBeGreaterThan(100);
    expect(stats.errors.get('TokenizerError') ?? 0).toBeGreaterThan(100);
    expect(TokenizerError).toBeDefined();
  });
});
