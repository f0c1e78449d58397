// In-browser test page: exposes the shared kernel cases (test/cases/*) on
// window so Playwright specs can run them on the page's real WebGPU device.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { MATMUL_SHAPES, runMatmulCase } from '../../test/cases/matmul.ts';
import { LINEAR_CASES, runLinearCase, caseName } from '../../test/cases/linear.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

const api = {
  async adapter() { const c = await gpu(); return { ...c.info, features: [...c.features] }; },
  async matmul(i: number) { return runMatmulCase(await gpu(), MATMUL_SHAPES[i]); },
  matmulShapes: MATMUL_SHAPES,
  // A few linear cases (every format, decode and prefill, multi-part, gate/up).
  linearCases: LINEAR_CASES.filter((c) => (c.rows === 1 || c.rows === 130) && (c.partRows || c.gateUp || c.bias))
    .filter((_, i) => i % 2 === 0).map(caseName),
  async linear(name: string) { return runLinearCase(await gpu(), LINEAR_CASES.find((c) => caseName(c) === name)!); },
};
(window as unknown as { sieveTest: typeof api }).sieveTest = api;
document.getElementById('log')!.textContent = 'ready';
