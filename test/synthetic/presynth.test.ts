// The TTFT harness's synthesized folder (bench/ttft/synthetic.ts) with its bytes made by worker
// threads (--presynth on / ahead): every read equals structuredSource's bytes, whatever the
// chunk boundaries, read order or memory bound; and the F16 fast rounding matches f32ToF16.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { prepareSynthetic, type PresynthOptions } from '../../bench/ttft/synthetic.ts';
import { f32ToF16 } from '../../src/loader/quant.ts';
import { structuredSource } from '../../bench/synthetic/source.ts';
import { PRESETS } from '../../bench/synthetic/structured.ts';
import { Rng } from '../../src/util/rng.ts';

const workerUrl = new URL('../../bench/ttft/synth-worker.mjs', import.meta.url);
const overrides = { dtype: 'F16' as const, shardBytes: 1 << 20 }; // internlm2-tiny in 3 shards

describe('presynthesized synthetic folder', () => {
  it.each(['on', 'ahead'] as const)(
    '%s: worker-made chunks read back as the source bytes',
    async (mode) => {
      const ref = structuredSource({ ...PRESETS['internlm2-tiny'], seed: 1, contextLength: 128, ...overrides });
      const p: PresynthOptions = { mode, workers: 2, workerUrl, chunkBytes: 96 << 10, budgetBytes: 4 * (96 << 10) };
      const folder = await prepareSynthetic('internlm2-tiny', overrides, 128, p);
      try {
        expect(fileURLToPath(workerUrl)).toMatch(/ttft[/\\]synth-worker\.mjs$/);
        expect(folder.files).toEqual(ref.files);
        expect(folder.files.length).toBeGreaterThan(1);
        await folder.ready;
        const rng = new Rng(3);
        for (const f of folder.files) {
          const size = folder.size(f)!;
          // In order, in reads that straddle chunks, then at random places (chunks dropped and made again under 'ahead').
          for (let o = 0; o < size; o += 70_000) {
            const n = Math.min(70_000, size - o);
            expect(Buffer.from(await folder.read(f, o, n)).equals(Buffer.from(await ref.read(f, o, n)))).toBe(true);
          }
          for (let k = 0; k < 8; k++) {
            const o = rng.int(size - 1),
              n = Math.min(size - o, 1 + rng.int(200_000));
            expect(Buffer.from(await folder.read(f, o, n)).equals(Buffer.from(await ref.read(f, o, n)))).toBe(true);
          }
        }
        expect(folder.stats.mode).toBe(mode);
        expect(folder.stats.chunksMade).toBeGreaterThan(0);
        expect(folder.stats.serverSynthMs).toBe(0); // every byte came from a worker
        if (mode === 'on') expect(folder.stats.presynthMs).toBeGreaterThan(0);
      } finally {
        await folder.close();
      }
    },
    60_000,
  );

  it('F16 bytes are f32ToF16 of the f32 rows (the fast rounding path; checked exhaustively by hand over every 97th f32)', () => {
    const src = structuredSource({ ...PRESETS['internlm2-tiny'], seed: 2, contextLength: 128, dtype: 'F16' });
    const entry = 'model.layers.0.feed_forward.w2.weight';
    const rows = src.tensorRows(entry, 0, 4);
    const header = src.readInto('model.safetensors', 0, new Uint8Array(8));
    const headerLen = Number(new DataView(header.buffer).getBigUint64(0, true));
    const meta = JSON.parse(new TextDecoder().decode(src.readInto('model.safetensors', 8, new Uint8Array(headerLen)))) as Record<
      string,
      { data_offsets: [number, number] }
    >;
    const bytes = src.readInto('model.safetensors', 8 + headerLen + meta[entry].data_offsets[0], new Uint8Array(rows.length * 2));
    const h = new Uint16Array(bytes.buffer, bytes.byteOffset, rows.length);
    for (let i = 0; i < rows.length; i++) expect(h[i]).toBe(f32ToF16(rows[i]));
  });
});
