/**
 * Model families by config.json's model_type. A family is data plus two
 * functions: config.json -> ModelSpec, and checkpoint tensors -> canonical
 * recipes (models/config.ts). Unknown model_types are rejected with the list
 * of supported ones.
 */
import { ConfigError, UnsupportedModelError } from '../src/errors.ts';
import type { Family, ModelSpec, TensorEntry } from './spec.ts';
import type { Config, WeightPlan } from './config.ts';
import { chatglm2Weights, parseChatglm2Config } from './chatglm2.ts';
import { internlm2Weights, parseInternlm2Config } from './internlm2.ts';

export type { Config, RowSegment, TensorRecipe, WeightPlan } from './config.ts';

export interface FamilyModule {
  family: Family;
  /** config.json model_type values this family reads. */
  modelTypes: string[];
  parseConfig(config: Config): ModelSpec;
  /** Maps checkpoint tensors to canonical recipes; `where` names the checkpoint file(s) for errors. */
  weights(spec: ModelSpec, entries: TensorEntry[], where: string): WeightPlan;
}

export const FAMILIES: FamilyModule[] = [
  { family: 'chatglm2', modelTypes: ['chatglm'], parseConfig: parseChatglm2Config, weights: chatglm2Weights },
  { family: 'internlm2', modelTypes: ['internlm2'], parseConfig: parseInternlm2Config, weights: internlm2Weights },
];

export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((f) => f.modelTypes);
}

export function familyFor(modelType: unknown): FamilyModule {
  if (typeof modelType !== 'string' || !modelType) {
    throw new ConfigError(`config.json: field 'model_type' is missing (supported: ${supportedModelTypes().join(', ')})`, { field: 'model_type' });
  }
  const f = FAMILIES.find((x) => x.modelTypes.includes(modelType));
  if (!f) {
    throw new UnsupportedModelError(
      `model_type '${modelType}' is not supported; supported families: ${FAMILIES.map((x) => `${x.family} (model_type '${x.modelTypes.join("' / '")}')`).join(', ')}`,
      { modelType, supported: supportedModelTypes() },
    );
  }
  return f;
}

/** Parses config.json's text (or object) into a ModelSpec. */
export function parseConfig(config: string | Config): ModelSpec {
  let c: unknown = config;
  if (typeof config === 'string') {
    try {
      c = JSON.parse(config);
    } catch (e) {
      throw new ConfigError(`config.json is not valid JSON (${(e as Error).message})`);
    }
  }
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new ConfigError('config.json is not a JSON object');
  return familyFor((c as Config).model_type).parseConfig(c as Config);
}

/** Maps checkpoint tensors to canonical recipes for the spec's family. */
export function weightPlan(spec: ModelSpec, entries: TensorEntry[], where = 'checkpoint'): WeightPlan {
  return FAMILIES.find((f) => f.family === spec.family)!.weights(spec, entries, where);
}
