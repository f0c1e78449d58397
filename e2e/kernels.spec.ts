import { expect, test } from '@playwright/test';

test.describe('kernels in Chromium (real WebGPU)', () => {
  test('matmul matches the CPU reference on odd shapes', async ({ page }) => {
    await page.goto('/e2e/pages/kernels.html');
    await expect(page.locator('#log')).toHaveText('ready');
    const adapter = await page.evaluate(() => (window as any).sieveTest.adapter());
    console.log('browser adapter:', JSON.stringify(adapter));
    const n = await page.evaluate(() => (window as any).sieveTest.matmulShapes.length);
    for (let i = 0; i < n; i++) {
      const err = await page.evaluate((j) => (window as any).sieveTest.matmul(j), i);
      expect(err).toBeLessThan(1e-3);
    }
  });

  test('linear kernels (f32/f16/q8/q4, gemv and gemm, parts, gate/up) match the dequantized reference', async ({ page }) => {
    await page.goto('/e2e/pages/kernels.html');
    await expect(page.locator('#log')).toHaveText('ready');
    const names: string[] = await page.evaluate(() => (window as any).sieveTest.linearCases);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) {
      const err = await page.evaluate((n) => (window as any).sieveTest.linear(n), name);
      expect(err, name).toBeLessThan(1e-4);
    }
  });

  test('prefill attention: dense and SampleAttention match the CPU reference', async ({ page }) => {
    test.setTimeout(300_000);
    await page.goto('/e2e/pages/kernels.html');
    await expect(page.locator('#log')).toHaveText('ready');
    const dense = await page.evaluate(() => (window as any).sieveTest.attentionDense());
    expect(dense).toBeLessThan(1e-3);
    const exact = await page.evaluate(() => (window as any).sieveTest.attentionSparseExact());
    expect(exact).toBeLessThanOrEqual(1e-5);
    const planted = await page.evaluate(() => (window as any).sieveTest.attentionSparsePlanted());
    console.log('SampleAttention planted S=512 in Chromium:', JSON.stringify(planted));
    expect(planted.craAll).toBeGreaterThanOrEqual(0.92);
    expect(planted.needleSelected).toBe(true);
  });
});
