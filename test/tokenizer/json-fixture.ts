/** A small tokenizer.json for tests (hostile-input tests and the tokenizer.json fuzz suite). */
/** BPE over single letters and space, one merge (a b), <unk> <s> </s> with <s> </s> special added tokens. */
export function smallTokenizerJson(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (const c of 'abcdefghijklmnopqrstuvwxyz ') vocab[c] = Object.keys(vocab).length;
  vocab.ab = Object.keys(vocab).length;
  return {
    version: '1.0',
    added_tokens: [
      { id: 1, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      { id: 2, content: '</s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    ],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      vocab,
      merges: [['a', 'b']],
      dropout: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
    },
    ...extra,
  };
}
