// Minimal reproduction of a dawn.node abort (npm `webgpu` 0.6.2), seen here on this CPU machine:
// the GPU object that create() returned is garbage-collected while a device it made is still in
// use; the process then dies in native code, with nothing thrown to JavaScript:
//   SwiftShader (Vulkan): "terminate called after throwing an instance of 'std::system_error'
//                          what(): Invalid argument" (exit 134)
//   null backend:          "The futex facility returned an unexpected error code." (exit 134) or a
//                          segmentation fault (exit 139), varying between runs
// the same two messages issue 17 reports from the H100. Keeping the GPU object referenced for
// the device's lifetime avoids it: src/gpu/device.ts keeps it in a module variable (nodeGpu),
// the tensor probes at module scope, test/gpu/f16-tier.test.ts in nullInstance.
//   node --expose-gc bench/tensor/dawn-gc-crash.mjs [null]      (exit 0 would mean fixed)
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const keep = setInterval(() => {}, 1000);
const onNull = process.argv[2] === 'null';
if (!onNull && !process.env.VK_ICD_FILENAMES) process.env.VK_ICD_FILENAMES = '/usr/lib/chromium/vk_swiftshader_icd.json';
process.env.NODEVICE_SELECT ??= '1';

async function makeDevice() {
  const gpu = create(onNull ? ['backend=null'] : []); // referenced only inside this function
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no adapter');
  return adapter.requestDevice();
}

const device = await makeDevice();
for (let i = 0; i < 5; i++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 50));
}
device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
device.queue.submit([]);
await device.queue.onSubmittedWorkDone();
console.log('survived: the device worked after its GPU object was collected');
clearInterval(keep);
process.exit(0);
