/**
 * Sampling kernel cases, shared by the Node test (Dawn) and the browser page
 * (e2e/pages/api.ts): each compares GPU picks with sampleRef and returns the
 * number of picks checked, or throws naming the case, r and both ids.
 */
import type { GpuContext } from '../../src/gpu/device.ts';
import { releaseBuffer, uploadBuffer } from '../../src/gpu/buffers.ts';
import { GpuSampler, sampleRef, type SampleParams } from '../../kernels/sample.ts';
import { Rng } from '../../src/util/rng.ts';

export interface SampleCase {
  name: string;
  vocab: number;
  params: SampleParams;
  /** Ids in the history (for the repetition penalty). */
  history?: number[];
  /** Logits scale (larger = sharper). */
  scale?: number;
  /** Repeat some values to exercise ties. */
  ties?: boolean;
}

const P = (o: Partial<SampleParams>): SampleParams => ({ greedy: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, ...o });

export const SAMPLE_CASES: SampleCase[] = [
  { name: 'greedy vocab 1', vocab: 1, params: P({ greedy: true }) },
  { name: 'greedy vocab 257', vocab: 257, params: P({ greedy: true }), ties: true },
  { name: 'greedy + penalty vocab 1000', vocab: 1000, params: P({ greedy: true, repetitionPenalty: 1.8 }), history: [], scale: 2 },
  { name: 'temperature 0.7 vocab 33', vocab: 33, params: P({ temperature: 0.7 }) },
  { name: 'top-k 5 vocab 511', vocab: 511, params: P({ topK: 5 }), ties: true },
  { name: 'top-k 1 vocab 130', vocab: 130, params: P({ topK: 1 }) },
  { name: 'top-p 0.9 vocab 1031', vocab: 1031, params: P({ topP: 0.9, temperature: 1.3 }), scale: 3 },
  { name: 'top-k 40 + top-p 0.5 + penalty vocab 4099', vocab: 4099, params: P({ topK: 40, topP: 0.5, repetitionPenalty: 1.3 }), history: [], scale: 4 },
  { name: 'top-p 0.3 vocab 2', vocab: 2, params: P({ topP: 0.3 }) },
];

function makeLogits(c: SampleCase, rng: Rng): Float32Array {
  const x = rng.fillNormal(c.vocab, c.scale ?? 1);
  if (c.ties) for (let i = 0; i < c.vocab; i += 3) x[i] = x[(i * 7) % c.vocab];
  return x;
}

/** Runs `draws` picks of one case; returns how many were compared exactly. */
export async function runSampleCase(ctx: GpuContext, c: SampleCase, draws = 24, seed = 7): Promise<number> {
  const rng = new Rng(seed);
  const logits = makeLogits(c, rng);
  let history = c.history ?? [];
  if (c.history) {
    // the current top tokens and some random ones, with repeats
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
    history = [order[0], order[2], order[0], ...Array.from({ length: 20 }, () => rng.int(c.vocab)), order[c.vocab - 1]];
  }
  const buf = uploadBuffer(ctx, logits, 'test-logits');
  const sampler = await GpuSampler.create(ctx, buf, c.vocab, 64);
  let exact = 0;
  try {
    sampler.setHistory(history);
    for (let d = 0; d < draws; d++) {
      const r = (d + 0.5) / draws;
      const got = await sampler.sample(c.params, r);
      const want = sampleRef(logits, history, c.params, r);
      if (!want.kept.includes(got)) {
        throw new Error(`${c.name}: r=${r} GPU picked ${got}, outside the kept set (CPU picks ${want.id}; ${want.kept.length} kept)`);
      }
      // Exact agreement is required unless r or topP sits within 1e-4 of a boundary (f32 vs f64 sums).
      const alt = [r - 1e-4, r + 1e-4].flatMap((rr) =>
        [c.params.topP * (1 - 1e-4), Math.min(1, c.params.topP * (1 + 1e-4))].map(
          (tp) => sampleRef(logits, history, { ...c.params, topP: tp }, Math.min(Math.max(rr, 0), 0.999999)).id,
        ),
      );
      if (alt.every((a) => a === want.id)) {
        if (got !== want.id) throw new Error(`${c.name}: r=${r} GPU picked ${got}, CPU reference ${want.id}`);
        exact++;
      } else if (!alt.includes(got) && got !== want.id) {
        throw new Error(`${c.name}: r=${r} (near a boundary) GPU picked ${got}, CPU candidates ${[want.id, ...alt]}`);
      }
    }
  } finally {
    sampler.destroy();
    releaseBuffer(ctx, buf);
  }
  return exact;
}
