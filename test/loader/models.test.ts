import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../helpers/gpu.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { readModel } from '../../src/loader/model.ts';
import { parseConfig } from '../../models/index.ts';
import { ConfigError, UnsupportedModelError } from '../../src/errors.ts';
import { readFileSync } from 'node:fs';

const cfg = (p: string) => JSON.parse(readFileSync(`${FIXTURES}${p}/config.json`, 'utf8'));

describe('model families', () => {
  it('chatglm2-tiny: spec and canonical recipes', async () => {
    const src = nodeSource(`${FIXTURES}golden/chatglm2-tiny`);
    const m = await readModel(src);
    await src.close();
    expect(m.spec).toMatchObject({ family: 'chatglm2', dim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32, ffnDim: 344, vocabSize: 512, qkvBias: true });
    expect(m.spec.rope).toMatchObject({ variant: 'interleaved-half', base: 10000, rotaryDim: 16 });
    expect(m.plan.dropped).toEqual(['transformer.rotary_pos_emb.inv_freq']);
    const names = m.plan.recipes.map((r) => r.name);
    expect(names).toContain('layers.1.bqkv');
    expect(names.length).toBe(1 + 2 * 7 + 2);
  });
  it('internlm2-tiny (sharded): wqkv unpacked per KV group, gate/up = w1, w3', async () => {
    const src = nodeSource(`${FIXTURES}golden/internlm2-tiny`);
    const m = await readModel(src);
    await src.close();
    expect(m.checkpoint.files.length).toBe(2);
    expect(m.spec).toMatchObject({ family: 'internlm2', dim: 128, nHeads: 8, nKvHeads: 2, headDim: 16, ffnDim: 352 });
    expect(m.spec.rope).toMatchObject({ variant: 'neox', base: 1e6, rotaryDim: 16 });
    const qkv = m.plan.recipes.find((r) => r.name === 'layers.0.wqkv')!;
    // r = 4 query heads per group, group rows = 6 * 16 = 96
    expect(qkv.segments.map((s) => [s.rowStart, s.rows])).toEqual([
      [0, 64],
      [96, 64],
      [64, 16],
      [160, 16],
      [80, 16],
      [176, 16],
    ]);
    const gu = m.plan.recipes.find((r) => r.name === 'layers.2.wGateUp')!;
    expect(gu.segments.map((s) => s.entry.name)).toEqual(['model.layers.2.feed_forward.w1.weight', 'model.layers.2.feed_forward.w3.weight']);
  });
  it('stories260k: untied output.weight is the LM head', async () => {
    const src = nodeSource(`${FIXTURES}stories260k`);
    const m = await readModel(src);
    await src.close();
    expect(m.spec).toMatchObject({ dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, ffnDim: 172, vocabSize: 512, contextLength: 512 });
    expect(m.plan.recipes.find((r) => r.name === 'lmHead')!.segments[0].entry.name).toBe('output.weight');
  });
  it('config without a required field names the field', () => {
    const c = cfg('golden/internlm2-tiny');
    delete c.num_hidden_layers;
    expect(() => parseConfig(c)).toThrow(ConfigError);
    expect(() => parseConfig(c)).toThrow(/num_hidden_layers/);
    const g = cfg('golden/chatglm2-tiny');
    g.kv_channels = 'x';
    expect(() => parseConfig(g)).toThrow(/kv_channels/);
  });
  it('config fields that would change the architecture are refused, not ignored', () => {
    for (const [fixture, field, value] of [
      ['golden/chatglm2-tiny', 'apply_residual_connection_post_layernorm', true],
      ['golden/chatglm2-tiny', 'original_rope', false],
      ['golden/chatglm2-tiny', 'add_bias_linear', true],
      ['golden/chatglm2-tiny', 'rmsnorm', false],
      ['golden/internlm2-tiny', 'hidden_act', 'gelu'],
      ['golden/internlm2-tiny', 'bias', true],
      ['golden/internlm2-tiny', 'rope_scaling', { type: 'yarn', factor: 2 }],
    ] as const) {
      const c = cfg(fixture);
      c[field] = value;
      expect(() => parseConfig(c), field).toThrow(ConfigError);
      expect(() => parseConfig(c), field).toThrow(new RegExp(`field '${field}'`));
    }
    const c = cfg('golden/internlm2-tiny');
    c.rope_scaling = { type: 'dynamic', factor: 2 };
    expect(parseConfig(c).rope.scaling).toEqual({ type: 'dynamic', factor: 2 });
  });
  it('unknown model_type lists the supported families', () => {
    const c = cfg('stories260k');
    c.model_type = 'llama';
    expect(() => parseConfig(c)).toThrow(UnsupportedModelError);
    expect(() => parseConfig(c)).toThrow(/chatglm2.*internlm2/);
  });
});
