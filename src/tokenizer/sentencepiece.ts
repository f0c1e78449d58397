/**
 * SentencePiece `tokenizer.model` (a protobuf ModelProto) parsed into plain
 * data: the pieces with scores and types, and the trainer and normalizer
 * settings that decide how text is encoded. Field numbers follow
 * sentencepiece_model.proto; defaults are the proto's own defaults.
 */
import { ModelFormatError } from '../errors.ts';
import { ProtoReader, type Field } from './protobuf.ts';

/** ModelProto.SentencePiece.Type. */
export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/** TrainerSpec.ModelType. */
export type SpmModelType = 'unigram' | 'bpe' | 'word' | 'char';
const MODEL_TYPES: Record<number, SpmModelType> = { 1: 'unigram', 2: 'bpe', 3: 'word', 4: 'char' };

export interface SpmPiece {
  piece: string;
  score: number;
  type: PieceType;
}

export interface SpmTrainerSpec {
  modelType: SpmModelType;
  vocabSize: number;
  byteFallback: boolean;
  splitDigits: boolean;
  splitByWhitespace: boolean;
  treatWhitespaceAsSuffix: boolean;
  allowWhitespaceOnlyPieces: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  /** -1 when the model has no pad piece. */
  padId: number;
  unkSurface: string;
  userDefinedSymbols: string[];
  controlSymbols: string[];
}

export interface SpmNormalizerSpec {
  name: string;
  /** Compiled normalization rules (e.g. nmt_nfkc); empty for "identity". */
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SpmModel {
  pieces: SpmPiece[];
  /** Size of the ModelProto in bytes (bounds the conversion's work). */
  sourceBytes: number;
  trainer: SpmTrainerSpec;
  normalizer: SpmNormalizerSpec;
}

function parsePiece(r: ProtoReader): SpmPiece {
  const p: SpmPiece = { piece: '', score: 0, type: PieceType.NORMAL };
  for (let f = r.next(); f; f = r.next()) {
    if (f.num === 1) p.piece = r.string(f);
    else if (f.num === 2) p.score = r.float(f);
    else if (f.num === 3) p.type = r.int(f) as PieceType;
  }
  return p;
}

/** How a scalar field is read; a field whose default is an array is repeated (each occurrence appended). */
type FieldKind = 'int' | 'bool' | 'string' | 'raw';

/** Reads a message's fields by number into `into` (others are skipped); `special` reads fields that need more than a table entry. */
function readFields<T extends object>(r: ProtoReader, into: T, fields: Record<number, [keyof T, FieldKind]>, special?: (f: Field) => void): T {
  for (let f = r.next(); f; f = r.next()) {
    const field = fields[f.num];
    if (!field) {
      special?.(f);
      continue;
    }
    const [key, kind] = field;
    const v = kind === 'raw' ? r.raw(f).slice() : r[kind](f);
    const cur = into[key];
    if (Array.isArray(cur)) cur.push(v);
    else into[key] = v as T[keyof T];
  }
  return into;
}

/** TrainerSpec fields by number (model_type, 3, is checked apart). */
const TRAINER_FIELDS: Record<number, [keyof SpmTrainerSpec, FieldKind]> = {
  4: ['vocabSize', 'int'],
  22: ['splitByWhitespace', 'bool'],
  24: ['treatWhitespaceAsSuffix', 'bool'],
  25: ['splitDigits', 'bool'],
  26: ['allowWhitespaceOnlyPieces', 'bool'],
  30: ['controlSymbols', 'string'],
  31: ['userDefinedSymbols', 'string'],
  35: ['byteFallback', 'bool'],
  40: ['unkId', 'int'],
  41: ['bosId', 'int'],
  42: ['eosId', 'int'],
  43: ['padId', 'int'],
  44: ['unkSurface', 'string'],
};

function parseTrainer(r: ProtoReader, file: string): SpmTrainerSpec {
  const t: SpmTrainerSpec = {
    modelType: 'unigram',
    vocabSize: 8000,
    byteFallback: false,
    splitDigits: false,
    splitByWhitespace: true,
    treatWhitespaceAsSuffix: false,
    allowWhitespaceOnlyPieces: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
    userDefinedSymbols: [],
    controlSymbols: [],
  };
  return readFields(r, t, TRAINER_FIELDS, (f) => {
    if (f.num !== 3) return;
    const v = r.int(f);
    const type = MODEL_TYPES[v];
    if (!type) throw new ModelFormatError(file, `trainer_spec.model_type ${v} is not one of 1 (unigram), 2 (bpe), 3 (word), 4 (char)`);
    t.modelType = type;
  });
}

function parseNormalizer(r: ProtoReader): SpmNormalizerSpec {
  const n: SpmNormalizerSpec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  return readFields(r, n, {
    1: ['name', 'string'],
    2: ['precompiledCharsmap', 'raw'],
    3: ['addDummyPrefix', 'bool'],
    4: ['removeExtraWhitespaces', 'bool'],
    5: ['escapeWhitespaces', 'bool'],
  });
}

/** Parses a ModelProto; `file` names the file in errors. */
export function parseSentencePiece(bytes: Uint8Array, file = 'tokenizer.model'): SpmModel {
  const r = new ProtoReader(bytes, file);
  const pieces: SpmPiece[] = [];
  let trainer: SpmTrainerSpec | undefined;
  let normalizer: SpmNormalizerSpec | undefined;
  for (let f = r.next(); f; f = r.next()) {
    if (f.wire !== 2) continue;
    if (f.num === 1) pieces.push(parsePiece(r.sub(f)));
    else if (f.num === 2) trainer = parseTrainer(r.sub(f), file);
    else if (f.num === 3) normalizer = parseNormalizer(r.sub(f));
  }
  if (pieces.length === 0) throw new ModelFormatError(file, 'no pieces: not a SentencePiece model');
  if (!trainer) trainer = parseTrainer(new ProtoReader(new Uint8Array(0), file), file);
  if (!normalizer) normalizer = parseNormalizer(new ProtoReader(new Uint8Array(0), file));
  for (const [i, p] of pieces.entries()) {
    if (!(p.type >= PieceType.NORMAL && p.type <= PieceType.BYTE)) {
      throw new ModelFormatError(file, `piece ${i} (${JSON.stringify(p.piece)}) has unknown type ${p.type}`);
    }
    if (p.piece === '') throw new ModelFormatError(file, `piece ${i} is empty`);
  }
  return { pieces, trainer, normalizer, sourceBytes: bytes.byteLength };
}
