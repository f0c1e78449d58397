/** One real WebGPU device per test file (Dawn on SwiftShader here, on the GPU machine the real GPU). */
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';

let ctxPromise: Promise<GpuContext> | undefined;
export function testGpu(): Promise<GpuContext> {
  return (ctxPromise ??= getGpu());
}

/** Path of ../shared/fixtures from the project root. */
export const FIXTURES = new URL('../../../shared/fixtures/', import.meta.url).pathname;
