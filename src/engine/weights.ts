/** Releasing a GpuWeight's buffers (the engine's destroy, the loader's failure paths). */
import type { GpuContext } from '../gpu/device.ts';
import { releaseBuffer } from '../gpu/buffers.ts';
import type { GpuWeight } from '../loader/formats.ts';

export function releaseWeight(ctx: GpuContext, w: GpuWeight): void {
  for (const p of w.parts) {
    releaseBuffer(ctx, p.data);
    releaseBuffer(ctx, p.scales);
  }
  w.parts = [];
}
