/** Reads the tensors of a golden.safetensors fixture (F32 / I32) in place (the parsing, node-free, is golden-parse.ts: the Chromium conformance page uses it). */
import { readFileSync } from 'node:fs';
import { parseGolden } from './golden-parse.ts';

export { compareLogits, parseGolden } from './golden-parse.ts';

export function readGolden(path: string): Map<string, { shape: number[]; data: Float32Array | Int32Array }> {
  return parseGolden(readFileSync(path));
}
