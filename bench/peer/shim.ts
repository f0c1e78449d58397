/**
 * Runs the peers (tfjs-backend-webgpu, onnxruntime-web's WebGPU EP) under
 * Node + Dawn: both look for navigator.gpu. onnxruntime-web's wasm passes
 * views of a SharedArrayBuffer to queue.writeBuffer, which Dawn's Node
 * binding refuses ("Invalid argument"); the shim copies such views first.
 * Nothing else is changed.
 */
export async function installNavigatorGpu(): Promise<void> {
  const g = globalThis as unknown as { navigator?: { gpu?: GPU }; GPUQueue: { prototype: GPUQueue } };
  if (g.navigator?.gpu) return;
  const name = 'webgpu';
  const dawn = await import(/* @vite-ignore */ name);
  Object.assign(globalThis, dawn.globals);
  const gpu: GPU = dawn.create(['enable-dawn-features=allow_unsafe_apis']);
  Object.defineProperty(globalThis, 'navigator', {
    value: { gpu, userAgent: 'node', hardwareConcurrency: 4, language: 'en' },
    configurable: true,
    writable: true,
  });
  const proto = g.GPUQueue.prototype as unknown as { writeBuffer: (this: GPUQueue, ...a: any[]) => void };
  const orig = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buf: GPUBuffer, off: number, data: ArrayBufferView, dOff?: number, size?: number) {
    if (data && typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer) {
      const el = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const start = (dOff ?? 0) * el;
      const len = size !== undefined ? size * el : data.byteLength - start;
      const copy = new Uint8Array(len);
      copy.set(new Uint8Array(data.buffer, data.byteOffset + start, len));
      return orig.call(this, buf, off, copy);
    }
    return orig.call(this, buf, off, data, dOff, size);
  };
}
