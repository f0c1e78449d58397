/**
 * readModel: a checkpoint folder -> ModelSpec + tensor headers + the
 * canonical weight recipes, reading only config.json and the safetensors
 * headers (no tensor data).
 */
import { MissingFileError } from '../errors.ts';
import { parseConfig, weightPlan, type WeightPlan } from '../../models/index.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { INDEX_FILE, readCheckpoint, SINGLE_FILE, type Checkpoint } from './safetensors.ts';
import { PT_INDEX_FILE, PT_SINGLE_FILE, readPytorchCheckpoint } from './pytorch/checkpoint.ts';
import type { FileSource } from './source.ts';

export interface ModelFiles {
  source: FileSource;
  spec: ModelSpec;
  checkpoint: Checkpoint;
  plan: WeightPlan;
}

export async function readModel(source: FileSource): Promise<ModelFiles> {
  if (!(await source.has('config.json'))) throw new MissingFileError('config.json', `not found in ${source.name}`, { folder: source.name });
  const spec = parseConfig(await source.text('config.json'));
  // Safetensors when present; else PyTorch .bin (pytorch_model.bin or its index), read without running the pickle.
  const pytorch =
    !(await source.has(INDEX_FILE)) && !(await source.has(SINGLE_FILE)) && ((await source.has(PT_INDEX_FILE)) || (await source.has(PT_SINGLE_FILE)));
  const checkpoint = pytorch ? await readPytorchCheckpoint(source) : await readCheckpoint(source);
  const where = pytorch ? (checkpoint.files.length > 1 ? PT_INDEX_FILE : PT_SINGLE_FILE) : checkpoint.files.length > 1 ? INDEX_FILE : SINGLE_FILE;
  const plan = weightPlan(spec, checkpoint.entries, where);
  return { source, spec, checkpoint, plan };
}
