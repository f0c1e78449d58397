/**
 * Writes a sieve checkpoint as GGUF for llama.cpp / wllama (export-gguf.ts).
 *   npm run bench -- bench/peer/gguf-cli.ts --model ../shared/fixtures/stories260k --out /tmp/g [--arch llama|internlm2] [--weights Q4_0|F16|F32]
 *   npm run bench -- bench/peer/gguf-cli.ts --synthetic internlm2-1.8b --out /tmp/g --weights Q4_0 [--max-file-mb 1900] [--context 40000]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { nodeSource } from '../../src/loader/sources.ts';
import { exportToDir, folderCheckpoint, sentencePieceVocab, syntheticCheckpoint, syntheticVocab, type Arch } from './export-gguf.ts';
import type { GgmlTypeName } from './gguf.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    synthetic: { type: 'string' },
    out: { type: 'string' },
    arch: { type: 'string', default: 'internlm2' },
    weights: { type: 'string', default: 'Q4_0' },
    prefix: { type: 'string' },
    'max-file-mb': { type: 'string' },
    context: { type: 'string' },
  },
});
if (!a.out || (!a.model && !a.synthetic)) throw new Error('usage: --model DIR | --synthetic PRESET, --out DIR (see the file comment)');
if (a.arch !== 'llama' && a.arch !== 'internlm2') throw new Error(`--arch ${a.arch}: llama or internlm2`);
if (!['Q4_0', 'F16', 'F32'].includes(a.weights!)) throw new Error(`--weights ${a.weights}: Q4_0, F16 or F32`);
const { ck, vocab } = a.model
  ? { ck: await folderCheckpoint(nodeSource(a.model)), vocab: sentencePieceVocab(readFileSync(`${a.model}/tokenizer.model`)) }
  : await syntheticCheckpoint(a.synthetic!).then(({ ck, opts }) => ({ ck, vocab: syntheticVocab(opts.vocabSize) }));
const r = await exportToDir({
  ck,
  vocab,
  arch: a.arch as Arch,
  weights: a.weights as GgmlTypeName,
  dir: a.out,
  prefix: a.prefix ?? `${ck.name.split('/').pop()}-${a.weights}`,
  maxFileBytes: a['max-file-mb'] ? Number(a['max-file-mb']) * 2 ** 20 : undefined,
  contextLength: a.context ? Number(a.context) : undefined,
  log: (s) => console.log(s),
});
console.log(r.files.map((f, i) => `${a.out}/${f}\t${r.bytes[i]} bytes`).join('\n'));
