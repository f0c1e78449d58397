/**
 * The conformance check (core.ts) in a page: bench/conformance-chromium.ts serves this page (built by Vite:
 * scripts/build-page.mjs), the fixtures folder under /fixtures/ and the structured synthetic model under
 * /synthetic/NAME/, then calls window.sieveConformance. The device is the page's (navigator.gpu, getGpu); model
 * folders are read by Range requests, never through the Cache API. The structured model's folder is asked of the
 * runner through the functions it exposes (sieveSynthetic: made by its worker threads, as in the TTFT harness).
 */
import { getGpu } from '../../src/gpu/device.ts';
import { urlSource } from '../../src/loader/url-source.ts';
import { runConformance, type ConformanceOptions, type ConformanceResult } from './core.ts';

declare global {
  interface Window {
    sieveConformance(o: ConformanceOptions): Promise<ConformanceResult>;
    /** Exposed by the runner: prepares the structured model's folder (made on request where `software`); resolves to its URL path (/synthetic/NAME/). */
    sieveSynthetic?(shape: string, o: { dtype: 'BF16'; seed: number; contextLength: number }, software: boolean): Promise<string>;
    sieveSyntheticClose?(): Promise<void>;
  }
}

window.sieveConformance = async (o) => {
  const ctx = await getGpu();
  const fixtures = new URL('fixtures/', location.href).href;
  const T0 = performance.now();
  try {
    return await runConformance(
      {
        ctx,
        fixture: (rel) => urlSource(fixtures + rel, { cache: false }),
        async readFixture(rel) {
          const r = await fetch(fixtures + rel);
          if (!r.ok) throw new Error(`fixture ${rel}: HTTP ${r.status} from ${fixtures + rel}`);
          return new Uint8Array(await r.arrayBuffer());
        },
        structured: !window.sieveSynthetic
          ? undefined
          : async (shape, so) => {
              const path = await window.sieveSynthetic!(shape, so, ctx.info.isSoftware);
              return { source: urlSource(new URL(path, location.href).href, { cache: false }), close: () => window.sieveSyntheticClose!() };
            },
        structuredSkip: 'Chromium: no runner serves the structured model',
        lap: (what) => console.log(`# ${what} at ${((performance.now() - T0) / 1000).toFixed(1)} s`),
      },
      o,
    );
  } finally {
    ctx.destroy();
  }
};
