/**
 * The f16 kernel tier (issue 17) without an f16 GPU: SwiftShader has no shader-f16, so the f16
 * kernels cannot run here (bench/conformance.ts checks their numbers on a GPU). What this file
 * checks:
 *  - the generated header (src/gpu/wgsl-header.ts) of each tier, and that every pipeline an f16
 *    engine precompiles (enginePipelineSpecs: linear, attention prefill / sampling / decode,
 *    norm, RoPE) is an f16 spec, distinct from the f32 engine's, its code declaring act = f16;
 *  - that every one of those pipelines COMPILES: Tint's full WGSL validation with `enable f16`
 *    (types, f16 literals, no implicit f32/f16 mixing, overrides substituted), on Dawn's null
 *    backend, which offers shader-f16 and subgroups but runs nothing;
 *  - that createEngine refuses tier 'f16' where the device lacks shader-f16, and an f32 cache;
 *  - that the tensor tier's WGSL modules compile (Tint with subgroup matrices; no pipelines),
 *    attention_tensor's entry points `main` (dense) and `sparse` (SampleAttention's sparse pass) both,
 *    and sample_scores_tensor's `rows` and `cols` (SampleAttention's sampling phase).
 */
import { describe, expect, it } from 'vitest';
import { wgslHeader, actBytes } from '../../src/gpu/wgsl-header.ts';
import { enginePipelineSpecs, createEngine, type WeightInfo } from '../../src/engine/engine.ts';
import { precompile, type PipelineSpec } from '../../src/gpu/pipelines.ts';
import type { GpuContext, NeededLimit, OptionalFeature } from '../../src/gpu/device.ts';
import { NEEDED_LIMITS, OPTIONAL_FEATURES } from '../../src/gpu/device.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { WeightFormat } from '../../src/gpu/formats.ts';
import { InvalidOptionError } from '../../src/errors.ts';
import { testGpu } from '../helpers/gpu.ts';
import linearTensorSrc from '../../kernels/linear_tensor.wgsl?raw';
import attentionTensorSrc from '../../kernels/attention_tensor.wgsl?raw';
import scoresTensorSrc from '../../kernels/sample_scores_tensor.wgsl?raw';

let nullInstance: GPU | undefined;

/** A GpuContext on Dawn's null backend (every feature, no execution): for compile checks only. */
async function nullGpu(): Promise<GpuContext> {
  const { create, globals } = (await import('webgpu')) as unknown as { create: (f: string[]) => GPU; globals: Record<string, unknown> };
  Object.assign(globalThis, globals);
  // (the GPU object stays referenced: a collected instance takes its devices down with it)
  nullInstance ??= create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
  const adapter = await nullInstance.requestAdapter();
  if (!adapter) throw new Error("Dawn's null backend gave no adapter");
  const features = new Set<OptionalFeature>(OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)));
  const requiredLimits: Record<string, number> = {};
  for (const k of NEEDED_LIMITS) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k];
  const device = await adapter.requestDevice({ requiredFeatures: [...features] as GPUFeatureName[], requiredLimits });
  const limits = {} as Record<NeededLimit, number>;
  for (const k of NEEDED_LIMITS) limits[k] = (device.limits as unknown as Record<string, number>)[k];
  return {
    device,
    adapter,
    info: {
      vendor: 'null',
      architecture: '',
      device: '',
      description: 'dawn null backend',
      isSoftware: true, // (default limits: 16 KiB of workgroup memory, so the small tiles)
      backend: 'dawn-node',
    },
    limits,
    features,
    allocations: new Map(),
    lost: new Promise(() => undefined),
    isLost: false,
    destroy: () => device.destroy(),
  };
}

function modelSpec(o: {
  dim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  rotaryDim: number;
  neox: boolean;
  bias: boolean;
}): ModelSpec {
  return {
    family: o.neox ? 'internlm2' : 'chatglm2',
    modelType: 'test',
    dim: o.dim,
    nLayers: 2,
    nHeads: o.nHeads,
    nKvHeads: o.nKvHeads,
    headDim: o.headDim,
    ffnDim: o.ffnDim,
    vocabSize: 1003,
    normEps: 1e-5,
    qkvBias: o.bias,
    rope: { variant: o.neox ? 'neox' : 'interleaved-half', base: 10000, rotaryDim: o.rotaryDim, maxPositions: 4096 },
    contextLength: 4096,
    eosIds: [2],
    config: {},
  };
}

function weightsOf(spec: ModelSpec, format: WeightFormat, group: number): Map<string, WeightInfo> {
  const m = new Map<string, WeightInfo>();
  const quant = format === 'q4' || format === 'q8';
  const w = (name: string, shape: number[], f: WeightFormat = format) =>
    m.set(name, { format: f, groupSize: quant && f === format ? group : 0, shape, parts: 1 });
  const qkv = (spec.nHeads + 2 * spec.nKvHeads) * spec.headDim;
  for (let l = 0; l < spec.nLayers; l++) {
    w(`layers.${l}.wqkv`, [qkv, spec.dim]);
    w(`layers.${l}.wo`, [spec.dim, spec.nHeads * spec.headDim]);
    w(`layers.${l}.wGateUp`, [2 * spec.ffnDim, spec.dim]);
    w(`layers.${l}.wDown`, [spec.dim, spec.ffnDim]);
  }
  // (the LM head in f32: the loader keeps out-of-range tensors so)
  w('lmHead', [spec.vocabSize, spec.dim], format === 'q4' ? 'f32' : format);
  return m;
}

const SHAPES = [
  // InternLM2-like: GQA, neox, head 64: vector paths, tiled decode, fused RoPE, f16 native KV in prefill
  {
    name: 'internlm2-like q4',
    spec: modelSpec({ dim: 256, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 384, rotaryDim: 64, neox: true, bias: false }),
    format: 'q4',
    group: 32,
  },
  // ChatGLM2-like: interleaved half rotary, bias, q8
  {
    name: 'chatglm2-like q8',
    spec: modelSpec({ dim: 128, nHeads: 4, nKvHeads: 1, headDim: 32, ffnDim: 160, rotaryDim: 16, neox: false, bias: true }),
    format: 'q8',
    group: 64,
  },
  // odd shapes: K not a multiple of the chunk (element-wise matrix-vector), head 6 (simple decode, no fused RoPE, u32 KV)
  {
    name: 'odd f16',
    spec: modelSpec({ dim: 30, nHeads: 3, nKvHeads: 3, headDim: 6, ffnDim: 22, rotaryDim: 6, neox: true, bias: true }),
    format: 'f16',
    group: 0,
  },
] as const;

function specsFor(ctx: GpuContext, s: (typeof SHAPES)[number], tier: 'f32' | 'f16'): PipelineSpec[] {
  return enginePipelineSpecs(ctx, s.spec, weightsOf(s.spec, s.format, s.group), { prefillChunk: 512, kvDtype: 'f16', sparse: true, tier });
}

describe('f16 kernel tier (header, specs; compiled on Dawn null backend)', () => {
  it('the generated header declares the activation type of each tier', () => {
    const f16 = wgslHeader('f16', { consts: { A: 3 }, aliases: { yt: 'f32' }, enables: ['subgroups'] });
    expect(f16.startsWith('enable f16;\nenable subgroups;\n')).toBe(true);
    expect(f16).toContain('alias act = f16;');
    expect(f16).toContain('alias act4 = vec4<f16>;');
    expect(f16).toContain('const ACT_F16: bool = true;');
    expect(f16).toContain('const A: u32 = 3u;');
    expect(f16).toContain('alias yt = f32;');
    for (const t of ['f32', 'tensor'] as const) {
      const h = wgslHeader(t);
      expect(h).not.toContain('enable f16');
      expect(h).toContain('alias act = f32;');
      expect(h).toContain('const ACT_F16: bool = false;');
    }
    expect([actBytes('f32'), actBytes('f16'), actBytes('tensor')]).toEqual([4, 2, 4]);
    expect(() => wgslHeader('f32', { consts: { B: -1 } })).toThrow(RangeError);
  });

  it('every f16 engine pipeline compiles (Tint with enable f16), distinct from the f32 ones', async () => {
    const ctx = await nullGpu();
    try {
      expect(ctx.features.has('shader-f16')).toBe(true);
      // The specs as on a GPU that allows the fused decode's 11 storage buffers (the null device allows 8: the
      // fused entry points' modules are validated, their pipelines not built).
      const wide = { ...ctx, limits: { ...ctx.limits, maxStorageBuffersPerShaderStage: 11 } };
      const fusedEntry = /^gemv(_any)?_(residual|rope)$/;
      for (const s of SHAPES) {
        const f32 = specsFor(wide, s, 'f32');
        const f16 = specsFor(wide, s, 'f16');
        expect(f16.length, s.name).toBeGreaterThan(10);
        // the same kernels, each an f16 instantiation
        expect(f16.map((p) => p.entryPoint ?? 'main').sort(), s.name).toEqual(f32.map((p) => p.entryPoint ?? 'main').sort());
        const f32Codes = new Set(f32.map((p) => p.code));
        // (the tier-independent ones: q4 / q8 expansion to f32, the column bins, and the kernels of the
        // f32 logits and token ids: embedding, argmax / top-k and the sampler)
        const shared = f16.filter((p) => p.tier === undefined || p.label.startsWith('dequant_'));
        expect(
          shared.every((p) => /^(dequant_|sample_bins$|argmax$|topk_|sample$|embedding)/.test(p.label)),
          shared.map((p) => p.label).join(),
        ).toBe(true);
        for (const p of f16.filter((q) => !shared.includes(q))) {
          expect(p.tier, p.label).toBe('f16');
          expect(p.code.startsWith('enable f16;'), p.label).toBe(true);
          expect(p.code, p.label).toContain('alias act = f16;');
          expect(f32Codes.has(p.code), p.label).toBe(false);
        }
        // (rmsnorm4: the vec4 variant, the one an engine uses when dim % 4 == 0)
        const kinds = new Set(f16.filter((p) => p.tier === 'f16').map((p) => p.label.replace(/4?_.*/, '')));
        for (const k of ['linear', 'attention', 'sample', 'attn', 'rmsnorm', 'add', 'rope'])
          expect(kinds.has(k), `${s.name}: ${k} in ${[...kinds]}`).toBe(true);
        if (s.spec.headDim % 4 === 0)
          expect(
            f16.some((p) => fusedEntry.test(p.entryPoint ?? '')),
            s.name,
          ).toBe(true);
        // Every module through Tint (all entry points of the file), then every pipeline the null device can hold:
        // a WGSL error rejects with the kernel's label and Tint's message.
        for (const code of new Set([...f16, ...f32].map((p) => p.code))) {
          const info = await ctx.device.createShaderModule({ code }).getCompilationInfo();
          const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
          expect(errors, `${s.name}: ${code.slice(0, 200)}`).toEqual([]);
        }
        const r = await precompile(
          ctx,
          [...f16, ...f32].filter((p) => !fusedEntry.test(p.entryPoint ?? '')),
        );
        expect(r.done, s.name).toBe(r.total);
      }
    } finally {
      ctx.destroy();
    }
  }, 120_000);

  it('createEngine refuses kernels f16 without shader-f16 and with an f32 KV cache', async () => {
    const ctx = await testGpu();
    const spec = SHAPES[0].spec;
    const opts = { spec, weights: new Map(), contextLength: 64 };
    if (!ctx.features.has('shader-f16')) {
      await expect(createEngine(ctx, { ...opts, kernels: 'f16' })).rejects.toThrow(/shader-f16/);
    }
    const fake = { ...ctx, features: new Set([...ctx.features, 'shader-f16' as const]) };
    await expect(createEngine(fake, { ...opts, kernels: 'f16', kvDtype: 'f32' })).rejects.toThrow(InvalidOptionError);
    await expect(createEngine(fake, { ...opts, kernels: 'f16', kvDtype: 'f32' })).rejects.toThrow(/f16 KV cache/);
  });

  it("the tensor tier's WGSL modules compile (Tint, subgroup matrices, on the null backend)", async () => {
    // The null backend offers chromium-experimental-subgroup-matrix (no configurations, and 16 KiB of
    // workgroup memory, so no pipeline of the 36 KiB tiles): this checks each module's WGSL, not its
    // overrides or limits. The numbers: bench/conformance.ts on a GPU.
    const ctx = await nullGpu();
    try {
      expect(ctx.features.has('chromium-experimental-subgroup-matrix')).toBe(true);
      for (const [label, code] of [
        ['linear_tensor', linearTensorSrc],
        ['attention_tensor', attentionTensorSrc],
        ['sample_scores_tensor', scoresTensorSrc],
      ]) {
        const info = await ctx.device.createShaderModule({ label, code }).getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
        expect(errors, label).toEqual([]);
      }
      // (and it can fail: a type error in the same source is reported; in the sparse entry point too, whose
      // uniformity is checked: a barrier under a per-invocation branch, or a loop bound not made uniform)
      expect(attentionTensorSrc).toMatch(/@compute @workgroup_size\(128\)\s*fn sparse\(/);
      const sparseAt = attentionTensorSrc.indexOf('fn sparse(');
      const inSparse = (from: string, to: string) => attentionTensorSrc.slice(0, sparseAt) + attentionTensorSrc.slice(sparseAt).replace(from, to);
      for (const [label, bad] of [
        ['linear_tensor', linearTensorSrc.replace('let h = vec4<f16>(v);', 'let h: vec4<f16> = v;')],
        ['sparse type', inSparse('keep = keep && j + w <= pos;', 'keep = keep && j + w <= 1.0;')],
        ['sparse barrier', inSparse('    workgroupBarrier();\n    // S = Q K^T', '    if (lid == 3u) { workgroupBarrier(); }\n    // S = Q K^T')],
        ['sparse bound', inSparse('let sched = workgroupUniformLoad(&wsched);', 'let sched = wsched;')],
        // the sampling entries: a type error in `rows`, a barrier under a per-lane branch and a per-lane loop bound in `cols`
        ['scores rows type', scoresTensorSrc.replace('rowStats[row * 2u] = mm + log2(ll);', 'rowStats[row * 2u] = mm + row;')],
        [
          'scores cols barrier',
          scoresTensorSrc.replace('      workgroupBarrier();\n      // S^T = K Q^T', '      if (half == 0u) { workgroupBarrier(); }\n      // S^T = K Q^T'),
        ],
        ['scores cols bound', scoresTensorSrc.replace('let kStart = first_row_from(j0 + w);', 'let kStart = first_row_from(j + w);')],
      ]) {
        expect(bad === linearTensorSrc || bad === attentionTensorSrc || bad === scoresTensorSrc, label).toBe(false);
        const info = await ctx.device.createShaderModule({ label: 'bad', code: bad }).getCompilationInfo();
        expect(
          info.messages.some((m) => m.type === 'error'),
          label,
        ).toBe(true);
      }
    } finally {
      ctx.destroy();
    }
  });
});
