import { defineConfig } from '@playwright/test';

// Debian's Chromium (never a downloaded browser) with WebGPU on SwiftShader
// here; the same specs run on the GPU machine with its own flags.
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-vulkan-surface',
  '--no-sandbox',
];

const port = Number(process.env.SIEVE_E2E_PORT ?? 5199);

export default defineConfig({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  timeout: 300_000,
  // Two workers on CI's 2 cores: 4.4 min instead of 6.5 for the 21 specs (clean clone, 2026-12-07); the longest spec takes 56 s of its 300 s.
  workers: 2,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: 'on',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
    },
  },
  webServer: {
    command: `npx vite --config vite.config.ts --port ${port} --strictPort`,
    url: `http://127.0.0.1:${port}/e2e/pages/kernels.html`,
    reuseExistingServer: !process.env.CI,
    env: { SIEVE_E2E: '1' },
    timeout: 120_000,
  },
});
