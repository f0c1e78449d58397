/** Full-size model specs and weight plans without any file, for memory-plan tests. */
import { parseConfig, weightPlan } from '../../models/index.ts';
import type { TensorEntry } from '../../src/loader/source.ts';
import { syntheticConfig, syntheticTensors, type SyntheticOptions } from '../../bench/synthetic/checkpoint.ts';

/** Spec and recipes of a model without any file (fake offsets, 2 bytes per element: plans read shapes only). */
export function paperModel(o: SyntheticOptions) {
  const spec = parseConfig(syntheticConfig(o) as Record<string, unknown>);
  let off = 0;
  const entries: TensorEntry[] = syntheticTensors(o).map((t) => {
    const byteLength = t.shape.reduce((a, b) => a * b, 1) * 2;
    off += byteLength;
    return { ...t, file: 'x', offset: off - byteLength, byteLength };
  });
  return { spec, plan: weightPlan(spec, entries) };
}

export const INTERNLM2_7B: SyntheticOptions = {
  family: 'internlm2',
  dim: 4096,
  nLayers: 32,
  nHeads: 32,
  nKvHeads: 8,
  ffnDim: 14336,
  vocabSize: 92544,
  dtype: 'BF16',
  contextLength: 32768,
};
/** Buffer limits of a large GPU (4 GiB buffers, 2 GiB bindings). */
export const BIG_LIMITS = { maxBufferSize: 4 * 2 ** 30, maxStorageBufferBindingSize: 2 ** 31 - 4 };
