/**
 * The structured synthetic model (bench/synthetic/) as a folder the TTFT
 * harness serves over HTTP: config.json and safetensors synthesized on
 * demand (a 7B shape needs nothing on disk), plus a generated word-level
 * tokenizer.json ("t0".."t{vocab-1}") since the harness sends token ids and
 * only needs the model's output decoded. Prompts come from syntheticPrompt:
 * sink at position 0, separator stripes, optional needles and question rows.
 * Imported by bench/ttft/chromium.mjs and bench/ttft/node.ts (through tsx here; inlined by its --bundle).
 *
 * Where the bytes are made (`presynth`):
 *   'off'   on each request, in the server's thread (~200-350 MB/s: one core);
 *   'on'    every shard, in CHUNK_BYTES chunks, by `workers` worker threads,
 *           all kept in memory (the 15.5 GB 7B shape: RAM for it, ~5 s on 15 cores);
 *   'ahead' the same workers synthesize the chunks after the last one requested,
 *           keeping at most `budgetBytes` in memory (least recently used dropped);
 *   'auto'  'on' when the model takes under half the free memory, else 'ahead'.
 * A worker is `workerUrl` (the harness file itself, or its bundle) started with
 * workerData { ttftSynthWorker: options }; it calls runSynthWorker.
 */
import { freemem } from 'node:os';
import { parentPort, Worker } from 'node:worker_threads';
import { syntheticPrompt } from '../synthetic/prompt.ts';
import { structuredSource, type StructuredSource } from '../synthetic/source.ts';
import { PRESETS, type StructuredOptions } from '../synthetic/structured.ts';

export type PresynthMode = 'auto' | 'on' | 'ahead' | 'off';

export interface PresynthOptions {
  mode: PresynthMode;
  /** Worker threads (>= 1) for 'on' / 'ahead'. */
  workers: number;
  /** The script a worker runs (it must call runSynthWorker when it sees workerData.ttftSynthWorker). */
  workerUrl: URL;
  /** Memory bound of 'ahead' (default 2 GiB). */
  budgetBytes?: number;
  /** Bytes per chunk (default CHUNK_BYTES; tests use small ones). */
  chunkBytes?: number;
}

/** Server-side figures of the synthesized folder (what the harness prints after the load). */
export interface SynthStats {
  mode: Exclude<PresynthMode, 'auto'>;
  workers: number;
  chunkBytes: number;
  /** Bytes of the safetensors files. */
  totalBytes: number;
  /** Range reads answered and their bytes. */
  reads: number;
  bytesRead: number;
  /** ms the server thread spent synthesizing itself ('off') or waiting for a chunk not ready yet. */
  serverSynthMs: number;
  waitMs: number;
  /** Chunks made by workers (a dropped chunk that is read again is made again) and their summed worker ms. */
  chunksMade: number;
  workerMs: number;
  /** Wall ms from the start until every chunk was made once ('on' only). */
  presynthMs?: number;
}

export interface VirtualFolder {
  name: string;
  config: Record<string, unknown>;
  size(path: string): number | undefined;
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  promptIds(seqLen: number, seed: number): number[];
  /** Safetensors files in order. */
  files: string[];
  stats: SynthStats;
  /** Resolves when every chunk is in memory ('on'); at once otherwise. */
  ready: Promise<void>;
  /** Stops the workers and drops the chunks made (the folder still reads, synthesizing in the server thread). */
  close(): Promise<void>;
}

/** Bytes per chunk a worker makes (each served read inside one chunk is a view, no copy). */
export const CHUNK_BYTES = 32 << 20;

/** The served folder of a preset (PRESETS of bench/synthetic/structured.ts) with `overrides` (dtype, seed, sharpness...). */
export async function prepareSynthetic(
  preset: string,
  overrides: Partial<StructuredOptions>,
  contextLength: number,
  presynth?: PresynthOptions,
): Promise<VirtualFolder> {
  const base = (PRESETS as Record<string, StructuredOptions>)[preset];
  if (!base) throw new Error(`--synthetic: unknown preset '${preset}' (one of ${Object.keys(PRESETS).join(', ')})`);
  const opts: StructuredOptions = { dtype: 'F16', seed: 1, ...base, contextLength, ...overrides };
  const src = structuredSource(opts);
  const vocab: Record<string, number> = {};
  for (let i = 0; i < opts.vocabSize; i++) vocab[`t${i}`] = i;
  const texts = new Map<string, Uint8Array>([
    [
      'tokenizer.json',
      new TextEncoder().encode(
        JSON.stringify({
          version: '1.0',
          added_tokens: [],
          normalizer: null,
          post_processor: null,
          decoder: null,
          pre_tokenizer: { type: 'WhitespaceSplit' },
          model: { type: 'WordLevel', vocab, unk_token: 't0' },
        }),
      ),
    ],
  ]);
  const sizes = new Map<string, number>();
  for (const p of await src.list()) sizes.set(p, await src.size(p));
  const config = JSON.parse(await src.text('config.json')) as Record<string, unknown>;
  let mode: Exclude<PresynthMode, 'auto'> = presynth?.mode === 'auto' ? (src.totalBytes < freemem() / 2 ? 'on' : 'ahead') : (presynth?.mode ?? 'off');
  if (!presynth || presynth.workers < 1) mode = 'off';
  const stats: SynthStats = {
    mode,
    workers: mode === 'off' ? 0 : presynth!.workers,
    chunkBytes: presynth?.chunkBytes ?? CHUNK_BYTES,
    totalBytes: src.totalBytes,
    reads: 0,
    bytesRead: 0,
    serverSynthMs: 0,
    waitMs: 0,
    chunksMade: 0,
    workerMs: 0,
  };
  const store = mode === 'off' ? undefined : new ChunkStore(src, (f) => sizes.get(f)!, opts, mode, presynth!, stats);
  return {
    name: `synthetic-${preset}`,
    config,
    files: src.files,
    stats,
    ready: store?.ready ?? Promise.resolve(),
    close: () => store?.close() ?? Promise.resolve(),
    size: (p) => texts.get(p)?.byteLength ?? sizes.get(p),
    async read(p, offset, length) {
      const t = texts.get(p);
      if (t) return t.subarray(offset, offset + length);
      stats.reads++;
      stats.bytesRead += length;
      if (store && src.files.includes(p)) return store.read(p, offset, length);
      const t0 = performance.now();
      const out = await src.read(p, offset, length);
      stats.serverSynthMs += performance.now() - t0;
      return out;
    },
    promptIds: (seqLen, seed) => Array.from(syntheticPrompt({ seqLen, vocabSize: opts.vocabSize, seed, needles: 4 }).ids),
  };
}

interface Chunk {
  key: string;
  file: string;
  index: number;
  order: number;
  buf?: Uint8Array;
  queued: boolean;
  lastUse: number;
  waiters: (() => void)[];
  readers: number;
}

/** Chunks of the safetensors files made by worker threads (see the file comment). */
class ChunkStore {
  readonly ready: Promise<void>;
  private chunks: Chunk[] = [];
  private byKey = new Map<string, Chunk>();
  private queue: Chunk[] = [];
  private idle: Worker[] = [];
  private busy = new Map<Worker, Chunk>();
  private workers: Worker[] = [];
  private resident = 0;
  private tick = 0;
  private closed = false;
  private maxResident: number;
  private ahead: number;
  private remainingFirst: number;
  private onAllMade!: () => void;
  private chunkBytes: number;

  constructor(
    private src: StructuredSource,
    private sizeOf: (file: string) => number,
    opts: StructuredOptions,
    private mode: 'on' | 'ahead',
    p: PresynthOptions,
    private stats: SynthStats,
  ) {
    this.chunkBytes = p.chunkBytes ?? CHUNK_BYTES;
    for (const file of src.files) {
      const n = Math.ceil(sizeOf(file) / this.chunkBytes);
      for (let i = 0; i < n; i++) {
        const c: Chunk = { key: `${file}:${i}`, file, index: i, order: this.chunks.length, queued: false, lastUse: 0, waiters: [], readers: 0 };
        this.chunks.push(c);
        this.byKey.set(c.key, c);
      }
    }
    this.remainingFirst = this.chunks.length;
    const budget = Math.max(4 * this.chunkBytes, p.budgetBytes ?? 2 ** 31);
    this.maxResident = mode === 'on' ? Infinity : Math.floor(budget / this.chunkBytes);
    this.ahead = mode === 'on' ? 0 : Math.max(p.workers, Math.floor(this.maxResident / 2));
    const t0 = performance.now();
    this.ready =
      mode === 'on'
        ? new Promise<void>((ok) => {
            this.onAllMade = () => {
              stats.presynthMs = performance.now() - t0;
              ok();
            };
          })
        : Promise.resolve();
    for (let k = 0; k < p.workers; k++) {
      const w = new Worker(p.workerUrl, { workerData: { ttftSynthWorker: opts } });
      w.unref();
      w.on('message', (m: { key: string; buf: Uint8Array; ms: number }) => this.made(w, m));
      w.on('error', (e: Error) => this.failed(w, e));
      this.workers.push(w);
      this.idle.push(w);
    }
    if (mode === 'on') for (const c of this.chunks) this.enqueue(c, false);
    else for (let i = 0; i < Math.min(this.ahead, this.chunks.length); i++) this.enqueue(this.chunks[i], false);
    this.pump();
  }

  async read(file: string, offset: number, length: number): Promise<Uint8Array> {
    const first = Math.floor(offset / this.chunkBytes),
      last = Math.floor((offset + Math.max(1, length) - 1) / this.chunkBytes);
    const parts: Uint8Array[] = [];
    for (let i = first; i <= last; i++) {
      const c = this.byKey.get(`${file}:${i}`)!;
      c.lastUse = ++this.tick;
      c.readers++; // not dropped between its making and this read taking its view
      if (this.mode === 'ahead')
        for (let j = c.order + 1; j <= Math.min(this.chunks.length - 1, c.order + this.ahead); j++) this.enqueue(this.chunks[j], false);
      if (!c.buf && this.workers.length > 0 && !this.closed) {
        const t0 = performance.now();
        const made = new Promise<void>((ok) => c.waiters.push(ok));
        this.enqueue(c, true);
        this.pump();
        await made;
        this.stats.waitMs += performance.now() - t0;
      }
      if (!c.buf) {
        // no worker left (closed, or they failed): made here
        const t0 = performance.now();
        c.buf = this.src.readInto(file, i * this.chunkBytes, new Uint8Array(this.chunkLength(c)));
        this.stats.serverSynthMs += performance.now() - t0;
        this.resident++;
      }
      const s = Math.max(offset, i * this.chunkBytes) - i * this.chunkBytes,
        e = Math.min(offset + length, (i + 1) * this.chunkBytes) - i * this.chunkBytes;
      parts.push(c.buf!.subarray(s, e));
      c.readers--;
    }
    this.pump();
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(length);
    let at = 0;
    for (const q of parts) {
      out.set(q, at);
      at += q.byteLength;
    }
    return out;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const c of this.chunks) {
      for (const ok of c.waiters.splice(0)) ok(); // readers fall back to the server thread
      c.buf = undefined;
    }
    this.resident = 0;
    return Promise.all(this.workers.map((w) => w.terminate())).then(() => undefined);
  }

  private chunkLength(c: Chunk): number {
    return Math.min(this.chunkBytes, this.sizeOf(c.file) - c.index * this.chunkBytes);
  }

  private enqueue(c: Chunk, urgent: boolean): void {
    if (c.buf) return;
    if (c.queued) {
      if (!urgent) return;
      const k = this.queue.indexOf(c);
      if (k < 0) return; // being made
      this.queue.splice(k, 1);
    }
    c.queued = true;
    if (urgent) this.queue.unshift(c);
    else this.queue.push(c);
  }

  private pump(): void {
    while (this.idle.length && this.queue.length && !this.closed) {
      // Over the budget with nothing to drop: only a chunk a reader waits for goes ahead.
      if (this.resident >= this.maxResident && !this.evict() && this.queue[0].waiters.length === 0) return;
      const c = this.queue.shift()!;
      const w = this.idle.pop()!;
      this.resident++; // counted from the start so the workers never overshoot the budget
      this.busy.set(w, c);
      w.postMessage({ key: c.key, file: c.file, offset: c.index * this.chunkBytes, length: this.chunkLength(c) });
    }
  }

  /** A worker that failed is dropped; the chunk it was making is made by its readers (in the server thread). */
  private failed(w: Worker, e: Error): void {
    console.error(`ttft synth worker: ${e.message}`);
    this.workers = this.workers.filter((x) => x !== w);
    this.idle = this.idle.filter((x) => x !== w);
    const c = this.busy.get(w);
    this.busy.delete(w);
    if (c) {
      c.queued = false;
      this.resident--;
      for (const ok of c.waiters.splice(0)) ok();
    }
    if (this.workers.length === 0) {
      for (const q of this.queue.splice(0)) {
        q.queued = false;
        for (const ok of q.waiters.splice(0)) ok();
      }
      this.onAllMade?.();
    }
  }

  /** Drops the least recently used chunk made (not one made ahead and not read yet); false when none can go. */
  private evict(): boolean {
    let victim: Chunk | undefined;
    for (const c of this.chunks) if (c.buf && c.readers === 0 && c.lastUse > 0 && (!victim || c.lastUse < victim.lastUse)) victim = c;
    if (!victim) return false;
    victim.buf = undefined;
    victim.queued = false;
    this.resident--;
    return true;
  }

  private made(w: Worker, m: { key: string; buf: Uint8Array; ms: number }): void {
    const c = this.byKey.get(m.key)!;
    this.busy.delete(w);
    c.buf = m.buf;
    c.queued = false;
    this.stats.chunksMade++;
    this.stats.workerMs += m.ms;
    if (this.mode === 'on' && --this.remainingFirst === 0) this.onAllMade();
    for (const ok of c.waiters.splice(0)) ok();
    this.idle.push(w);
    this.pump();
  }
}

/** The loop of a synthesis worker (workerData.ttftSynthWorker: the StructuredOptions): makes the chunks it is sent. */
export function runSynthWorker(opts: StructuredOptions): void {
  const src = structuredSource(opts);
  parentPort!.on('message', (m: { key: string; file: string; offset: number; length: number }) => {
    const t0 = performance.now();
    const buf = src.readInto(m.file, m.offset, new Uint8Array(m.length));
    parentPort!.postMessage({ key: m.key, buf, ms: performance.now() - t0 }, [buf.buffer as ArrayBuffer]);
  });
}
