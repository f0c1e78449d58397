/** One real WebGPU device per test file (Dawn on SwiftShader here, on the GPU machine the real GPU). */
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';

let ctxPromise: Promise<GpuContext> | undefined;
export function testGpu(): Promise<GpuContext> {
  return (ctxPromise ??= getGpu());
}

/** Path of ../shared/fixtures from the project root. */
export const FIXTURES = new URL('../../../shared/fixtures/', import.meta.url).pathname;

/** Live bytes allocated through createBuffer (src/gpu/buffers.ts): leak checks. */
export function liveBytes(ctx: GpuContext): number {
  let s = 0;
  for (const v of ctx.allocations.values()) s += v;
  return s;
}
