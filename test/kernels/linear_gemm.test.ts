import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { runLinearCase, type LinearCase } from '../cases/linear.ts';
import { LinearKernels } from '../../kernels/linear.ts';

// Prefill shapes where M, N and K are not multiples of the tiles: the GEMM's
// vector loads where K, the group and the x offset allow, the element-wise
// matrix-vector kernel for the others (K % 4, x offset, group vs the chunk),
// multi-part weights, bias, gate/up with parts cutting both halves.
const CASES: LinearCase[] = [
  { format: 'q4', rows: 37, inDim: 96, out: 70, groupSize: 32, partRows: 40, bias: true },
  { format: 'f16', rows: 19, inDim: 33, out: 2 * 21, gateUp: true },
  { format: 'q8', rows: 40, inDim: 72, out: 9, groupSize: 24 },
  { format: 'f32', rows: 33, inDim: 40, out: 50, xOff: 3, yOff: 1 },
  { format: 'q4', rows: 20, inDim: 64, out: 2 * 40, groupSize: 64, gateUp: true, partRows: 30 },
  { format: 'f16', rows: 130, inDim: 64, out: 33, partRows: 16, bias: true, xOff: 64 },
  { format: 'q4', rows: 9, inDim: 40, out: 17, groupSize: 8 },
];

// The GEMM (linear.wgsl gemm, BK 8 on devices with 16 KiB of workgroup memory) on the
// aligned cases, linear.wgsl gemv_any_store row by row on the others.
describe('linear GEMM (Dawn)', () => {
  for (const [i, c] of CASES.entries()) {
    it(`case ${i} (${c.format} ${c.rows}x${c.inDim}x${c.out}) matches the dequantized f64 reference on odd shapes`, async () => {
      const ctx = await testGpu();
      const lin = await LinearKernels.create(ctx);
      try {
        expect(await runLinearCase(ctx, c, 20 + i, lin), `case ${i}`).toBeLessThan(1e-4);
      } finally {
        lin.destroy();
      }
    }, 60_000);
  }
});
