import { describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.ts';
import { runLinearCase, type LinearCase } from '../cases/linear.ts';
import { LinearKernels } from '../../kernels/linear.ts';
import { checkGemmConfig, GEMM_PRESETS, gemmSmemBytes, gemmTiledSource, parseGemmVariant } from '../../kernels/linear_gemm.ts';
import { liveBytes } from '../../src/gpu/buffers.ts';
import { InvalidOptionError } from '../../src/errors.ts';

// Prefill shapes where M, N and K are not multiples of the tiles; together they
// take every load path of the generated kernels: vec4 / element x loads
// (K % 4, x offset), whole-word / element weight loads (K and group size vs the
// chunk), multi-part weights, bias, gate/up with parts cutting both halves.
const CASES: LinearCase[] = [
  { format: 'q4', rows: 37, inDim: 96, out: 70, groupSize: 32, partRows: 40, bias: true },
  { format: 'f16', rows: 19, inDim: 33, out: 2 * 21, gateUp: true },
  { format: 'q8', rows: 40, inDim: 72, out: 9, groupSize: 24 },
  { format: 'f32', rows: 33, inDim: 40, out: 50, xOff: 3, yOff: 1 },
  { format: 'q4', rows: 20, inDim: 64, out: 2 * 40, groupSize: 64, gateUp: true, partRows: 30 },
  { format: 'f16', rows: 130, inDim: 64, out: 33, partRows: 16, bias: true, xOff: 64 },
  { format: 'q4', rows: 9, inDim: 40, out: 17, groupSize: 8 },
];

// Small tiles (fast to compile on SwiftShader): both layouts, K steps 8 / 16 / 32,
// prefetch on and off, double buffering, the 8 x 4 warp shape (sw), a tile
// whose x loads do not fill the workgroup.
const SMALL: [string, number[]][] = [
  ['kv:tm=2:tn=2:bk=8', [0, 1, 2, 3, 4, 5, 6]],
  ['tr:tm=4:tn=8:bk=8', [0, 1, 3]],
  ['kv:tm=1:tn=2:bk=16:pf=0', [0, 1, 2, 3, 4, 5, 6]],
  ['kv:tm=2:tn=2:bk=32', [0, 2, 3]],
  ['tr:tm=4:tn=8:bk=16:pf=0:sw=1', [1, 4]],
  ['kv:tm=2:tn=2:bk=8:db=1:sw=1', [0, 1, 3, 4]],
  ['tr:tm=4:tn=8:bk=8:db=1', [1, 5]],
  ['tr:tm=4:tn=8:bk=8:vl=1', [0, 1, 3, 4, 6]],
  ['tr:tm=4:tn=8:bk=16:vl=1:pf=0', [0, 3]],
];

async function runAll(spec: string, cases: LinearCase[]): Promise<void> {
  const ctx = await testGpu();
  const lin = await LinearKernels.create(ctx, { gemm: parseGemmVariant(spec) });
  try {
    for (const [i, c] of cases.entries()) {
      const err = await runLinearCase(ctx, c, 20 + i, lin);
      expect(err, `${spec}: case ${i}`).toBeLessThan(1e-4);
    }
  } finally {
    lin.destroy();
  }
}

describe('linear GEMM variants (Dawn)', () => {
  for (const [spec, cases] of SMALL) {
    it(`${spec} matches the dequantized f64 reference on odd shapes`, async () => {
      await runAll(spec, cases.map((i) => CASES[i]));
    }, 60_000);
  }

  // The presets the bench sweeps, at their real tile sizes (those that fit this device's workgroup memory).
  for (const [name, cases] of [['tr', [0, 1]], ['trvl', [5]], ['kv', [0, 1]], ['kv256', [0]]] as const) {
    it(`preset ${name} matches the reference`, async () => {
      const ctx = await testGpu();
      if (gemmSmemBytes(GEMM_PRESETS[name]) > ctx.limits.maxComputeWorkgroupStorageSize) return;
      await runAll(name, cases.map((i) => CASES[i]));
    }, 60_000);
  }

  it('variant specs parse, and bad ones or ones the device cannot run are refused with typed errors, leaking nothing', async () => {
    expect(parseGemmVariant('kv:bk=32:tm=16:tn=4:pf=0')).toEqual({ variant: 'kv', bk: 32, tm: 16, tn: 4, prefetch: false });
    expect(parseGemmVariant('base')).toEqual(GEMM_PRESETS.base);
    expect(() => parseGemmVariant('nope')).toThrow(/unknown 'nope'/);
    expect(() => parseGemmVariant('kv:bq=3')).toThrow(/unknown key 'bq'/);
    expect(() => parseGemmVariant('kv:bk=x')).toThrow(InvalidOptionError);
    const big = 1 << 20;
    expect(() => checkGemmConfig(parseGemmVariant('kv:bk=12'), big)).toThrow(/bk/);
    expect(() => checkGemmConfig(parseGemmVariant('tr:tm=6'), big)).toThrow(/tm/);
    expect(() => checkGemmConfig(parseGemmVariant('tr:tn=4'), big)).toThrow(/tn/);
    expect(() => checkGemmConfig(parseGemmVariant('kv:tn=3'), big)).toThrow(/tn/);
    expect(() => checkGemmConfig(parseGemmVariant('kv:tm=16:tn=16'), big)).toThrow(/accumulators/);
    expect(() => checkGemmConfig({ bk: 16, prefetch: true, variant: 'zz' as 'kv' }, big)).toThrow(/variant/);
    expect(() => checkGemmConfig(parseGemmVariant('kv:db=1:pf=0'), big)).toThrow(/prefetch/);
    expect(() => checkGemmConfig(parseGemmVariant('base:tm=4'), big)).toThrow(/base takes only/);
    expect(() => checkGemmConfig(parseGemmVariant('kv:vl=1'), big)).toThrow(/tr option/);
    expect(() => checkGemmConfig(GEMM_PRESETS.kv32, 32768)).toThrow(/36864 bytes of workgroup memory/);
    for (const name of Object.keys(GEMM_PRESETS)) checkGemmConfig(GEMM_PRESETS[name], 48 * 1024); // all fit the H100's 48 KiB

    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const tooBig = parseGemmVariant('kv:tm=16:tn=8:bk=32');
    await expect(LinearKernels.create(ctx, { gemm: tooBig })).rejects.toThrow(InvalidOptionError);
    expect(liveBytes(ctx)).toBe(before);
  });

  it('generated inner loops index workgroup memory with constants and thread offsets only', () => {
    const shape = { format: 'q4' as const, epw: 8, quant: true, group: 32, inDim: 4096, xOffElems: 0 };
    const kv = gemmTiledSource(GEMM_PRESETS.kv, '', shape);
    const tr = gemmTiledSource(GEMM_PRESETS.tr, '', shape);
    // 4 kq steps x (8 B + 8 A) vec4 loads for kv; 16 k x (2 + 2) for tr; 64 FMAs per k either way.
    expect(kv.match(/= Bs\[\d+\]\[tx\]\[\d+\];/g)).toHaveLength(32);
    expect(kv.match(/= As\[\d+\]\[ty\]\[\d+\];/g)).toHaveLength(32);
    expect(tr.match(/= As\[\d+\]\[ty( \+ 16u)?\];/g)).toHaveLength(32);
    expect(tr.match(/= Bs\[\d+\]\[tx( \+ 16u)?\];/g)).toHaveLength(32);
    expect(kv.match(/fma\(/g)).toHaveLength(16 * 64);
    expect(tr.match(/fma\(/g)).toHaveLength(16 * 64);
    // Whole-word weight loads, one per thread at 128 x 128 x bk 16: q4 one word (8 elements), f16 four words.
    expect(kv).toContain('w0: array<u32>');
    expect(kv).toContain('x: array<vec4<f32>>');
    const f16 = gemmTiledSource(GEMM_PRESETS.kv, '', { ...shape, format: 'f16', epw: 2, quant: false, group: 1 });
    expect(f16).toContain('w0: array<vec4<u32>>');
    // Stores into workgroup memory are whole vec4s (a component write may touch the whole vector in WGSL: a race).
    for (const spec of ['kv', 'tr', 'trdb', 'kv:db=1']) {
      for (const sh of [shape, { ...shape, format: 'f16' as const, epw: 2, quant: false, group: 1, inDim: 33 }]) {
        const src = gemmTiledSource(parseGemmVariant(spec), '', sh);
        expect(src, spec).toMatch(/(As|Bs)\[[^;=]*\] = /);
        expect(src, spec).not.toMatch(/(As|Bs)\[[^;=]*\]\.[xyzw] = /);
        expect(src, spec).not.toMatch(/(As|Bs)\[[^;=]*\] = [^;]*\.[xyzw];/);
      }
    }
    // tr with vl: component stores, always with a constant component.
    for (const sh of [shape, { ...shape, format: 'f16' as const, epw: 2, quant: false, group: 1, inDim: 33 }]) {
      const src = gemmTiledSource(GEMM_PRESETS.trvl, '', sh);
      expect(src).toMatch(/(As|Bs)\[[^;=]*\]\.[xyzw] = /);
      expect(src).not.toMatch(/(As|Bs)\[[^;=]*\]\[[^;=]*\] = [^;]*\.[xyzw];/);
    }
    // x offset not a multiple of 4: element loads.
    expect(gemmTiledSource(GEMM_PRESETS.kv, '', { ...shape, xOffElems: 2 })).toContain('x: array<f32>');
  });
});
