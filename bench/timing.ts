/** GPU timing for the benchmarks: the median of several timed runs (src/gpu/timing.ts's GpuTimer). */
import type { GpuContext } from '../src/gpu/device.ts';
import { GpuTimer, type PassTiming, type TimingSource } from '../src/gpu/timing.ts';

/**
 * Times `encode` (which records compute passes through the given descriptor
 * factory) over `iters` runs after `warmup` runs; returns the median.
 */
export async function timeGpu(
  ctx: GpuContext,
  encode: (enc: GPUCommandEncoder, pass: (label: string) => GPUComputePassDescriptor) => void,
  { warmup = 2, iters = 5 }: { warmup?: number; iters?: number } = {},
): Promise<{ ms: number; source: TimingSource; all: number[]; passes: PassTiming[] }> {
  const timer = new GpuTimer(ctx);
  const all: number[] = [];
  let passes: PassTiming[] = [];
  try {
    for (let i = 0; i < warmup + iters; i++) {
      timer.begin();
      const enc = ctx.device.createCommandEncoder();
      encode(enc, (l) => timer.pass(l));
      timer.resolve(enc);
      ctx.device.queue.submit([enc.finish()]);
      const r = await timer.read();
      if (i >= warmup) {
        all.push(r.totalMs);
        passes = r.passes;
      }
    }
  } finally {
    timer.destroy();
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { ms: sorted[Math.floor(sorted.length / 2)], source: timer.source, all, passes };
}
