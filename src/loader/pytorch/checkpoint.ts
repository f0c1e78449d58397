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
import { ModelFormatError } from '../../errors.ts';
import { readCheckpointFiles, type Checkpoint } from '../safetensors.ts';
import type { FileSource, TensorEntry } from '../source.ts';
import { unpickleStateDict } from './pickle.ts';
import { openZip, readSmallEntry, storedDataOffsets } from './zip.ts';

export const PT_SINGLE_FILE = 'pytorch_model.bin';
export const PT_INDEX_FILE = 'pytorch_model.bin.index.json';

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

/** Reads a folder's PyTorch checkpoint: `pytorch_model.bin`, or the shards of `pytorch_model.bin.index.json`. */
export function readPytorchCheckpoint(source: FileSource): Promise<Checkpoint> {
  return readCheckpointFiles(source, PT_SINGLE_FILE, PT_INDEX_FILE, (f) => readPytorchBin(source, f));
}
