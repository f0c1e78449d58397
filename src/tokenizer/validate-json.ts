/**
 * Checks a tokenizer.json before @huggingface/tokenizers builds it, so a
 * hostile file ends in a TokenizerError (naming the file, the place and the
 * limit) instead of a hang:
 *
 * - regexes (`{"Regex": ...}` in the normalizer, pre-tokenizer, decoder...)
 *   that can backtrack catastrophically are refused: a group repeated without
 *   bound (`*`, `+`, `{n,}`, `{n,m}` with m > 1) whose body holds a
 *   quantifier or an alternation (`(a+)+`, `(a|a)*`, `(\w?)+`), and
 *   backreferences. JavaScript cannot interrupt a running regex, so the
 *   patterns are judged before they run. Real tokenizer patterns (GPT-2,
 *   Llama 3, Qwen 2...) repeat only character classes. So is a sequence of
 *   more than two unbounded repetitions (`\s*\s*\s*$` backtracks as n^3).
 * - ids: every vocabulary and added-token id is an integer in
 *   [0, 2 * (entries + added tokens) + 1024): the library sizes arrays by id.
 * - sizes and nesting: at most MAX_VOCAB entries, MAX_ADDED added tokens,
 *   nesting at most MAX_DEPTH deep (checked without recursion).
 */
import { TokenizerError } from '../errors.ts';

export const MAX_VOCAB = 4_000_000;
export const MAX_ADDED = 100_000;
export const MAX_DEPTH = 64;
export const MAX_PATTERN_CHARS = 10_000;
/** Unbounded repetitions one alternative may chain (`\s*[\r\n]+` has 2): each more multiplies backtracking by the text's length. */
export const MAX_SEQUENTIAL_REPEATS = 2;

export function validateTokenizerJson(json: Record<string, unknown>, file: string): void {
  const fail = (where: string, why: string, details: Record<string, unknown> = {}): never => {
    throw new TokenizerError(`${file}: ${where}: ${why}`, { file, where, ...details });
  };
  // Walk everything but the vocabulary and merges (big, flat) for nesting and regexes.
  const stack: { v: unknown; path: string; depth: number }[] = [];
  for (const k of Object.keys(json)) if (k !== 'model') stack.push({ v: json[k], path: k, depth: 1 });
  const model = json.model as Record<string, unknown>;
  for (const k of Object.keys(model)) if (k !== 'vocab' && k !== 'merges') stack.push({ v: model[k], path: `model.${k}`, depth: 2 });
  while (stack.length) {
    const { v, path, depth } = stack.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth > MAX_DEPTH) fail(path, `nested more than ${MAX_DEPTH} deep (limit ${MAX_DEPTH})`, { limit: MAX_DEPTH });
    if (Array.isArray(v)) {
      if (path === 'added_tokens') continue;
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i], path: `${path}[${i}]`, depth: depth + 1 });
      continue;
    }
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === 'Regex') {
        if (typeof x !== 'string') fail(`${path}.Regex`, 'is not a string');
        const why = backtrackingRisk(x as string);
        if (why)
          fail(`${path}.Regex`, `pattern ${JSON.stringify((x as string).slice(0, 200))} can backtrack catastrophically (${why}); refused`, {
            pattern: (x as string).slice(0, 200),
          });
      } else stack.push({ v: x, path: `${path}.${k}`, depth: depth + 1 });
    }
  }

  // Ids and sizes.
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail('added_tokens', 'is not a list');
  const addedList = added as unknown[];
  if (addedList.length > MAX_ADDED)
    fail('added_tokens', `${addedList.length} added tokens, above the limit of ${MAX_ADDED}`, { count: addedList.length, limit: MAX_ADDED });
  const vocab = model.vocab;
  let entries = 0;
  if (Array.isArray(vocab))
    entries = vocab.length; // Unigram: [piece, score] pairs, ids are positions
  else if (vocab && typeof vocab === 'object') entries = Object.keys(vocab).length;
  else if (vocab !== undefined) fail('model.vocab', 'is neither an object nor a list');
  if (entries > MAX_VOCAB) fail('model.vocab', `${entries} entries, above the limit of ${MAX_VOCAB}`, { count: entries, limit: MAX_VOCAB });
  const bound = 2 * (entries + addedList.length) + 1024;
  const checkId = (where: string, id: unknown) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= bound) {
      fail(where, `id ${String(id)} is not an integer in [0, ${bound}) (the vocabulary has ${entries} entries and ${addedList.length} added tokens)`, {
        id: String(id),
        limit: bound,
      });
    }
  };
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [tok, id] of Object.entries(vocab as Record<string, unknown>)) checkId(`model.vocab[${JSON.stringify(tok.slice(0, 50))}]`, id);
  }
  for (let i = 0; i < addedList.length; i++) {
    const t = addedList[i] as { id?: unknown; content?: unknown } | null;
    if (!t || typeof t !== 'object' || typeof t.content !== 'string') fail(`added_tokens[${i}]`, 'needs a string content');
    checkId(`added_tokens[${i}].id`, t!.id);
  }
}

/**
 * Why `pattern` can backtrack catastrophically, or undefined. Conservative:
 * flags unbounded repetition of a group that has a quantifier or an
 * alternation inside, and backreferences.
 */
export function backtrackingRisk(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_CHARS) return `${pattern.length} characters, above the limit of ${MAX_PATTERN_CHARS}`;
  // Per open group: a quantifier / alternation inside; unbounded repetitions
  // in the current alternative (`cur`) and the most in any alternative (`max`).
  type Frame = { quant: boolean; alt: boolean; cur: number; max: number };
  const frame = (): Frame => ({ quant: false, alt: false, cur: 0, max: 0 });
  const frames: Frame[] = [frame()];
  const polynomial = `more than ${MAX_SEQUENTIAL_REPEATS} unbounded repetitions in one sequence (polynomial backtracking)`;
  let i = 0;
  const n = pattern.length;
  /** Length of a quantifier at j and whether it repeats without bound or more than once; undefined if none. */
  const quantAt = (j: number): { len: number; repeats: boolean; unbounded: boolean } | undefined => {
    const c = pattern[j];
    if (c === '*' || c === '+') return { len: pattern[j + 1] === '?' || pattern[j + 1] === '+' ? 2 : 1, repeats: true, unbounded: true };
    if (c === '?') return { len: pattern[j + 1] === '?' ? 2 : 1, repeats: false, unbounded: false };
    if (c === '{') {
      const m = /^\{(\d*)(,(\d*))?\}\??/.exec(pattern.slice(j, j + 30));
      if (!m || (m[1] === '' && m[3] === undefined)) return undefined;
      const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
      return { len: m[0].length, repeats: max > 1, unbounded: max > 64 };
    }
    return undefined;
  };
  while (i < n) {
    const c = pattern[i];
    if (c === '\\') {
      const d = pattern[i + 1];
      if (d !== undefined && /[1-9]/.test(d)) return 'a backreference';
      if (d === 'k' && pattern[i + 2] === '<') return 'a backreference';
      if ((d === 'p' || d === 'P') && pattern[i + 2] === '{') {
        const end = pattern.indexOf('}', i);
        i = end < 0 ? n : end + 1;
      } else i += 2;
    } else if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < n && pattern[i] !== ']') i += pattern[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '(') {
      frames.push(frame());
      i++;
      if (pattern[i] === '?') {
        // (?:  (?=  (?!  (?<=  (?<!  (?<name>  (?i:
        i++;
        while (i < n && pattern[i] !== ':' && pattern[i] !== ')' && pattern[i] !== '(' && !(pattern[i] === '>' || pattern[i] === '=' || pattern[i] === '!'))
          i++;
        if (i < n && pattern[i] !== '(' && pattern[i] !== ')') i++;
      }
      continue;
    } else if (c === ')') {
      const f = frames.length > 1 ? frames.pop()! : frame();
      i++;
      const q = quantAt(i);
      if (q) {
        if (q.repeats && (f.quant || f.alt)) {
          return f.quant ? 'a repeated group with a quantifier inside' : 'a repeated group with an alternation inside';
        }
        i += q.len;
      }
      const top = frames[frames.length - 1];
      top.quant ||= f.quant || !!q;
      top.alt ||= f.alt;
      top.cur += Math.max(f.max, f.cur) + (q?.unbounded ? 1 : 0);
      if (top.cur > MAX_SEQUENTIAL_REPEATS) return polynomial;
      continue;
    } else if (c === '|') {
      const top = frames[frames.length - 1];
      top.alt = true;
      top.max = Math.max(top.max, top.cur);
      top.cur = 0;
      i++;
    } else {
      i++;
    }
    // A quantifier after an atom.
    const q = quantAt(i);
    if (q) {
      const top = frames[frames.length - 1];
      top.quant = true;
      if (q.unbounded && ++top.cur > MAX_SEQUENTIAL_REPEATS) return polynomial;
      i += q.len;
    }
  }
  return undefined;
}
