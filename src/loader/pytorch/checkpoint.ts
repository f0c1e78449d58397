/**
 * PyTorch `.bin` checkpoints (torch.save zip archives): `pytorch_model.bin`,
 * or shards listed in `pytorch_model.bin.index.json` (chatglm2-6b ships only
 * these). Produces the same TensorEntry records as the safetensors reader, so
 * the weight loader reads tensor bytes straight from byte ranges of the
 * archive, in bounded chunks, exactly as for safetensors.
 *
 * Per archive: the central directory (zip.ts), the restricted unpickling of
 * `<archive>/data.pkl` (pickle.ts: only tensors, storages and OrderedDict; a
 * global such as posix.system is an UnsafePickleError and nothing runs),
 * `<archive>/byteorder` must be 'little' (absent in old archives: little),
 * and each storage `<archive>/data/<key>` must be a stored entry whose size is
 * exactly numel x element bytes of its declared type; tensors must be
 * contiguous views inside their storage.
 */
import { unsafePathReason } from '../paths.ts';
import { MissingFileError, ModelFormatError } from '../../errors.ts';
import type { Checkpoint } from '../safetensors.ts';
import type { FileSource, TensorEntry } from '../source.ts';
import { unpickleStateDict } from './pickle.ts';
import { openZip, readSmallEntry, storedDataOffsets } from './zip.ts';

export const PT_SINGLE_FILE = 'pytorch_model.bin';
export const PT_INDEX_FILE = 'pytorch_model.bin.index.json';

/** The safetensors reader's Checkpoint: files, entries (file then offset order), metadata, totalBytes. */
export type PytorchCheckpoint = Checkpoint;

/** Reads one torch.save archive's tensor index: names, dtypes, shapes and absolute byte ranges. */
export async function readPytorchBin(source: FileSource, file: string): Promise<{ fileBytes: number; entries: TensorEntry[] }> {
  const zip = await openZip(source, file);
  const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new ModelFormatError(
      file,
      pkls.length ? `zip archive has ${pkls.length} data.pkl entries` : 'zip archive has no <name>/data.pkl entry: not a torch.save checkpoint',
    );
  }
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const order = zip.entries.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readSmallEntry(zip, order)).trim();
    if (text !== 'little') {
      throw new ModelFormatError(file, `byte order '${text.slice(0, 16)}': only little-endian archives are supported (re-save on a little-endian machine)`, {
        byteorder: text,
      });
    }
  }
  const state = unpickleStateDict(await readSmallEntry(zip, zip.entries.get(pkls[0])!), file);

  const storageEntry = (key: string) => `${prefix}data/${key}`;
  for (const s of state.storages.values()) {
    const e = zip.entries.get(storageEntry(s.key));
    if (!e) throw new ModelFormatError(file, `storage '${s.key}' used by data.pkl has no zip entry '${storageEntry(s.key)}'`, { storage: s.key });
    const want = s.numel * s.itemBytes;
    if (e.uncompressedSize !== want) {
      throw new ModelFormatError(
        file,
        `zip entry '${e.filename}' is ${e.uncompressedSize} bytes but data.pkl declares ${s.numel} ${s.dtype} elements (${want} bytes)`,
        { storage: s.key, entryBytes: e.uncompressedSize, expectedBytes: want },
      );
    }
  }
  const offsets = await storedDataOffsets(
    source,
    zip,
    [...state.storages.values()].map((s) => storageEntry(s.key)),
  );

  const storageOf = (key: string, byteLength: number): Pick<TensorEntry, 'storage'> => {
    const crc = zip.entries.get(storageEntry(key))?.crc32;
    return typeof crc === 'number' ? { storage: { entry: storageEntry(key), offset: offsets.get(storageEntry(key))!, byteLength, crc32: crc } } : {};
  };
  const entries: TensorEntry[] = state.tensors.map(({ name, tensor }) => {
    const s = tensor.storage;
    const numel = tensor.shape.reduce((a, b) => a * b, 1);
    return {
      name,
      dtype: s.dtype,
      shape: tensor.shape.slice(),
      file,
      offset: offsets.get(storageEntry(s.key))! + tensor.offset * s.itemBytes,
      byteLength: numel * s.itemBytes,
      ...storageOf(s.key, s.numel * s.itemBytes),
    };
  });
  entries.sort((a, b) => a.offset - b.offset);
  return { fileBytes: zip.fileBytes, entries };
}

/**
 * Reads a folder's PyTorch checkpoint: `pytorch_model.bin`, or the shards of
 * `pytorch_model.bin.index.json` (every mapped file present, every tensor
 * found exactly once, in the file the index names).
 */
export async function readPytorchCheckpoint(source: FileSource): Promise<PytorchCheckpoint> {
  if (!(await source.has(PT_INDEX_FILE))) {
    if (!(await source.has(PT_SINGLE_FILE))) {
      throw new MissingFileError(PT_SINGLE_FILE, `no ${PT_SINGLE_FILE} or ${PT_INDEX_FILE} in ${source.name}`, { folder: source.name });
    }
    const { fileBytes, entries } = await readPytorchBin(source, PT_SINGLE_FILE);
    return { files: [PT_SINGLE_FILE], entries, metadata: {}, totalBytes: fileBytes };
  }
  let index: unknown;
  try {
    index = JSON.parse(await source.text(PT_INDEX_FILE));
  } catch (e) {
    if (e instanceof SyntaxError) throw new ModelFormatError(PT_INDEX_FILE, `not valid JSON (${e.message})`);
    throw e;
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new ModelFormatError(PT_INDEX_FILE, 'has no weight_map object');
  const wanted = new Map<string, string>();
  const files: string[] = [];
  for (const [tensor, f] of Object.entries(map as Record<string, unknown>)) {
    const unsafe = unsafePathReason(f);
    if (unsafe !== undefined || typeof f !== 'string') {
      const shown = typeof f === 'string' ? JSON.stringify(f.slice(0, 200)) : String(f);
      throw new ModelFormatError(PT_INDEX_FILE, `weight_map['${tensor}'] is not a file name in the folder: ${shown} (it has ${unsafe})`, { tensor });
    }
    wanted.set(tensor, f);
    if (!files.includes(f)) files.push(f);
  }
  for (const f of files) {
    if (!(await source.has(f))) throw new MissingFileError(f, `shard named by ${PT_INDEX_FILE} is missing from ${source.name}`, { index: PT_INDEX_FILE });
  }
  const entries: TensorEntry[] = [];
  const found = new Set<string>();
  let totalBytes = 0;
  for (const f of files) {
    const shard = await readPytorchBin(source, f);
    totalBytes += shard.fileBytes;
    for (const e of shard.entries) {
      const expected = wanted.get(e.name);
      if (expected === undefined) throw new ModelFormatError(f, `tensor '${e.name}' is not listed in ${PT_INDEX_FILE}`, { tensor: e.name });
      if (expected !== f) throw new ModelFormatError(f, `tensor '${e.name}' is listed in ${PT_INDEX_FILE} under ${expected}`, { tensor: e.name });
      found.add(e.name);
    }
    entries.push(...shard.entries);
  }
  for (const [tensor, f] of wanted) {
    if (!found.has(tensor)) throw new ModelFormatError(f, `tensor '${tensor}' listed in ${PT_INDEX_FILE} is not in the file`, { tensor });
  }
  return { files, entries, metadata: {}, totalBytes };
}
