/**
 * GPU timing. With 'timestamp-query' each compute pass can carry a begin/end
 * timestamp pair; GpuTimer hands out pass descriptors that do so and reads the
 * durations back after the work. Without it, durations come from the wall
 * clock around submit + onSubmittedWorkDone, and every result says
 * `source: 'wall'` so nobody mistakes one for the other.
 */
import type { GpuContext } from './device.ts';

export type TimingSource = 'timestamp' | 'wall';

export interface PassTiming {
  label: string;
  ms: number;
}
export interface TimingResult {
  source: TimingSource;
  totalMs: number;
  passes: PassTiming[];
}

export class GpuTimer {
  readonly source: TimingSource;
  private querySet?: GPUQuerySet;
  private resolveBuf?: GPUBuffer;
  private readBuf?: GPUBuffer;
  private labels: string[] = [];
  private wallStart = 0;

  constructor(
    private ctx: GpuContext,
    private capacity = 512,
  ) {
    this.source = ctx.features.has('timestamp-query') ? 'timestamp' : 'wall';
    if (this.source === 'timestamp') {
      const d = ctx.device;
      this.querySet = d.createQuerySet({ type: 'timestamp', count: capacity * 2, label: 'timer' });
      this.resolveBuf = d.createBuffer({ size: capacity * 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'timer-resolve' });
      this.readBuf = d.createBuffer({ size: capacity * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'timer-read' });
    }
  }

  /** Call before encoding the work to time (starts the wall clock in fallback mode). */
  begin(): void {
    this.labels = [];
    this.wallStart = performance.now();
  }

  /** A compute pass descriptor; with timestamps, the pass is timed under `label`. */
  pass(label: string): GPUComputePassDescriptor {
    if (!this.querySet || this.labels.length >= this.capacity) return { label };
    const i = this.labels.length;
    this.labels.push(label);
    return { label, timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** Adds the query resolution to `encoder` (call once, after the timed passes). */
  resolve(encoder: GPUCommandEncoder): void {
    if (!this.querySet || this.labels.length === 0) return;
    const n = this.labels.length * 2;
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf!, 0);
    encoder.copyBufferToBuffer(this.resolveBuf!, 0, this.readBuf!, 0, n * 8);
  }

  /** Waits for the submitted work and returns per-pass and total durations. */
  async read(): Promise<TimingResult> {
    await this.ctx.device.queue.onSubmittedWorkDone();
    const wall = performance.now() - this.wallStart;
    if (!this.querySet || this.labels.length === 0) {
      return { source: 'wall', totalMs: wall, passes: [] };
    }
    await this.readBuf!.mapAsync(GPUMapMode.READ, 0, this.labels.length * 16);
    const t = new BigInt64Array(this.readBuf!.getMappedRange(0, this.labels.length * 16).slice(0));
    this.readBuf!.unmap();
    const passes = this.labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    const first = t[0];
    let last = t[1];
    for (let i = 0; i < this.labels.length; i++) if (t[2 * i + 1] > last) last = t[2 * i + 1];
    return { source: 'timestamp', totalMs: Number(last - first) / 1e6, passes };
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    this.readBuf?.destroy();
  }
}
