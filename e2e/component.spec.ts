// <sieve-chat> on a plain page, from the source module (through Vite). The
// built single-file module (dist/sieve-chat.js) on a plain page with one
// script tag is what e2e/ttft.spec.ts drives (bench/ttft/page.html).
import { expect, test, type Page } from '@playwright/test';
import { ask, recordEvents, tomGolden, waitReady, watchConsole } from './component-helpers.ts';

const CHAT = '#chat';

async function checkGolden(page: Page): Promise<void> {
  const { prompt, text } = tomGolden();
  const r = await ask(page, CHAT, prompt);
  expect(r.error).toBeUndefined();
  expect(r.stats?.completionTokens).toBe(40);
  expect(prompt + r.text).toBe(text.slice(0, prompt.length + r.text.length));
}

test.describe('<sieve-chat> on a plain page', () => {
  test('source module: loads from its model attribute, streams, fires events, themable, renders text only', async ({ page }, info) => {
    const errors = watchConsole(page);
    await page.addInitScript(() => {
      const w = window as unknown as { __progress: unknown[]; __ready: number };
      w.__progress = []; w.__ready = 0;
      document.addEventListener('progress', (e) => w.__progress.push(JSON.parse(JSON.stringify((e as unknown as CustomEvent).detail))));
      document.addEventListener('ready', () => w.__ready++);
    });
    await page.goto('/e2e/pages/component.html');
    await recordEvents(page, CHAT);
    await waitReady(page, CHAT);
    const progress = await page.evaluate(() => (window as unknown as { __progress: { file: string; loadedBytes: number; totalBytes: number }[] }).__progress);
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1];
    expect(last.loadedBytes).toBeGreaterThan(0);
    expect(last.loadedBytes).toBeLessThanOrEqual(last.totalBytes);
    expect(await page.evaluate(() => (window as unknown as { __ready: number }).__ready)).toBe(1);

    await checkGolden(page);
    expect(await page.evaluate(() => (window as unknown as { __tokens: number }).__tokens)).toBeGreaterThanOrEqual(40);

    // Themed from outside: custom property and ::part.
    await expect(page.locator('#chat [part=send]')).toHaveCSS('background-color', 'rgb(200, 30, 120)');
    await expect(page.locator('#chat [part=messages]')).toHaveCSS('background-color', 'rgb(250, 245, 230)');

    // Untrusted text stays text: markup typed or generated never becomes elements.
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    await ask(page, CHAT, evil);
    await expect(page.locator('#chat .message.user .text').last()).toHaveText(evil);
    const elementsInMessages = await page.evaluate(() =>
      document.querySelector('#chat')!.shadowRoot!.querySelectorAll('.message .text *').length);
    expect(elementsInMessages).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: info.outputPath('component-source.png'), fullPage: true });
    expect(errors).toEqual([]);
  });
});
