/**
 * Writes small SentencePiece ModelProto files for tests (synthetic models:
 * tie-breaking, unsupported model types, malformed input). Field numbers as
 * in sentencepiece_model.proto.
 */
export interface PieceSpec {
  piece: string;
  score?: number;
  type?: number;
}
export interface ModelSpecSpm {
  pieces: PieceSpec[];
  modelType?: number; // 1 unigram, 2 bpe
  byteFallback?: boolean;
  unkId?: number;
  bosId?: number;
  eosId?: number;
  padId?: number;
  normalizer?: { name?: string; addDummyPrefix?: boolean; removeExtraWhitespaces?: boolean; escapeWhitespaces?: boolean; precompiledCharsmap?: Uint8Array };
}

class Writer {
  bytes: number[] = [];
  varint(v: number): void {
    if (v < 0) {
      // int32 negatives: 10-byte two's complement
      let lo = v >>> 0;
      for (let i = 0; i < 4; i++) {
        this.bytes.push((lo & 0x7f) | 0x80);
        lo >>>= 7;
      }
      this.bytes.push((lo & 0x0f) | 0x70 | 0x80);
      for (let i = 0; i < 4; i++) this.bytes.push(0xff);
      this.bytes.push(0x01);
      return;
    }
    while (v >= 0x80) {
      this.bytes.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
  }
  key(num: number, wire: number): void {
    this.varint(num * 8 + wire);
  }
  int(num: number, v: number): void {
    this.key(num, 0);
    this.varint(v);
  }
  bool(num: number, v: boolean): void {
    this.int(num, v ? 1 : 0);
  }
  float(num: number, v: number): void {
    this.key(num, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes.push(...b);
  }
  bytesField(num: number, b: Uint8Array | number[]): void {
    this.key(num, 2);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
  }
  string(num: number, s: string): void {
    this.bytesField(num, new TextEncoder().encode(s));
  }
  message(num: number, w: Writer): void {
    this.bytesField(num, w.bytes);
  }
}

export function writeModelProto(spec: ModelSpecSpm): Uint8Array {
  const w = new Writer();
  for (const p of spec.pieces) {
    const pw = new Writer();
    pw.string(1, p.piece);
    pw.float(2, p.score ?? 0);
    if (p.type !== undefined) pw.int(3, p.type);
    w.message(1, pw);
  }
  const t = new Writer();
  t.int(3, spec.modelType ?? 2);
  t.int(4, spec.pieces.length);
  t.bool(35, spec.byteFallback ?? false);
  t.int(40, spec.unkId ?? 0);
  t.int(41, spec.bosId ?? 1);
  t.int(42, spec.eosId ?? 2);
  t.int(43, spec.padId ?? -1);
  w.message(2, t);
  const n = new Writer();
  const ns = spec.normalizer ?? {};
  n.string(1, ns.name ?? 'identity');
  if (ns.precompiledCharsmap) n.bytesField(2, ns.precompiledCharsmap);
  n.bool(3, ns.addDummyPrefix ?? true);
  n.bool(4, ns.removeExtraWhitespaces ?? true);
  n.bool(5, ns.escapeWhitespaces ?? true);
  w.message(3, n);
  return Uint8Array.from(w.bytes);
}

/** <unk> <s> </s> then the given normal pieces (scores default to -index). */
export function bpeModel(normal: (string | PieceSpec)[], extra: Partial<ModelSpecSpm> = {}): Uint8Array {
  const pieces: PieceSpec[] = [
    { piece: '<unk>', type: 2 },
    { piece: '<s>', type: 3 },
    { piece: '</s>', type: 3 },
    ...normal.map((p, i) => (typeof p === 'string' ? { piece: p, score: -i } : p)),
  ];
  return writeModelProto({ pieces, ...extra });
}
