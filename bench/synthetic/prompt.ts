/**
 * Prompts for the structured synthetic model (structured.ts): token ids with
 * the planted roles in realistic places. Position 0 is the sink token;
 * ordinary tokens are drawn uniformly; stripe tokens appear as separators
 * (every ~`stripeEvery` tokens, jittered) plus a sprinkle at random; with
 * `needles > 0`, that many needle tokens sit at `needleDepth` of the prompt and
 * the prompt ends with `questionLen` question tokens, whose rows (in the
 * retrieval heads) attend to the needles.
 */
import { Rng } from '../../src/util/rng.ts';
import { TOKENS } from './structured.ts';

export interface PromptOptions {
  seqLen: number;
  vocabSize: number;
  seed?: number;
  /** Mean distance between separator stripes. Default 256 (0: none). */
  stripeEvery?: number;
  /** Extra stripe tokens at random positions, as a fraction of tokens. Default 0.002. */
  stripeDensity?: number;
  /** Needle tokens planted (consecutive positions). Default 0. */
  needles?: number;
  /** Where the needles sit, as a fraction of the prompt. Default 0.4. */
  needleDepth?: number;
  /** Question tokens ending the prompt when needles > 0. Default 8. */
  questionLen?: number;
}

export interface SyntheticPrompt {
  ids: Int32Array;
  /** Positions of stripe tokens (sorted). */
  stripes: number[];
  /** Positions of needle tokens. */
  needles: number[];
  /** First question row (seqLen when there is no question). */
  questionStart: number;
}

export function syntheticPrompt(o: PromptOptions): SyntheticPrompt {
  const { seqLen, vocabSize } = o;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new RangeError(`syntheticPrompt: seqLen ${seqLen} must be an integer >= 2`);
  if (vocabSize < 64) throw new RangeError('syntheticPrompt: vocabSize must be at least 64');
  const rng = new Rng(o.seed ?? 7);
  const ids = new Int32Array(seqLen);
  const span = vocabSize - TOKENS.firstOrdinary;
  for (let i = 0; i < seqLen; i++) ids[i] = TOKENS.firstOrdinary + rng.int(span);
  ids[0] = TOKENS.sink;

  const nNeedles = o.needles ?? 0;
  const questionLen = nNeedles > 0 ? Math.min(o.questionLen ?? 8, Math.floor(seqLen / 4)) : 0;
  const questionStart = seqLen - questionLen;
  for (let i = questionStart; i < seqLen; i++) ids[i] = TOKENS.questions[rng.int(TOKENS.questions.length)];
  const needles: number[] = [];
  if (nNeedles > 0) {
    const at = Math.max(1, Math.min(questionStart - nNeedles, Math.round((o.needleDepth ?? 0.4) * seqLen)));
    for (let k = 0; k < nNeedles && at + k < questionStart; k++) {
      ids[at + k] = TOKENS.needles[rng.int(TOKENS.needles.length)];
      needles.push(at + k);
    }
  }
  const free = (i: number) => i > 0 && i < questionStart && !needles.includes(i);
  const stripes = new Set<number>();
  const every = o.stripeEvery ?? 256;
  if (every > 0) {
    for (let i = Math.round(every * (0.5 + rng.next())); i < questionStart; i += Math.max(1, Math.round(every * (0.5 + rng.next())))) {
      if (free(i)) stripes.add(i);
    }
  }
  const extra = Math.round((o.stripeDensity ?? 0.002) * seqLen);
  for (let k = 0; k < extra; k++) {
    const i = 1 + rng.int(Math.max(1, questionStart - 1));
    if (free(i)) stripes.add(i);
  }
  for (const i of stripes) ids[i] = TOKENS.stripes[rng.int(TOKENS.stripes.length)];
  return { ids, stripes: [...stripes].sort((a, b) => a - b), needles, questionStart };
}
