import { expect, test } from '@playwright/test';

// stories260k is served by the dev server from demo/public/models/ (scripts/setup.sh copies it there).
test('no shader module or pipeline is created after load: new lengths, appended turns, greedy and sampled, dense and sparse', async ({ page }) => {
  test.setTimeout(240_000);
  await page.goto('/e2e/pages/zero-compile.html');
  await expect(page.locator('#log')).toHaveText('ready');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const r = await page.evaluate(() => (window as any).sieveZeroCompile.run());
  expect(r.generated.length).toBe(9);
  expect(r.generated.every((n: number) => n >= 1)).toBe(true);
  expect(r.created, r.created.join('\n')).toEqual([]);
  const compile = r.progress.compile.stages.compile;
  expect(compile.total).toBeGreaterThan(0);
  expect(compile.done).toBe(compile.total);
  expect(r.loadPipelines).toBe(compile.total); // every pipeline came through the counted precompile
  expect(r.progress.upload.stages.upload.done).toBe(r.progress.upload.stages.upload.total);
  expect(r.loadTimes.totalMs).toBeGreaterThan(0);
});
