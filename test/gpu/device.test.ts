import { describe, expect, it } from 'vitest';
import { testGpu, liveBytes } from '../helpers/gpu.ts';
import { createBuffer, releaseBuffer, STORAGE, uploadBuffer, readF32 } from '../../src/gpu/buffers.ts';
import { getPipeline, pipelineCount } from '../../src/gpu/pipelines.ts';
import { GpuTimer } from '../../src/gpu/timing.ts';
import { SieveError } from '../../src/errors.ts';

describe('gpu module', () => {
  it('finds an adapter with the needed limits', async () => {
    const ctx = await testGpu();
    expect(ctx.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);
    expect(ctx.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(ctx.info.vendor.length).toBeGreaterThan(0);
  });

  it('tracks allocations and round-trips data', async () => {
    const ctx = await testGpu();
    const before = liveBytes(ctx);
    const data = new Float32Array([1, 2, 3, 4.5, -7]);
    const b = uploadBuffer(ctx, data, 'x');
    expect(liveBytes(ctx)).toBe(before + 20);
    expect(Array.from(await readF32(ctx, b, 5))).toEqual(Array.from(data));
    releaseBuffer(ctx, b);
    expect(liveBytes(ctx)).toBe(before);
  });

  it('caches pipelines by source and constants', async () => {
    const ctx = await testGpu();
    const code = 'override S: f32 = 1.0; @group(0) @binding(0) var<storage, read_write> x: array<f32>; @compute @workgroup_size(1) fn main() { x[0] = S; }';
    const n0 = pipelineCount(ctx);
    const p1 = await getPipeline(ctx, { label: 't', code, constants: { S: 2 } });
    const p2 = await getPipeline(ctx, { label: 't', code, constants: { S: 2 } });
    const p3 = await getPipeline(ctx, { label: 't', code, constants: { S: 3 } });
    expect(p1).toBe(p2);
    expect(p3).not.toBe(p1);
    expect(pipelineCount(ctx)).toBe(n0 + 2);
  });

  it('reports a WGSL error as a typed error naming the shader', async () => {
    const ctx = await testGpu();
    await expect(getPipeline(ctx, { label: 'broken', code: 'fn main( {' })).rejects.toThrow(/broken/);
    await expect(getPipeline(ctx, { label: 'broken', code: 'fn main( {' })).rejects.toBeInstanceOf(SieveError);
  });

  it('times passes with timestamps or labels the wall-clock fallback', async () => {
    const ctx = await testGpu();
    const timer = new GpuTimer(ctx);
    const buf = createBuffer(ctx, 1024, STORAGE.rw, 't');
    const p = await getPipeline(ctx, {
      label: 'fill',
      code: '@group(0) @binding(0) var<storage, read_write> x: array<f32>; @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < 256u) { x[g.x] = f32(g.x); } }',
    });
    timer.begin();
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass(timer.pass('fill'));
    pass.setPipeline(p);
    pass.setBindGroup(0, ctx.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] }));
    pass.dispatchWorkgroups(4);
    pass.end();
    timer.resolve(enc);
    ctx.device.queue.submit([enc.finish()]);
    const r = await timer.read();
    expect(r.source).toBe(ctx.features.has('timestamp-query') ? 'timestamp' : 'wall');
    expect(r.totalMs).toBeGreaterThanOrEqual(0);
    if (r.source === 'timestamp') expect(r.passes.map((x) => x.label)).toEqual(['fill']);
    timer.destroy();
    releaseBuffer(ctx, buf);
  });

  it('refuses a buffer over maxBufferSize with the numbers', async () => {
    const ctx = await testGpu();
    expect(() => createBuffer(ctx, ctx.limits.maxBufferSize + 4, STORAGE.rw, 'huge')).toThrow(/maxBufferSize/);
  });
});
