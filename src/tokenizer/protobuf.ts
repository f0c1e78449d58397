/**
 * A minimal protobuf wire-format reader: enough to walk a SentencePiece
 * ModelProto (varints, 32-bit floats, length-delimited strings and nested
 * messages). Unknown fields are skipped by wire type, so newer SentencePiece
 * versions with extra fields still parse.
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
 * (3/4, the deprecated groups, are rejected).
 */
import { ModelFormatError } from '../errors.ts';

export type WireType = 0 | 1 | 2 | 5;

/** One field occurrence: its number, wire type and where its value sits. */
export interface Field {
  num: number;
  wire: WireType;
  /** Varint value (wire 0), as a JS number of the low 53 bits; negative int32s come back sign-extended. */
  varint: number;
  /** Start and end (exclusive) of the payload in the buffer (wire 1, 2, 5). */
  start: number;
  end: number;
}

export class ProtoReader {
  private pos: number;
  private readonly view: DataView;

  /** Reads `bytes[start, end)`; `file` names the file in errors. */
  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(fault: string): never {
    throw new ModelFormatError(this.file, `protobuf: ${fault} at byte ${this.pos}`, { offset: this.pos });
  }

  /** Reads a varint (up to 10 bytes). Values above 2^53 lose precision; int32 -1 comes back as -1. */
  private varint(): number {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.bytes[this.pos++];
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      shift += 7;
      if ((b & 0x80) === 0) {
        // A negative int32 is written as a 10-byte varint with all high bits set.
        if (hi === -1 || (hi | 0) === -1) return lo | 0;
        return (hi >>> 0) * 2 ** 32 + (lo >>> 0);
      }
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** The next field, or undefined at the end of the message. */
  next(): Field | undefined {
    if (this.pos >= this.end) return undefined;
    const key = this.varint();
    const num = Math.floor(key / 8);
    const wire = key & 7;
    if (num === 0) this.fail('field number 0');
    switch (wire) {
      case 0: {
        const v = this.varint();
        return { num, wire, varint: v, start: this.pos, end: this.pos };
      }
      case 1:
      case 5: {
        const n = wire === 1 ? 8 : 4;
        if (this.pos + n > this.end) this.fail(`truncated fixed${n * 8} field ${num}`);
        const start = this.pos;
        this.pos += n;
        return { num, wire, varint: 0, start, end: this.pos };
      }
      case 2: {
        const len = this.varint();
        if (len < 0 || this.pos + len > this.end) this.fail(`field ${num} of ${len} bytes runs past the end (${this.end})`);
        const start = this.pos;
        this.pos += len;
        return { num, wire, varint: 0, start, end: this.pos };
      }
      default:
        return this.fail(`unsupported wire type ${wire} (field ${num})`);
    }
  }

  /** A nested message's reader. */
  sub(f: Field): ProtoReader {
    this.expect(f, 2);
    return new ProtoReader(this.bytes, this.file, f.start, f.end);
  }

  string(f: Field): string {
    this.expect(f, 2);
    return decoder.decode(this.bytes.subarray(f.start, f.end));
  }

  raw(f: Field): Uint8Array {
    this.expect(f, 2);
    return this.bytes.subarray(f.start, f.end);
  }

  float(f: Field): number {
    this.expect(f, 5);
    return this.view.getFloat32(f.start, true);
  }

  int(f: Field): number {
    this.expect(f, 0);
    return f.varint;
  }

  bool(f: Field): boolean {
    return this.int(f) !== 0;
  }

  private expect(f: Field, wire: WireType): void {
    if (f.wire !== wire) {
      throw new ModelFormatError(this.file, `protobuf: field ${f.num} has wire type ${f.wire}, expected ${wire}`, { offset: f.start });
    }
  }
}

const decoder = new TextDecoder('utf-8', { fatal: false });
