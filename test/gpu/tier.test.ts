/**
 * Kernel tiers (issue 17; src/gpu/tier.ts): the `kernels` option is validated by name; on
 * SwiftShader (no shader-f16, no subgroup matrices) 'auto' resolves to 'f32' and is reported
 * by `sieve info` (ModelInfo and generation stats: test/api/engine.test.ts, whose load follows a
 * refused 'tensor' one); a forced 'tensor' or 'f16' is a KernelTierError naming the missing
 * feature that leaves nothing allocated. The tensor tier's routing and pipeline lists (which a real GPU
 * runs) are checked as lists here, and the workgroup memory its kernels declare is recounted
 * from their WGSL.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { loadModel } from '../../src/api/load.ts';
import { loadEngine } from '../../src/engine/index.ts';
import { validateLoadOptions } from '../../src/api/options.ts';
import { liveBytes } from '../helpers/gpu.ts';
import { lateCompiles } from '../../src/gpu/pipelines.ts';
import { KernelTierError, InvalidOptionError } from '../../src/errors.ts';
import { resolveKernelTier, TENSOR_WORKGROUP_STORAGE_BYTES, tierReport, tensorTierSupport } from '../../src/gpu/tier.ts';
import { linearPipelineSpecs, tensorRoute } from '../../kernels/linear.ts';
import { TENSOR_MIN_ROWS } from '../../kernels/linear_tensor.ts';
import { attentionPipelineSpecs } from '../../src/attention/index.ts';
import { parseOptions } from '../../src/cli/options.ts';
import { generate } from '../../src/cli/commands/generate.ts';
import { loadOptionsFromValues } from '../../src/cli/commands/engine-options.ts';
import { main } from '../../src/cli/main.ts';
import { ATTRIBUTES } from '../../src/component/options.ts';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';

const STORIES = `${FIXTURES}stories260k`;

/** Bytes of every var<workgroup> of a WGSL source (f16 2, f32/u32/i32 4 bytes). */
function workgroupBytes(code: string): number {
  const size: Record<string, number> = { f16: 2, f32: 4, u32: 4, i32: 4 };
  let total = 0;
  for (const m of code.matchAll(/var<workgroup>\s+\w+\s*:\s*([^;]+);/g)) {
    const t = m[1].replace(/\s+/g, '');
    const arr = /^array<(\w+),(\d+)u?>$/.exec(t);
    if (arr) total += size[arr[1]] * Number(arr[2]);
    else if (size[t]) total += size[t];
    else throw new Error(`unparsed workgroup type ${t}`);
  }
  return total;
}

describe('kernel tiers', () => {
  it('TENSOR_WORKGROUP_STORAGE_BYTES covers what the tensor kernels declare', () => {
    const lin = workgroupBytes(readFileSync(new URL('../../kernels/linear_tensor.wgsl', import.meta.url), 'utf8'));
    const att = workgroupBytes(readFileSync(new URL('../../kernels/attention_tensor.wgsl', import.meta.url), 'utf8'));
    expect(lin).toBeGreaterThan(0);
    expect(att).toBeGreaterThan(0);
    expect(TENSOR_WORKGROUP_STORAGE_BYTES).toBe(Math.max(lin, att));
    // the sampling kernels fit what the tier checks for
    const scores = workgroupBytes(readFileSync(new URL('../../kernels/sample_scores_tensor.wgsl', import.meta.url), 'utf8'));
    expect(scores).toBeGreaterThan(0);
    expect(scores).toBeLessThanOrEqual(TENSOR_WORKGROUP_STORAGE_BYTES);
  });

  it("on SwiftShader: 'auto' is f32; forced 'tensor' and 'f16' name the missing feature", async () => {
    const ctx = await testGpu();
    expect(resolveKernelTier(ctx, 'auto')).toBe('f32');
    expect(resolveKernelTier(ctx, 'f32')).toBe('f32');
    expect(tierReport(ctx)).toEqual({ f32: '', f16: 'no shader-f16', tensor: 'no shader-f16' });
    for (const tier of ['tensor', 'f16'] as const) {
      let err: unknown;
      try {
        resolveKernelTier(ctx, tier);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelTierError);
      expect((err as KernelTierError).code).toBe('UNSUPPORTED');
      expect((err as KernelTierError).details).toMatchObject({ tier, missing: 'no shader-f16' });
      expect((err as Error).message).toMatch(new RegExp(`kernels '${tier}' .*shader-f16`));
    }
    // a device without subgroups is told so once f16 is there (what tensorTierSupport checks, in order)
    const noSub = { ...ctx, features: new Set(['shader-f16'] as const) } as unknown as typeof ctx;
    expect(tensorTierSupport(noSub)).toBe('no subgroups');
  });

  it('the kernels option is validated by name', () => {
    expect(() => validateLoadOptions({ kernels: 'fast' as never })).toThrow(InvalidOptionError);
    expect(() => validateLoadOptions({ kernels: 'fast' as never })).toThrow(/'kernels': must be one of auto, f32, f16, tensor; got "fast"/);
    for (const k of ['auto', 'f32', 'f16', 'tensor'] as const) expect(() => validateLoadOptions({ kernels: k })).not.toThrow();
    // the component's attribute, and the resolver itself (engine-level callers pass it unvalidated)
    const [key, parse] = ATTRIBUTES.kernels;
    expect(key).toBe('kernels');
    expect(parse('tensor')).toBe('tensor');
    expect(() => parse('gpu')).toThrow(/must be one of auto, f32, f16, tensor/);
  });

  it('resolveKernelTier names a value that is no tier', async () => {
    const ctx = await testGpu();
    expect(() => resolveKernelTier(ctx, 'bf16' as never)).toThrow(InvalidOptionError);
    expect(() => resolveKernelTier(ctx, 'bf16' as never)).toThrow(/'kernels': must be one of auto, f32, f16, tensor; got 'bf16'/);
  });

  it('the CLI parses --kernels and names a bad value; sieve info reports the tiers and refuses a missing one', async () => {
    const parsed = (k?: string) => loadOptionsFromValues(parseOptions('generate', ['--model', 'x', ...(k ? ['--kernels', k] : [])], generate.options)).opts;
    expect(parsed('tensor').kernels).toBe('tensor');
    expect(parsed().kernels).toBe('auto');
    expect(() => parsed('f8')).toThrow(/invalid option '--kernels': expected auto, f32, f16, tensor, got 'f8'/);
    let out = '';
    let err = '';
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (out += `${a.join(' ')}\n`));
    const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += `${a.join(' ')}\n`));
    try {
      expect(await main(['info', '--json'])).toBe(0);
      const j = JSON.parse(out);
      expect(j.kernels).toEqual({ option: 'auto', tier: 'f32' });
      expect(j.tiers).toEqual({
        f32: { supported: true },
        f16: { supported: false, missing: 'no shader-f16' },
        tensor: { supported: false, missing: 'no shader-f16' },
      });
      out = '';
      expect(await main(['info'])).toBe(0);
      expect(out).toMatch(/^tensor\s+no: no shader-f16$/m);
      expect(out).toMatch(/^kernels auto: f32$/m);
      expect(await main(['info', '--kernels', 'tensor'])).toBe(1);
      expect(err).toMatch(/KernelTierError: kernels 'tensor' needs what this device lacks: no shader-f16/);
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  });

  it('a forced tier the device lacks fails the load before anything is allocated (the default load: test/api/engine.test.ts)', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const opts = { gpu: ctx, contextLength: 64, attention: { attention: 'dense' as const } };
    await expect(loadModel(STORIES, { ...opts, kernels: 'tensor' })).rejects.toThrow(KernelTierError);
    await expect(loadModel(STORIES, { ...opts, kernels: 'f16' })).rejects.toThrow(/kernels 'f16' needs what this device lacks: no shader-f16/);
    await expect(loadEngine(ctx, STORIES, { kernels: 'tensor' })).rejects.toThrow(/no shader-f16/);
    expect(liveBytes(ctx)).toBe(before);
    expect(lateCompiles(ctx)).toBe(0);
  });

  it("the tensor tier's routing and pipeline lists (what a GPU with subgroup matrices compiles at load)", async () => {
    const ctx = await testGpu();
    const f16 = { format: 'f16' as const, groupSize: 0, shape: [4096, 4096] };
    const q4 = { format: 'q4' as const, groupSize: 32, shape: [28672, 4096] };
    expect(tensorRoute(true, f16, TENSOR_MIN_ROWS)).toBe(true);
    expect(tensorRoute(true, f16, TENSOR_MIN_ROWS - 1)).toBe(false);
    expect(tensorRoute(false, f16, 4096)).toBe(false);
    expect(tensorRoute(true, { ...f16, format: 'f32' }, 4096)).toBe(false);
    expect(tensorRoute(true, { ...f16, shape: [64, 100] }, 4096)).toBe(false); // K not a multiple of 32
    expect(tensorRoute(true, f16, 4096, 8)).toBe(false); // x not on a 16-byte boundary
    expect(tensorRoute(true, { ...q4, groupSize: 16 }, 4096)).toBe(false);
    const uses = [
      { ...f16, rows: 'both' as const, bias: true, maxRows: 4096 },
      { ...q4, rows: 'both' as const, gateUp: true, maxRows: 4096 },
      { ...f16, shape: [92544, 4096], rows: 'both' as const, anyRowOffset: true, maxRows: 4096 },
      { ...f16, rows: 'prefill' as const, maxRows: TENSOR_MIN_ROWS - 1 },
    ];
    const labels = (tensor: boolean) => linearPipelineSpecs(ctx, uses, { tensor }).map((s) => s.label);
    expect(labels(false).filter((l) => l.startsWith('linear_tensor'))).toEqual([]);
    expect([...new Set(labels(true).filter((l) => l.startsWith('linear_tensor')))].sort()).toEqual([
      'linear_tensor_f16_bias',
      'linear_tensor_f16_plain',
      'linear_tensor_q4_gateup',
    ]);
    // the GEMM stays for prefills below TENSOR_MIN_ROWS rows; q4's f32 expansion is not needed past it
    expect(labels(true)).toContain('linear_gemm_q4');
    expect(labels(false).some((l) => l.startsWith('dequant_q4'))).toBe(true);
    expect(labels(true).some((l) => l.startsWith('dequant_q4'))).toBe(false);
    const att = (kvDtype: 'f16' | 'f32', headDim: number) =>
      attentionPipelineSpecs(ctx, { nHeads: 32, nKvHeads: 8, headDim, kvDtype, prefill: { sparse: false }, tensor: true }).map((s) => s.label);
    expect(att('f16', 128)).toContain('attention_tensor_g4');
    expect(att('f32', 128)).not.toContain('attention_tensor_g4');
    expect(att('f16', 64).some((l) => l.startsWith('attention_tensor'))).toBe(false);
    // SampleAttention's sparse pass on the tensor cores: listed with the sparse pipelines (one for every group size)
    const attSparse = (kvDtype: 'f16' | 'f32', tensor: boolean, nKvHeads = 8) =>
      attentionPipelineSpecs(ctx, { nHeads: 32, nKvHeads, headDim: 128, kvDtype, tensor }).map((s) => s.label);
    expect(att('f16', 128)).not.toContain('attention_tensor_sparse');
    expect(attSparse('f16', true)).toContain('attention_tensor_sparse');
    expect(attSparse('f16', true, 4)).toContain('attention_tensor_sparse');
    expect(attSparse('f32', true)).not.toContain('attention_tensor_sparse');
    expect(attSparse('f16', false)).not.toContain('attention_tensor_sparse');
    // and its sampling phase (both entries, one pipeline each for every group size), with the sparse pipelines only
    for (const l of ['sample_scores_tensor_rows', 'sample_scores_tensor_cols']) {
      expect(attSparse('f16', true)).toContain(l);
      expect(attSparse('f16', true, 2)).toContain(l);
      expect(att('f16', 128)).not.toContain(l);
      expect(attSparse('f32', true)).not.toContain(l);
      expect(attSparse('f16', false)).not.toContain(l);
    }
  });
});
