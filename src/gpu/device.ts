/**
 * One entry point for a WebGPU device, in a browser (navigator.gpu) or in Node
 * (Dawn's `webgpu` package). Requests the adapter's maxima for the limits the
 * runtime needs, reports optional features, tracks buffer allocations (so
 * leaks are measurable) and turns device loss into a typed error.
 */
import { DeviceLostError, GpuUnavailableError } from '../errors.ts';
import { nodeBuiltin, nodePackage } from '../util/node-only.ts';

/** Optional features the runtime can use when present (never required). */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as const;
export type OptionalFeature = (typeof OPTIONAL_FEATURES)[number];

/** Limits requested at the adapter's maximum. */
export const NEEDED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;
export type NeededLimit = (typeof NEEDED_LIMITS)[number];

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** true when the adapter is a CPU implementation (SwiftShader): timings mean nothing. */
  isSoftware: boolean;
  backend: 'browser' | 'dawn-node';
}

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterSummary;
  limits: Record<NeededLimit, number>;
  features: Set<OptionalFeature>;
  /** Live buffers created through createBuffer(), with their sizes. */
  allocations: Map<GPUBuffer, number>;
  /** Rejected/resolved once the device is lost; `lost` is set when that happens. */
  lost: Promise<DeviceLostError>;
  isLost: boolean;
  destroy(): void;
}

export interface GpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Features to leave off even when present (e.g. to test the fallback paths). */
  disableFeatures?: OptionalFeature[];
  /** Node only: Dawn's create() flags (default: DEFAULT_DAWN_FLAGS, or without the NVIDIA f16 toggle when nvidiaF16 is false). */
  dawnFlags?: string[];
  /**
   * Node only: set Dawn's adapter toggle vulkan_enable_f16_on_nvidia (default true). Dawn hides
   * shader-f16 (and with it the f16 subgroup matrices the 'tensor' tier uses) on NVIDIA under
   * Vulkan unless it is on; in Chromium the same toggle is the launch flag
   * --enable-dawn-features=vulkan_enable_f16_on_nvidia.
   */
  nvidiaF16?: boolean;
}

const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

const INSTALL_HINT =
  'No WebGPU adapter was found. In a browser: use Chrome/Edge 113+ (or enable WebGPU). ' +
  "In Node on Linux without a GPU: install Debian's `chromium` (it ships SwiftShader, " +
  '/usr/lib/chromium/vk_swiftshader_icd.json) and `libvulkan1`, e.g. `sudo apt-get install chromium libvulkan1` ' +
  '(`npm run setup` does this when run as root); with a GPU: install its Vulkan driver.';

/** Dawn instance flags in Node: unsafe APIs (subgroup matrices) and f16 on NVIDIA's Vulkan driver. */
export const DEFAULT_DAWN_FLAGS = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];

let nodeGpu: GPU | undefined;
type Env = Record<string, string | undefined>;

async function loadDawn(): Promise<{ create: (flags: string[]) => GPU; globals: Record<string, unknown> }> {
  try {
    const mod = await nodePackage<{ create: (flags: string[]) => GPU; globals: Record<string, unknown> }>('web', 'gpu');
    Object.assign(globalThis, mod.globals);
    return mod;
  } catch (e) {
    throw new GpuUnavailableError(
      `Dawn's Node binding (npm package 'webgpu') could not be loaded: ${(e as Error).message}. ` + 'Install it next to sieve-llm (`npm install webgpu`).',
    );
  }
}

/** Linux device nodes of a hardware GPU; without any, no system Vulkan driver can give an adapter. */
function hasGpuDeviceNode(fs: typeof import('node:fs')): boolean {
  for (const dir of ['/dev/dri', '/dev']) {
    try {
      if (fs.readdirSync(dir).some((n) => /^(renderD\d+|nvidia\d+|kfd|dxg)$/.test(n))) return true;
    } catch {
      /* no such folder */
    }
  }
  return false;
}

/**
 * Node: Dawn's `webgpu` package. Tries the system's Vulkan drivers first; if
 * none yields an adapter and no driver was chosen explicitly
 * (VK_ICD_FILENAMES / VK_DRIVER_FILES), points the Vulkan loader at SwiftShader
 * from Debian's chromium package and tries again. On Linux with no GPU device
 * node (/dev/dri/renderD*, /dev/nvidia*) it goes to SwiftShader at once.
 */
async function nodeAdapter(dawnFlags: string[], req: GPURequestAdapterOptions): Promise<GPUAdapter | null> {
  const env = (globalThis as { process?: { env: Env; platform?: string } }).process!.env;
  const platform = (globalThis as { process?: { platform?: string } }).process!.platform;
  const dawn = await loadDawn();
  if (nodeGpu) return nodeGpu.requestAdapter(req);
  const fs = await nodeBuiltin<typeof import('node:fs')>('fs');
  const chosen = !!(env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES);
  const swift = SWIFTSHADER_ICDS.find((p) => fs.existsSync(p));
  // Quiet unless SIEVE_VERBOSE is set (`sieve --verbose`): Mesa's device-select
  // Vulkan layer prints "XDG_RUNTIME_DIR is invalid" from native code, and
  // probing the system drivers of a machine without a GPU makes Dawn and the
  // Vulkan loader print warnings about drivers they then reject.
  const quiet = !env.SIEVE_VERBOSE;
  if (quiet && platform === 'linux' && env.NODEVICE_SELECT === undefined) env.NODEVICE_SELECT = '1';
  let adapter: GPUAdapter | null = null;
  let gpu: GPU | undefined;
  const trySwift = async () => {
    env.VK_ICD_FILENAMES = swift;
    gpu = dawn.create(dawnFlags);
    adapter = await gpu.requestAdapter(req);
  };
  if (quiet && !chosen && swift && platform === 'linux' && !hasGpuDeviceNode(fs)) {
    await trySwift(); // no GPU device node: the system drivers have nothing to offer
  } else {
    gpu = dawn.create(dawnFlags);
    adapter = await gpu.requestAdapter(req);
    if (!adapter && !chosen && swift) await trySwift();
  }
  if (adapter) nodeGpu = gpu;
  return adapter;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !!p?.versions?.node && typeof (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu === 'undefined';
}

/** Returns a device with the runtime's limits raised to the adapter's maxima. */
export async function getGpu(opts: GpuOptions = {}): Promise<GpuContext> {
  const node = isNode();
  const req: GPURequestAdapterOptions = { powerPreference: opts.powerPreference ?? 'high-performance' };
  let adapter: GPUAdapter | null = null;
  try {
    if (node) {
      adapter = await nodeAdapter(opts.dawnFlags ?? (opts.nvidiaF16 === false ? ['enable-dawn-features=allow_unsafe_apis'] : DEFAULT_DAWN_FLAGS), req);
    } else {
      const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
      if (!gpu) throw new GpuUnavailableError('This browser has no WebGPU (navigator.gpu is undefined). ' + INSTALL_HINT);
      adapter = await gpu.requestAdapter(req);
    }
  } catch (e) {
    if (e instanceof GpuUnavailableError) throw e;
    throw new GpuUnavailableError(`requestAdapter() failed: ${(e as Error).message}. ` + INSTALL_HINT);
  }
  if (!adapter) throw new GpuUnavailableError(INSTALL_HINT);

  const disabled = new Set(opts.disableFeatures ?? []);
  const features = new Set<OptionalFeature>(OPTIONAL_FEATURES.filter((f) => adapter!.features.has(f) && !disabled.has(f)));
  const requiredLimits: Record<string, number> = {};
  for (const k of NEEDED_LIMITS) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k];

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      label: 'sieve',
      requiredFeatures: [...features] as GPUFeatureName[],
      requiredLimits,
    });
  } catch (e) {
    throw new GpuUnavailableError(`requestDevice() failed: ${(e as Error).message}`);
  }
  const limits = {} as Record<NeededLimit, number>;
  for (const k of NEEDED_LIMITS) limits[k] = (device.limits as unknown as Record<string, number>)[k];

  const raw = adapter.info ?? ({} as GPUAdapterInfo);
  const description = raw.description || '';
  const isSoftware =
    /swiftshader|llvmpipe|software|cpu/i.test(`${raw.vendor} ${raw.architecture} ${raw.device} ${description}`) ||
    (raw as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const info: AdapterSummary = {
    vendor: raw.vendor || 'unknown',
    architecture: raw.architecture || '',
    device: raw.device || '',
    description,
    isSoftware,
    backend: node ? 'dawn-node' : 'browser',
  };

  const allocations = new Map<GPUBuffer, number>();
  const ctx: GpuContext = {
    device,
    adapter,
    info,
    limits,
    features,
    allocations,
    isLost: false,
    lost: device.lost.then((l) => {
      ctx.isLost = true;
      allocations.clear();
      return new DeviceLostError(`the GPU device was lost (${l.reason}): ${l.message || 'no message'}. Load the model again.`, { reason: l.reason });
    }),
    destroy() {
      for (const b of allocations.keys()) b.destroy();
      allocations.clear();
      device.destroy();
    },
  };
  return ctx;
}

/** Throws the device-lost error if the device is gone (call before queuing work). */
export function assertAlive(ctx: GpuContext): void {
  if (ctx.isLost) throw new DeviceLostError('the GPU device was lost; load the model again.');
}
