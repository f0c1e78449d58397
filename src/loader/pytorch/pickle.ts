/**
 * A restricted unpickler for the `data.pkl` of a PyTorch zip checkpoint
 * (torch.save of a state_dict). It is an interpreter of a small subset of the
 * pickle machine that BUILDS DATA ONLY: nothing is imported, called or
 * evaluated. A GLOBAL opcode names a callable; this reader accepts the
 * handful a state_dict uses and refuses every other one with an
 * UnsafePickleError naming it (`posix.system`, `builtins.eval`, ...), at the
 * GLOBAL opcode itself, before anything else in the stream is looked at.
 *
 * Allowed globals and what "calling" them (REDUCE) produces here:
 *   collections.OrderedDict()                     -> an empty PyDict
 *   torch._utils._rebuild_tensor_v2(storage, storageOffset, size, stride,
 *                                   requiresGrad, backwardHooks[, metadata])
 *                                                  -> a TensorRef (checked)
 *   torch._utils._rebuild_parameter(tensor, requiresGrad, backwardHooks[, state])
 *   torch._utils._rebuild_parameter_with_state(...) -> the same TensorRef
 *   torch.{Half,BFloat16,Float,Double,Long,Int,Short,Char,Byte,Bool}Storage
 *       only as the type inside a persistent id ('storage', type, key,
 *       location, numel) -> a StorageRef; calling one is refused.
 * Opcodes: protocol 2 as torch writes it (PROTO, MARK, EMPTY_DICT,
 * EMPTY_TUPLE, TUPLE*, BINPUT/LONG_BINPUT, BINGET/LONG_BINGET, BINUNICODE,
 * BININT*, LONG1, NEWTRUE/NEWFALSE, NONE, GLOBAL, BINPERSID, REDUCE,
 * SETITEM(S), BUILD on an OrderedDict (its `_metadata`), STOP) plus the
 * protocol 4 forms (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL). Any other
 * opcode (INST, OBJ, NEWOBJ, EXT*, PERSID...) is refused as unsafe.
 *
 * Limits, so a malformed stream can neither hang nor allocate without bound:
 * the input itself is capped (MAX_PICKLE_BYTES); one pass, O(1) work per byte
 * (a MARK is a pointer into the stack, TUPLE/SETITEMS touch each item once);
 * strings are bounded by the remaining input; stack, mark and memo sizes are
 * capped; integers must be safe integers; values are never walked recursively.
 */
import { ModelFormatError, UnsafePickleError } from '../../errors.ts';
import type { FileDtype } from '../source.ts';

export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
export const MAX_STACK = 1 << 20;
export const MAX_MEMO = 1 << 20;
export const MAX_DIMS = 16;

/** torch storage class -> file dtype and bytes per element. */
export const STORAGE_TYPES: Record<string, { dtype: FileDtype; bytes: number }> = {
  HalfStorage: { dtype: 'F16', bytes: 2 },
  BFloat16Storage: { dtype: 'BF16', bytes: 2 },
  FloatStorage: { dtype: 'F32', bytes: 4 },
  DoubleStorage: { dtype: 'F64', bytes: 8 },
  LongStorage: { dtype: 'I64', bytes: 8 },
  IntStorage: { dtype: 'I32', bytes: 4 },
  ShortStorage: { dtype: 'I16', bytes: 2 },
  CharStorage: { dtype: 'I8', bytes: 1 },
  ByteStorage: { dtype: 'U8', bytes: 1 },
  BoolStorage: { dtype: 'BOOL', bytes: 1 },
};

const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
]);

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyDict {
  readonly map = new Map<string | number, PyValue>();
}
/** A reference to an allowed global (never resolved to anything executable). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}
/** One storage of the archive: entry `data/<key>`, `numel` elements of `dtype`. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: FileDtype,
    readonly itemBytes: number,
    readonly numel: number,
    readonly location: string,
  ) {}
}
/** A contiguous view of a storage: elements [offset, offset + prod(shape)). */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
  ) {}
}
export type PyValue = null | boolean | number | string | PyTuple | PyDict | PyGlobal | StorageRef | TensorRef;

export interface PickledTensor {
  name: string;
  tensor: TensorRef;
}

/** What a state_dict pickle holds: its tensors in pickle order, and the storages they use. */
export interface StateDict {
  tensors: PickledTensor[];
  storages: Map<string, StorageRef>;
}

// Opcodes (pickletools names).
const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d,
  BUILD: 0x62,
  GLOBAL: 0x63,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  EMPTY_TUPLE: 0x29,
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
} as const;

const OP_NAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x5d: 'EMPTY_LIST',
  0x61: 'APPEND',
  0x65: 'APPENDS',
  0x6c: 'LIST',
  0x64: 'DICT',
  0x32: 'DUP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x47: 'BINFLOAT',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4c: 'LONG',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x67: 'GET',
  0x70: 'PUT',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8e: 'BINBYTES8',
  0x8d: 'BINUNICODE8',
  0x8b: 'LONG4',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a state_dict pickle. `file` names the archive for messages. Throws
 * UnsafePickleError for a global or opcode outside the allowlist, and
 * ModelFormatError for anything malformed; never runs anything.
 */
export function unpickleStateDict(bytes: Uint8Array, file: string): StateDict {
  if (bytes.byteLength > MAX_PICKLE_BYTES) {
    throw new ModelFormatError(file, `data.pkl is ${bytes.byteLength} bytes, above the ${MAX_PICKLE_BYTES}-byte limit for a state_dict pickle`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  const storages = new Map<string, StorageRef>();
  const memo = new Map<number, PyValue>();
  const stack: PyValue[] = [];
  const marks: number[] = [];
  let pos = 0;
  let opStart = 0;

  const bad = (fault: string): never => {
    throw new ModelFormatError(file, `data.pkl: ${fault} (at byte ${opStart})`, { offset: opStart });
  };
  const need = (k: number): number => {
    if (pos + k > n) bad(`truncated: opcode needs ${k} more bytes, ${n - pos} left`);
    const p = pos;
    pos += k;
    return p;
  };
  const push = (v: PyValue) => {
    if (stack.length >= MAX_STACK) bad(`stack deeper than ${MAX_STACK}`);
    stack.push(v);
  };
  const top = (): PyValue => {
    if (stack.length <= (marks.length ? marks[marks.length - 1] : 0)) bad('stack underflow');
    return stack[stack.length - 1];
  };
  const pop = (): PyValue => {
    top(); // the underflow check
    return stack.pop() as PyValue;
  };
  const popMark = (): PyValue[] => {
    if (!marks.length) bad('no MARK on the stack');
    const m = marks.pop() as number;
    return stack.splice(m);
  };
  const put = (idx: number) => {
    if (!memo.has(idx) && memo.size >= MAX_MEMO) bad(`memo larger than ${MAX_MEMO} entries`);
    memo.set(idx, top());
  };
  const get = (idx: number) => {
    if (!memo.has(idx)) bad(`memo key ${idx} was never stored`);
    push(memo.get(idx) as PyValue);
  };
  const str = (len: number): string => {
    if (len > n - pos) bad(`string of ${len} bytes runs past the end of data.pkl`);
    const p = need(len);
    try {
      return utf8.decode(bytes.subarray(p, p + len));
    } catch {
      return bad('string is not valid UTF-8');
    }
  };
  const loadGlobal = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    const storage = module === 'torch' && Object.hasOwn(STORAGE_TYPES, name);
    if (!storage && !CALLABLES.has(full)) {
      throw new UnsafePickleError(
        `${file}: data.pkl asks for the global '${full}', which a PyTorch state_dict never uses; refused, nothing was run. ` +
          'Only tensors, storages and OrderedDict are allowed; convert the checkpoint to safetensors if it is trusted.',
        { file, global: full, offset: opStart },
      );
    }
    return new PyGlobal(module, name);
  };

  for (;;) {
    opStart = pos;
    if (pos >= n) bad('ended without STOP');
    const op = bytes[pos++];
    switch (op) {
      case OP.PROTO: {
        const v = bytes[need(1)];
        if (v > 5) bad(`unsupported pickle protocol ${v}`);
        break;
      }
      case OP.FRAME: {
        const p = need(8);
        const len = dv.getUint32(p, true) + dv.getUint32(p + 4, true) * 2 ** 32;
        if (len > n - pos) bad(`frame of ${len} bytes runs past the end`);
        break;
      }
      case OP.STOP: {
        if (stack.length !== 1 || marks.length) bad(`STOP with ${stack.length} values and ${marks.length} marks on the stack`);
        return toStateDict(stack[0], storages, file);
      }
      case OP.MARK:
        if (marks.length >= MAX_STACK) bad(`more than ${MAX_STACK} open MARKs`);
        marks.push(stack.length);
        break;
      case OP.EMPTY_DICT:
        push(new PyDict());
        break;
      case OP.EMPTY_TUPLE:
        push(new PyTuple([]));
        break;
      case OP.TUPLE:
        push(new PyTuple(popMark()));
        break;
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const items = Array.from({ length: op - OP.TUPLE1 + 1 }, pop).reverse();
        push(new PyTuple(items));
        break;
      }
      case OP.NONE:
        push(null);
        break;
      case OP.NEWTRUE:
        push(true);
        break;
      case OP.NEWFALSE:
        push(false);
        break;
      case OP.BININT1:
        push(bytes[need(1)]);
        break;
      case OP.BININT2:
        push(dv.getUint16(need(2), true));
        break;
      case OP.BININT:
        push(dv.getInt32(need(4), true));
        break;
      case OP.LONG1: {
        const len = bytes[need(1)];
        if (len > 7) bad(`LONG1 of ${len} bytes is outside the safe integer range`);
        const p = need(len);
        let v = 0;
        for (let i = len - 1; i >= 0; i--) v = v * 256 + bytes[p + i];
        if (len && bytes[p + len - 1] & 0x80) v -= 2 ** (8 * len);
        if (!Number.isSafeInteger(v)) bad('LONG1 is outside the safe integer range');
        push(v);
        break;
      }
      case OP.BINUNICODE:
        push(str(dv.getUint32(need(4), true)));
        break;
      case OP.SHORT_BINUNICODE:
        push(str(bytes[need(1)]));
        break;
      case OP.BINPUT:
        put(bytes[need(1)]);
        break;
      case OP.LONG_BINPUT:
        put(dv.getUint32(need(4), true));
        break;
      case OP.MEMOIZE:
        put(memo.size);
        break;
      case OP.BINGET:
        get(bytes[need(1)]);
        break;
      case OP.LONG_BINGET:
        get(dv.getUint32(need(4), true));
        break;
      case OP.GLOBAL: {
        const module = line();
        const name = line();
        push(loadGlobal(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
        push(loadGlobal(module as string, name as string));
        break;
      }
      case OP.BINPERSID:
        push(persistentLoad(pop()));
        break;
      case OP.REDUCE: {
        const args = pop();
        const fn = pop();
        push(reduce(fn, args));
        break;
      }
      case OP.SETITEM: {
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        if (items.length % 2) bad('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const obj = top();
        // OrderedDict state: its __dict__ ({'_metadata': ...}), kept nowhere.
        if (!(obj instanceof PyDict) || !(state instanceof PyDict || state === null)) {
          throw new UnsafePickleError(`${file}: data.pkl uses BUILD on ${describe(obj)}; refused, nothing was run`, { file, offset: opStart });
        }
        break;
      }
      default: {
        const name = OP_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
        throw new UnsafePickleError(`${file}: data.pkl uses the pickle opcode ${name}, which a PyTorch state_dict never needs; refused, nothing was run`, {
          file,
          opcode: name,
          offset: opStart,
        });
      }
    }
  }

  /** GLOBAL's text arguments: up to a newline, ASCII identifiers only. */
  function line(): string {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) bad('GLOBAL without a newline');
    if (end - pos > 256) bad('GLOBAL name longer than 256 bytes');
    let s = '';
    for (let i = pos; i < end; i++) {
      const c = bytes[i];
      if (c < 0x20 || c > 0x7e) bad('GLOBAL name is not printable ASCII');
      s += String.fromCharCode(c);
    }
    pos = end + 1;
    return s;
  }

  function setItem(d: PyValue, k: PyValue, v: PyValue): void {
    if (!(d instanceof PyDict)) bad(`SETITEM on ${describe(d)}, not a dict`);
    if (typeof k !== 'string' && typeof k !== 'number') bad(`dict key ${describe(k)} is not a string or integer`);
    (d as PyDict).map.set(k as string | number, v);
  }

  function persistentLoad(pid: PyValue): StorageRef {
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      bad(`persistent id ${describe(pid)} is not ('storage', type, key, location, numel)`);
    }
    const [, type, key, location, numel] = (pid as PyTuple).items;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || !Object.hasOwn(STORAGE_TYPES, type.name)) {
      bad(`persistent id storage type ${describe(type)} is not a torch storage class`);
    }
    if (typeof key !== 'string' || !/^[0-9A-Za-z_.-]{1,64}$/.test(key)) bad(`storage key ${describe(key)} is not a plain name`);
    if (typeof location !== 'string') bad(`storage location ${describe(location)} is not a string`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) bad(`storage size ${describe(numel)} is not a non-negative integer`);
    const t = STORAGE_TYPES[(type as PyGlobal).name];
    const k = key as string;
    const prev = storages.get(k);
    if (prev) {
      if (prev.dtype !== t.dtype || prev.numel !== numel) bad(`storage '${k}' is referenced with two types or sizes`);
      return prev;
    }
    const s = new StorageRef(k, t.dtype, t.bytes, numel as number, location as string);
    storages.set(k, s);
    return s;
  }

  function reduce(fn: PyValue, args: PyValue): PyValue {
    if (!(fn instanceof PyGlobal)) return bad(`REDUCE on ${describe(fn)}, not a callable`);
    if (!(args instanceof PyTuple)) return bad(`REDUCE arguments ${describe(args)} are not a tuple`);
    const a = args.items;
    const full = `${fn.module}.${fn.name}`;
    switch (full) {
      case 'collections.OrderedDict':
        if (a.length) bad('OrderedDict called with arguments');
        return new PyDict();
      case 'torch._utils._rebuild_tensor_v2':
        if (a.length < 6 || a.length > 7) bad(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${a.length}`);
        return rebuildTensor(a[0], a[1], a[2], a[3]);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        if (a.length < 3 || a.length > 4) bad(`${fn.name} takes 3 or 4 arguments, got ${a.length}`);
        if (!(a[0] instanceof TensorRef)) bad(`${fn.name} of ${describe(a[0])}, not a tensor`);
        return a[0];
      default:
        throw new UnsafePickleError(`${file}: data.pkl calls '${full}', which only names a storage type; refused, nothing was run`, {
          file,
          global: full,
          offset: opStart,
        });
    }
  }

  function rebuildTensor(storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue): TensorRef {
    if (!(storage instanceof StorageRef)) return bad(`tensor storage ${describe(storage)} is not a persistent storage`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
      return bad(`tensor storage offset ${describe(offset)} is not a non-negative integer`);
    const shape = intTuple(size, 'size');
    const strides = intTuple(stride, 'stride');
    if (shape.length !== strides.length) bad(`tensor size has ${shape.length} dims but stride has ${strides.length}`);
    // Contiguous row-major: stride[i] = prod(shape[i+1:]) wherever shape[i] > 1.
    let numel = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      if (shape[i] > 1 && strides[i] !== numel) {
        bad(`tensor of size [${shape}] has strides [${strides}]: a non-contiguous view (save .contiguous() tensors)`);
      }
      numel *= shape[i];
      if (!Number.isSafeInteger(numel)) bad(`tensor size [${shape}] overflows`);
    }
    if (offset + numel > storage.numel) {
      bad(`tensor of size [${shape}] at storage offset ${offset} runs past its storage '${storage.key}' of ${storage.numel} elements`);
    }
    return new TensorRef(storage, offset, shape);
  }

  function intTuple(v: PyValue, what: string): number[] {
    if (!(v instanceof PyTuple) || v.items.length > MAX_DIMS) return bad(`tensor ${what} ${describe(v)} is not a tuple of at most ${MAX_DIMS} integers`);
    const out: number[] = [];
    for (const d of v.items) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return bad(`tensor ${what} has ${describe(d)}, not a non-negative integer`);
      out.push(d);
    }
    return out;
  }
}

function toStateDict(root: PyValue, storages: Map<string, StorageRef>, file: string): StateDict {
  if (!(root instanceof PyDict)) throw new ModelFormatError(file, `data.pkl holds ${describe(root)}, not a state_dict (a dict of tensors)`);
  const tensors: PickledTensor[] = [];
  for (const [name, v] of root.map) {
    if (typeof name !== 'string') throw new ModelFormatError(file, `data.pkl: state_dict key ${name} is not a string`);
    if (!(v instanceof TensorRef)) throw new ModelFormatError(file, `data.pkl: '${name}' is ${describe(v)}, not a tensor`, { tensor: name });
    tensors.push({ name, tensor: v });
  }
  return { tensors, storages };
}

/** A one-line, non-recursive description of a value for messages. */
function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v !== 'object') return String(v);
  if (v instanceof PyTuple) return `a tuple of ${v.items.length}`;
  if (v instanceof PyDict) return `a dict of ${v.map.size}`;
  if (v instanceof PyGlobal) return `${v.module}.${v.name}`;
  if (v instanceof StorageRef) return `storage '${v.key}'`;
  return 'a tensor';
}
