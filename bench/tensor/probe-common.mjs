// Shared by the tensor probes (tc-attn, tc-linear, tc-gemm): f16 bit conversions and the device,
// created with the NVIDIA f16 toggle, every probe feature the adapter has and its maximum limits.
// The GPU object stays referenced here for the process's life (see dawn-gc-crash.mjs).
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);

/** f32 -> f16 bits, round to nearest. */
export function f16bits(x) {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000;
  let e = ((u >>> 23) & 0xff) - 127 + 15;
  let m = u & 0x7fffff;
  if (e <= 0) return s;
  if (e >= 31) return s | 0x7c00;
  m = m + 0x1000;
  if (m & 0x800000) {
    m = 0;
    e++;
  }
  return s | (e << 10) | (m >>> 13);
}

/** f16 bits -> value. */
export function f16val(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

export const r16 = (x) => f16val(f16bits(x));

const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
];

export const gpu = create(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']);
export const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
export const feats = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'].filter((f) => adapter.features.has(f));
export const device = await adapter.requestDevice({
  requiredFeatures: feats,
  requiredLimits: Object.fromEntries(LIMITS.map((k) => [k, adapter.limits[k]])),
});
