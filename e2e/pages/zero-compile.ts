// In-browser page for e2e/zero-compile.spec.ts: the zero-compile scenario (test/cases/zero-compile.ts)
// on the page's WebGPU device, with the engine in the page (so the device's create* calls can be counted).
import { getGpu } from '../../src/gpu/device.ts';
import { runZeroCompile } from '../../test/cases/zero-compile.ts';

const MODEL = '/demo/public/models/stories260k/';

(window as unknown as { sieveZeroCompile: unknown }).sieveZeroCompile = {
  async run() {
    return runZeroCompile(await getGpu(), MODEL);
  },
};
document.getElementById('log')!.textContent = 'ready';
