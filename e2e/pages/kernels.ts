// In-browser test page: exposes the shared kernel cases (test/cases/*) on
// window so Playwright specs can run them on the page's real WebGPU device.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { MATMUL_SHAPES, runMatmulCase } from '../../test/cases/matmul.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

const api = {
  async adapter() { const c = await gpu(); return { ...c.info, features: [...c.features] }; },
  async matmul(i: number) { return runMatmulCase(await gpu(), MATMUL_SHAPES[i]); },
  matmulShapes: MATMUL_SHAPES,
};
(window as unknown as { sieveTest: typeof api }).sieveTest = api;
document.getElementById('log')!.textContent = 'ready';
