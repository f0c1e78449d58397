/**
 * Chat formats (exact strings of MODELS.md) and family specials, with the
 * bpe_zh SentencePiece model standing in for the real ChatGLM2 / InternLM2
 * tokenizers (same kind of model: BPE, byte fallback, <|im_start|> and
 * <|im_end|> as user-defined pieces).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tokenizerFromSentencePiece } from '../helpers/tokenizer.ts';
import { FIXTURES } from '../helpers/gpu.ts';

const BPE_ZH = readFileSync(FIXTURES + 'tokenizers/bpe_zh.model');
const PIECES = 1200; // bpe_zh's vocabulary size

const multiTurn = [
  { role: 'user', content: '你好' },
  { role: 'assistant', content: '你好！有什么可以帮你？' },
  { role: 'user', content: 'What is sparse attention?' },
];
const withSystem = [{ role: 'system', content: 'You are a helpful assistant.' }, ...multiTurn];

describe('ChatGLM2', () => {
  it('appends [MASK] [gMASK] [sMASK] sop eop after the vocabulary and prefixes every input with [gMASK] sop', async () => {
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'chatglm2' });
    expect(tok.vocabSize).toBe(PIECES + 5);
    expect(['[MASK]', '[gMASK]', '[sMASK]', 'sop', 'eop'].map((t) => tok.tokenToId(t))).toEqual([PIECES, PIECES + 1, PIECES + 2, PIECES + 3, PIECES + 4]);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.prefixIds).toEqual([PIECES + 1, PIECES + 3]);
    const plain = tok.encode('你好');
    expect(tok.encode('你好', { addSpecial: true })).toEqual([PIECES + 1, PIECES + 3, ...plain]);
    // The words "sop" / "[gMASK]" typed by a user stay text.
    expect(tok.encode('sop eop [gMASK]').some((id) => id >= PIECES)).toBe(false);
    // Specials decode to nothing (or to their names on request); streaming agrees.
    const ids = tok.encode('你好 world', { addSpecial: true });
    expect(tok.decode(ids)).toBe('你好 world');
    expect(tok.decode(ids, { skipSpecial: false })).toBe('[gMASK]sop你好 world');
    const s = tok.streamDecoder();
    expect(ids.map((id) => s.push(id)).join('') + s.flush()).toBe('你好 world');
  });

  it('renders rounds exactly, with and without a system prompt', async () => {
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'chatglm2' });
    expect(tok.hasChatFormat).toBe(true);
    const expected = '[Round 1]\n\n问：你好\n\n答：你好！有什么可以帮你？\n\n[Round 2]\n\n问：What is sparse attention?\n\n答：';
    const a = tok.formatChat(multiTurn);
    expect(a.text).toBe(expected);
    expect(a.ids).toEqual([PIECES + 1, PIECES + 3, ...tok.encode(expected)]);
    const b = tok.formatChat(withSystem);
    expect(b.text).toBe('You are a helpful assistant.\n\n' + expected);
    expect(tok.formatChat([{ role: 'user', content: '你好' }]).text).toBe('[Round 1]\n\n问：你好\n\n答：');
    expect(tok.formatChat([{ role: 'user', content: '你好' }], { addGenerationPrompt: false }).text).toBe('[Round 1]\n\n问：你好\n\n');
  });
});

describe('InternLM2', () => {
  const expectedTail =
    '<|im_start|>user\n你好<|im_end|>\n' +
    '<|im_start|>assistant\n你好！有什么可以帮你？<|im_end|>\n' +
    '<|im_start|>user\nWhat is sparse attention?<|im_end|>\n' +
    '<|im_start|>assistant\n';

  it('renders its chat_template exactly, with and without a system prompt', async () => {
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'internlm2' });
    expect(tok.hasChatFormat).toBe(true);
    expect(tok.formatChat(multiTurn).text).toBe('<s>' + expectedTail);
    expect(tok.formatChat(withSystem).text).toBe('<s><|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' + expectedTail);
    expect(tok.formatChat(multiTurn, { addGenerationPrompt: false }).text).toBe('<s>' + expectedTail.slice(0, -'<|im_start|>assistant\n'.length));
  });

  it('stops on eos and <|im_end|>, adds BOS exactly once, and keeps specials whole', async () => {
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'internlm2' });
    const imStart = tok.tokenToId('<|im_start|>')!;
    const imEnd = tok.tokenToId('<|im_end|>')!;
    expect([imStart, imEnd]).toEqual([3, 4]);
    expect(tok.eosIds).toEqual([2, imEnd]);
    const { ids } = tok.formatChat(withSystem);
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
    expect(ids[1]).toBe(imStart);
    expect(ids.filter((id) => id === imStart)).toHaveLength(5);
    expect(ids.filter((id) => id === imEnd)).toHaveLength(4);
    // No stray "▁" piece before a special: the text after a special is encoded without the dummy prefix.
    const ws = tok.tokenToId('\u2581')!;
    expect(ids[ids.indexOf(imStart) - 1]).toBe(1);
    expect(ids[ids.indexOf(imStart) + 1]).not.toBe(ws);
    // The same text typed by a user (parseSpecial off) does not produce BOS.
    expect(tok.encode('<s>hi')[0]).not.toBe(1);
  });

  it('formats a 100k-token chat prompt (long turns are encoded in pieces)', async () => {
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'internlm2' });
    const long = '龘靐齉麤'.repeat(8500); // 34k characters without a space, outside bpe_zh's vocabulary: 3 byte ids each
    const { text, ids } = tok.formatChat([{ role: 'user', content: long }]);
    expect(ids.length).toBeGreaterThan(100_000);
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
    expect(tok.decode(ids)).toBe(text.slice(3).replace(/\n/g, ' ')); // bpe_zh's nmt_nfkc turns \n into a space
  });

  it('uses the chat_template of tokenizer_config.json when there is one (string or named list)', async () => {
    const chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
    const tok = await tokenizerFromSentencePiece(BPE_ZH, { family: 'internlm2', config: { chat_template } });
    expect(tok.chat.kind).toBe('template');
    expect(tok.formatChat([{ role: 'user', content: 'hi' }]).text).toBe('<user>hi<assistant>');
    const listed = await tokenizerFromSentencePiece(BPE_ZH, {
      config: {
        chat_template: [
          { name: 'tool_use', template: 'x' },
          { name: 'default', template: chat_template },
        ],
      },
    });
    expect(listed.formatChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: false }).text).toBe('<user>hi');
    expect(() => tok.formatChat([])).toThrow(/at least one message/);
  });
});
