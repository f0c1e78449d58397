/**
 * Streaming decode: ids arrive one at a time, text leaves only when it is
 * complete UTF-8 and equal to what decoding all ids at once would give.
 *
 * Method: keep a window of ids starting at the last token that produced text
 * (`prefix`), decode the window with and without the newest ids, and emit the
 * difference unless it ends in U+FFFD (an incomplete byte-fallback
 * character: held until its last byte arrives). Decoding a window that starts
 * at an already-emitted token keeps context-dependent rules (SentencePiece's
 * leading-space strip, which applies to the first token only) identical on
 * both sides of the difference. Each push decodes a few ids, not the whole
 * history.
 */
export interface StreamDecoder {
  /** Adds one id; returns the text it completes ('' when none is complete yet). */
  push(id: number): string;
  /** Ends the stream: returns whatever is held back (incomplete bytes as U+FFFD, like one-shot decode). */
  flush(): string;
}

export function createStreamDecoder(decode: (ids: number[]) => string): StreamDecoder {
  const ids: number[] = [];
  let prefix = 0; // first id of the window (already emitted)
  let read = 0; // ids before this are emitted
  let prefixText = '';
  return {
    push(id: number): string {
      ids.push(id);
      const full = decode(ids.slice(prefix));
      if (full.length <= prefixText.length || full.endsWith('\uFFFD')) return '';
      const out = full.slice(prefixText.length);
      prefix = read;
      read = ids.length;
      prefixText = decode(ids.slice(prefix, read));
      return out;
    },
    flush(): string {
      if (read === ids.length) return '';
      const full = decode(ids.slice(prefix));
      const out = full.length > prefixText.length ? full.slice(prefixText.length) : '';
      ids.length = 0;
      prefix = read = 0;
      prefixText = '';
      return out;
    },
  };
}
