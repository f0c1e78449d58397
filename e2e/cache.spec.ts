import { expect, test } from '@playwright/test';
import { cpSync, existsSync, mkdirSync } from 'node:fs';

// The demo's bundled model: scripts/setup.sh copies it into the ignored
// demo/public/models/; do the same here if setup has not run.
const FIXTURE = new URL('../../shared/fixtures/stories260k/', import.meta.url).pathname;
const DEST = new URL('../demo/public/models/stories260k/', import.meta.url).pathname;
// Served at /models/ (vite.config.ts: publicDir demo/public).
const MODEL = '/models/stories260k/';

test.beforeAll(() => {
  if (!existsSync(`${DEST}model.safetensors`)) {
    mkdirSync(DEST, { recursive: true });
    cpSync(FIXTURE, DEST, { recursive: true });
  }
});

test.describe('loader in Chromium: Cache API', () => {
  test('the second load of stories260k makes no network request for weights; a corrupt entry is refetched', async ({ page }) => {
    const weightRequests: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('.safetensors')) weightRequests.push(`${r.method()} ${r.url()}`);
    });
    await page.goto('/e2e/pages/loader.html');
    await expect(page.locator('#log')).toHaveText('ready');
    await page.evaluate(() => (window as any).sieveLoader.clear());

    const first = await page.evaluate((u) => (window as any).sieveLoader.load(u), MODEL);
    expect(first.family).toBe('internlm2');
    expect(first.cacheHits).toEqual([]);
    expect(first.downloaded).toBe(1175032);
    expect(weightRequests.length).toBeGreaterThan(0);

    // Second visit: a fresh page, same origin and cache.
    weightRequests.length = 0;
    await page.reload();
    await expect(page.locator('#log')).toHaveText('ready');
    const second = await page.evaluate((u) => (window as any).sieveLoader.load(u), MODEL);
    expect(weightRequests).toEqual([]);
    expect(second.cacheHits).toEqual(['model.safetensors']);
    expect(second.downloaded).toBe(0);
    expect(second.digest).toBe(first.digest);
    expect(second.bytes).toBe(first.bytes);

    // Revalidation costs one HEAD per weights file and no download when nothing changed.
    const revalidated = await page.evaluate((u) => (window as any).sieveLoader.load(u, true), MODEL);
    expect(revalidated.cacheHits).toEqual(['model.safetensors']);
    expect(weightRequests).toEqual([`HEAD ${new URL(`${MODEL}model.safetensors`, page.url()).href}`]);
    weightRequests.length = 0;

    // A corrupted entry fails its checksum and is downloaded again.
    expect(await page.evaluate((u) => (window as any).sieveLoader.corrupt(u), `${MODEL}model.safetensors`)).toBe(true);
    const third = await page.evaluate((u) => (window as any).sieveLoader.load(u), MODEL);
    expect(third.cacheHits).toEqual([]);
    expect(weightRequests.length).toBeGreaterThan(0);
    expect(third.digest).toBe(first.digest);
  });
});

test.describe('loader in Chromium: browser file sources', () => {
  test('a FileList from <input webkitdirectory> and an OPFS directory handle load the same weights as the URL', async ({ page }) => {
    await page.goto('/e2e/pages/loader.html');
    await expect(page.locator('#log')).toHaveText('ready');
    const viaUrl = await page.evaluate((u) => (window as any).sieveLoader.load(u), MODEL);
    await page.locator('#dir').setInputFiles(DEST);
    const viaInput = await page.evaluate(() => (window as any).sieveLoader.loadInput());
    expect(viaInput.digest).toBe(viaUrl.digest);
    expect(viaInput.tensors).toBe(33); // 38 checkpoint tensors, w1 + w3 merged per layer
    const viaOpfs = await page.evaluate((u) => (window as any).sieveLoader.loadOpfs(u, ['config.json', 'model.safetensors']), MODEL);
    expect(viaOpfs.digest).toBe(viaUrl.digest);
  });
});
