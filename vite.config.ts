import { defineConfig } from 'vite';

// One config for the demo (root: demo/), the e2e test pages, the library build
// of the <sieve-chat> component and the unit tests (vitest, Node + Dawn).
export default defineConfig({
  root: '.',
  server: { host: '127.0.0.1', port: 5173, strictPort: false, fs: { allow: ['.'] } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
} as Parameters<typeof defineConfig>[0]);
