// Helpers shared by the demo and component specs: console watching, the
// stories260k golden text, and driving a <sieve-chat> through its own UI.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page } from '@playwright/test';

export const STORIES = join(process.env.SIEVE_FIXTURES ?? '../shared/fixtures', 'stories260k');

/** The "Tom had a red car" case of llama2.c's greedy run (prompt + continuation). */
export function tomGolden(): { prompt: string; text: string } {
  const g = JSON.parse(readFileSync(join(STORIES, 'generation.golden.json'), 'utf8')) as { cases: { name: string; prompt?: string; text: string }[] };
  const c = g.cases.find((x) => x.name === 'tom')!;
  return { prompt: c.prompt!, text: c.text };
}

/** llama2.c's story from BOS (~500 tokens); its first 600 characters make a prompt of ~150 tokens. */
export function storyGolden(chars = 600): string {
  const g = JSON.parse(readFileSync(join(STORIES, 'generation.golden.json'), 'utf8')) as { cases: { name: string; text: string }[] };
  return g.cases.find((x) => x.name === 'from_bos')!.text.slice(0, chars);
}

/** Collects console errors and uncaught page errors; assert it is empty at the end of a test. */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

export interface DoneDetail {
  text: string;
  finishReason: string;
  pageTtftMs?: number;
  stats?: { promptTokens: number; cachedTokens: number; prefillTokens: number; completionTokens: number; ttftMs: number; sparsity?: { mode: string } };
  error?: { title: string; detail: string };
}

/** Records every `done`/`error` event of the element on window for the test to wait on. */
export async function recordEvents(page: Page, selector: string): Promise<void> {
  await page.evaluate((sel) => {
    const el = document.querySelector(sel)!;
    const w = window as unknown as { __done: unknown[]; __errors: unknown[]; __tokens: number };
    w.__done = [];
    w.__errors = [];
    w.__tokens = 0;
    el.addEventListener('done', (e) => w.__done.push(JSON.parse(JSON.stringify((e as CustomEvent).detail))));
    el.addEventListener('error', (e) => w.__errors.push(JSON.parse(JSON.stringify((e as CustomEvent).detail))));
    el.addEventListener('token', () => w.__tokens++);
  }, selector);
}

/** Types `text` in the element's input, presses Enter, waits for the reply's `done` event. */
export async function ask(page: Page, selector: string, text: string, timeout = 240_000): Promise<DoneDetail> {
  const before = await page.evaluate(() => (window as unknown as { __done: unknown[] }).__done.length);
  const input = page.locator(`${selector} textarea`);
  await expect(page.locator(`${selector} [part=send]`)).toBeEnabled({ timeout });
  await input.fill(text);
  await input.press('Enter');
  await page.waitForFunction((n) => (window as unknown as { __done: unknown[] }).__done.length > n, before, { timeout });
  return page.evaluate((n) => (window as unknown as { __done: DoneDetail[] }).__done[n], before);
}

/** Waits until the element has a model loaded (or fails with the error it shows). */
export async function waitReady(page: Page, selector: string, timeout = 180_000): Promise<void> {
  await page.waitForFunction(
    (sel) => {
      const el = document.querySelector(sel)!;
      if (el.hasAttribute('ready')) return true;
      const err = el.shadowRoot?.querySelector('[part=error]') as HTMLElement | null;
      if (err && !err.hidden) throw new Error(`load failed: ${err.textContent}`);
      return false;
    },
    selector,
    { timeout, polling: 250 },
  );
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/sieve-chat.js (`npm run build`) when it is missing or older than the sources. */
export function ensureDist(): string {
  const lib = 'dist/sieve-chat.js';
  const newest = Math.max(...['src', 'kernels', 'models'].map(newestMtime));
  if (!existsSync(lib) || statSync(lib).mtimeMs < newest) {
    execFileSync('npx', ['vite', 'build', '--config', 'vite.config.ts', '--logLevel', 'warn'], { stdio: 'inherit' });
  }
  return lib;
}

/** Whether the element's newest `[part~=stats]` line lies inside its scrolled messages box (what the user sees). */
export async function newestStatsInView(page: Page, selector: string): Promise<{ overflows: boolean; inView: boolean }> {
  return page.evaluate((sel) => {
    const root = document.querySelector(sel)!.shadowRoot!;
    const box = root.querySelector('[part=messages]')!;
    const stats = [...root.querySelectorAll('[part~=stats]')].at(-1)!;
    const b = box.getBoundingClientRect();
    const s = stats.getBoundingClientRect();
    return { overflows: box.scrollHeight > box.clientHeight + 4, inView: s.height > 0 && s.top >= b.top - 1 && s.bottom <= b.bottom + 1 };
  }, selector);
}
