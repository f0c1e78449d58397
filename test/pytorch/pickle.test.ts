/**
 * The restricted unpickler: what a state_dict uses is read, everything else is
 * refused with a typed error; a seeded fuzzer mutates real data.pkl streams
 * (5,000+ cases) and checks there is no crash, hang or unbounded allocation.
 */
import { describe, expect, it } from 'vitest';
import { ModelFormatError, SieveError, UnsafePickleError } from '../../src/errors.ts';
import { unpickleStateDict } from '../../src/loader/pytorch/pickle.ts';
import { Rng } from '../../src/util/rng.ts';
import { FIXTURES } from '../helpers/gpu.ts';
import { readBytes, unzipAll } from './helpers.ts';

/** Tiny pickle assembler: strings are opcodes or raw text, numbers raw bytes. */
const enc = new TextEncoder();
function pk(...parts: (string | number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') out.push(...enc.encode(p));
    else out.push(...p);
  }
  return new Uint8Array(out);
}
const u32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
const str = (s: string) => {
  const b = enc.encode(s);
  return ['X', ...u32(b.length), ...b];
};

/** A one-tensor state_dict: {'w': tensor of `shape`/`stride` at `offset` in a FloatStorage of `numel`}. */
function oneTensor(shape: number[], stride: number[], offset = 0, numel = 64, storage = 'FloatStorage'): Uint8Array {
  const tup = (xs: number[]) => [0x28, ...xs.flatMap((x) => ['J'.charCodeAt(0), ...u32(x)]), 0x74];
  return pk(
    0x80,
    2,
    '}',
    '(',
    ...str('w'),
    'ctorch._utils\n_rebuild_tensor_v2\n',
    '(',
    '(',
    ...str('storage'),
    `ctorch\n${storage}\n`,
    ...str('0'),
    ...str('cpu'),
    'J',
    u32(numel),
    't',
    'Q',
    'J',
    u32(offset),
    tup(shape),
    tup(stride),
    0x89,
    'ccollections\nOrderedDict\n',
    ')',
    'R',
    't',
    'R',
    'u',
    '.',
  );
}

function refuse(bytes: Uint8Array): SieveError {
  try {
    unpickleStateDict(bytes, 'test.bin');
  } catch (e) {
    if (e instanceof SieveError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('restricted unpickler', () => {
  it('reads a hand-made state_dict', () => {
    const sd = unpickleStateDict(oneTensor([4, 8], [8, 1], 16, 64), 'test.bin');
    expect(sd.tensors.map((t) => [t.name, t.tensor.shape, t.tensor.offset, t.tensor.storage.dtype])).toEqual([['w', [4, 8], 16, 'F32']]);
    // Size-1 dims may carry any stride; 0-d tensors are fine.
    expect(unpickleStateDict(oneTensor([1, 8], [99, 1]), 't').tensors[0].tensor.shape).toEqual([1, 8]);
    expect(unpickleStateDict(oneTensor([], []), 't').tensors[0].tensor.shape).toEqual([]);
  });

  it('reads the model.state_dict() form: OrderedDict with _metadata (BUILD), _rebuild_parameter, memo, LONG1 sizes', () => {
    const long1 = (n: number) => {
      const b: number[] = [];
      let x = n;
      while (x > 0) {
        b.push(x % 256);
        x = Math.floor(x / 256);
      }
      if (b[b.length - 1] & 0x80) b.push(0);
      return [0x8a, b.length, ...b];
    };
    const rows = 750_000;
    const big = rows * 4096; // elements: past BININT, pickled as LONG1
    const bytes = pk(
      0x80,
      2,
      'ccollections\nOrderedDict\n',
      'q',
      0,
      ')',
      'R',
      'q',
      1,
      '(',
      ...str('emb'),
      'ctorch._utils\n_rebuild_parameter\n',
      '(',
      'ctorch._utils\n_rebuild_tensor_v2\n',
      '(',
      '(',
      ...str('storage'),
      'ctorch\nBFloat16Storage\n',
      ...str('0'),
      ...str('cuda:0'),
      long1(big),
      't',
      'Q',
      'K',
      0,
      '(',
      long1(rows),
      'M',
      [0, 16],
      't',
      '(',
      'M',
      [0, 16],
      'K',
      1,
      't',
      0x89,
      'h',
      0,
      ')',
      'R',
      't',
      'R',
      0x88,
      'h',
      0,
      ')',
      'R',
      't',
      'R',
      'u',
      '}',
      '(',
      ...str('_metadata'),
      'h',
      0,
      ')',
      'R',
      '(',
      ...str(''),
      '}',
      ...str('version'),
      'K',
      1,
      's',
      'u',
      'u',
      'b',
      '.',
    );
    const sd = unpickleStateDict(bytes, 'sd.bin');
    expect(sd.tensors.map((t) => [t.name, t.tensor.shape, t.tensor.storage.dtype, t.tensor.storage.numel])).toEqual([['emb', [rows, 4096], 'BF16', big]]);
  });

  it('refuses globals outside the allowlist, naming them, however they are spelled', () => {
    const calls: [string, Uint8Array][] = [
      ['posix.system', pk(0x80, 2, 'cposix\nsystem\n', ...str('echo hi'), 0x85, 'R', '.')],
      ['builtins.eval', pk(0x80, 4, 0x8c, 8, 'builtins', 0x8c, 4, 'eval', 0x93, ...str('1'), 0x85, 'R', '.')],
      ['torch.load', pk(0x80, 2, 'ctorch\nload\n', '.')],
      ['collections.defaultdict', pk(0x80, 2, 'ccollections\ndefaultdict\n', ')', 'R', '.')],
    ];
    for (const [name, bytes] of calls) {
      const e = refuse(bytes);
      expect(e).toBeInstanceOf(UnsafePickleError);
      expect(e.message).toContain(name);
      expect(e.details.global).toBe(name);
    }
    // Opcodes that build arbitrary objects are refused by name.
    for (const [op, bytes] of [
      ['INST', pk(0x80, 2, 'iposix\nsystem\n', '.')],
      ['NEWOBJ', pk(0x80, 2, '}', ')', 0x81, '.')],
    ] as const) {
      const e = refuse(bytes);
      expect(e).toBeInstanceOf(UnsafePickleError);
      expect(e.message).toContain(op);
    }
    // A storage type is not callable.
    expect(refuse(pk(0x80, 2, 'ctorch\nFloatStorage\n', ')', 'R', '.'))).toBeInstanceOf(UnsafePickleError);
  });

  it('checks strides, offsets, storage types and sizes', () => {
    const cases: [Uint8Array, RegExp][] = [
      [oneTensor([4, 8], [1, 4]), /non-contiguous/],
      [oneTensor([4, 8], [16, 1]), /non-contiguous/],
      [oneTensor([4, 8], [8, 1], 40, 64), /runs past its storage/],
      [oneTensor([4, 8], [8, 1], 0, 16), /runs past its storage/],
      [oneTensor([4, 8], [8]), /dims but stride/],
    ];
    for (const [bytes, re] of cases) {
      const e = refuse(bytes);
      expect(e).toBeInstanceOf(ModelFormatError);
      expect(e.message).toMatch(re);
    }
    const q = refuse(oneTensor([4], [1], 0, 64, 'QInt8Storage'));
    expect(q).toBeInstanceOf(UnsafePickleError);
    expect(q.message).toContain('torch.QInt8Storage');
  });

  it('bounds lengths, memo and structure instead of allocating or looping', () => {
    const cases: [Uint8Array, RegExp][] = [
      [pk(0x80, 2, 'X', u32(0xfffffff0), 'abc'), /runs past the end/],
      [pk(0x80, 2, 'h', 7, '.'), /never stored/],
      [pk(0x80, 2, 0x8a, 9, new Array(9).fill(255), '.'), /safe integer/],
      [pk(0x80, 2, ...new Array(1000).fill('(').flat(), '.'), /STOP with/],
      [pk(0x80, 2, '}'), /without STOP/],
      [pk(0x80, 2, 't', '.'), /no MARK/],
      [pk(0x80, 2, 'R', '.'), /underflow/],
      [pk(0x80, 2, 0x95, [255, 255, 255, 255, 0, 0, 0, 0]), /frame/],
      [pk(0x80, 2, ')', '.'), /not a state_dict/],
    ];
    for (const [bytes, re] of cases) {
      const e = refuse(bytes);
      expect(e, String(re)).toBeInstanceOf(ModelFormatError);
      expect(e.message).toMatch(re);
    }
  });

  it('survives 6,000 seeded mutations of real data.pkl streams: typed errors only, bounded memory', async () => {
    const seeds: Uint8Array[] = [];
    for (const f of ['single-fp16/pytorch_model.bin', 'sharded-bf16/pytorch_model-00002-of-00002.bin', 'malicious/pytorch_model.bin']) {
      seeds.push((await unzipAll(readBytes(`${FIXTURES}pytorch/${f}`))).find((x) => x.name.endsWith('data.pkl'))!.data);
    }
    for (const s of seeds) expect(() => unpickleStateDict(s, 'seed')).not.toThrow(TypeError);
    const opcodes = [
      0x28, 0x2e, 0x4a, 0x4b, 0x4d, 0x4e, 0x51, 0x52, 0x58, 0x62, 0x63, 0x68, 0x6a, 0x71, 0x72, 0x73, 0x74, 0x75, 0x7d, 0x29, 0x80, 0x85, 0x86, 0x87, 0x88,
      0x89, 0x8a, 0x8c, 0x93, 0x94, 0x95,
    ];
    const rng = new Rng(20261122);
    const outcome = { ok: 0, format: 0, unsafe: 0 };
    const heap0 = process.memoryUsage().heapUsed;
    let heapMax = heap0;
    const N = 6000;
    for (let c = 0; c < N; c++) {
      let b: Uint8Array<ArrayBuffer> = seeds[rng.int(seeds.length)].slice();
      const nMut = 1 + rng.int(4);
      for (let m = 0; m < nMut; m++) b = mutate(b, rng, opcodes);
      let tensors = 0;
      try {
        const sd = unpickleStateDict(b, 'fuzz.bin');
        tensors = sd.tensors.length;
        for (const t of sd.tensors) {
          const numel = t.tensor.shape.reduce((a, d) => a * d, 1);
          if (t.tensor.offset + numel > t.tensor.storage.numel) throw new Error(`case ${c}: accepted an out-of-storage tensor`);
        }
        outcome.ok++;
      } catch (e) {
        if (e instanceof UnsafePickleError) outcome.unsafe++;
        else if (e instanceof ModelFormatError) outcome.format++;
        else throw new Error(`fuzz case ${c}: untyped ${(e as Error)?.name}: ${(e as Error)?.message}`);
      }
      void tensors;
      if ((c & 255) === 0) heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
    }
    heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
    expect(outcome.ok + outcome.format + outcome.unsafe).toBe(N);
    // The mutations reach all three outcomes (they are not all rejected at byte 0).
    expect(outcome.ok).toBeGreaterThan(50);
    expect(outcome.format).toBeGreaterThan(500);
    expect(outcome.unsafe).toBeGreaterThan(50);
    expect(heapMax - heap0).toBeLessThan(256 * 1024 * 1024);
  });
});

function mutate(b: Uint8Array, rng: Rng, opcodes: number[]): Uint8Array<ArrayBuffer> {
  const n = b.length;
  const at = rng.int(Math.max(n, 1));
  switch (rng.int(8)) {
    case 0: {
      const o = b.slice();
      o[at] ^= 1 << rng.int(8);
      return o;
    }
    case 1: {
      const o = b.slice();
      o[at] = rng.int(256);
      return o;
    }
    case 2: {
      const o = b.slice();
      o[at] = opcodes[rng.int(opcodes.length)];
      return o;
    }
    case 3: {
      // insert random bytes
      const k = 1 + rng.int(8);
      const o = new Uint8Array(n + k);
      o.set(b.subarray(0, at));
      for (let i = 0; i < k; i++) o[at + i] = rng.int(2) ? opcodes[rng.int(opcodes.length)] : rng.int(256);
      o.set(b.subarray(at), at + k);
      return o;
    }
    case 4: {
      // delete a range
      const k = 1 + rng.int(Math.min(64, n - at));
      const o = new Uint8Array(n - k);
      o.set(b.subarray(0, at));
      o.set(b.subarray(at + k), at);
      return o;
    }
    case 5: {
      // duplicate a range elsewhere
      const k = 1 + rng.int(Math.min(128, n - at));
      const to = rng.int(n);
      const o = new Uint8Array(n + k);
      o.set(b.subarray(0, to));
      o.set(b.subarray(at, at + k), to);
      o.set(b.subarray(to), to + k);
      return o;
    }
    case 6:
      return b.slice(0, at); // truncate
    default: {
      // a huge or odd 4-byte field
      const o = b.slice();
      const v = [0xffffffff, 0x7fffffff, 0x80000000, rng.int(2 ** 32)][rng.int(4)];
      for (let i = 0; i < 4 && at + i < n; i++) o[at + i] = (v >>> (8 * i)) & 255;
      return o;
    }
  }
}
