// In-browser test page: exposes the shared kernel cases (test/cases/*) on
// window so Playwright specs can run them on the page's real WebGPU device.
import { getGpu, type GpuContext } from '../../src/gpu/device.ts';
import { MATMUL_SHAPES, runMatmulCase } from '../../test/cases/matmul.ts';
import { LINEAR_CASES, runLinearCase, caseName } from '../../test/cases/linear.ts';
import { DENSE_SHAPES, runDenseCase, runSparseCase, runSparseExactCase } from '../../test/cases/attention.ts';

let ctx: Promise<GpuContext> | undefined;
const gpu = () => (ctx ??= getGpu());

const api = {
  async adapter() {
    const c = await gpu();
    return { ...c.info, features: [...c.features] };
  },
  async matmul(i: number) {
    return runMatmulCase(await gpu(), MATMUL_SHAPES[i]);
  },
  matmulShapes: MATMUL_SHAPES,
  // A few linear cases (every format, decode and prefill, multi-part, gate/up).
  linearCases: LINEAR_CASES.filter((c) => (c.rows === 1 || c.rows === 130) && (c.partRows || c.gateUp || c.bias))
    .filter((_, i) => i % 2 === 0)
    .map(caseName),
  async linear(name: string) {
    return runLinearCase(
      await gpu(),
      LINEAR_CASES.find((c) => caseName(c) === name)!,
    );
  },
  // Prefill attention: one dense shape (GQA 2, D 64) and SampleAttention (exact at alpha 1; planted at 0.95).
  async attentionDense() {
    return runDenseCase(await gpu(), DENSE_SHAPES[2]);
  },
  async attentionSparseExact() {
    return runSparseExactCase(await gpu(), { nHeads: 4, nKvHeads: 2, headDim: 64, seqLen: 200, pos: 0, windowRatio: 0.1 });
  },
  async attentionSparsePlanted() {
    return runSparseCase(await gpu(), { seqLen: 512, nHeads: 4, nKvHeads: 2, headDim: 64, kind: 'planted', needle: 150 }, { alpha: 0.95 });
  },
};
(window as unknown as { sieveTest: typeof api }).sieveTest = api;
document.getElementById('log')!.textContent = 'ready';
