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
      w.__progress = [];
      w.__ready = 0;
      // Each event with the status line the element shows at that moment.
      document.addEventListener('progress', (e) =>
        w.__progress.push({
          ...JSON.parse(JSON.stringify((e as unknown as CustomEvent).detail)),
          status: (e.target as Element).shadowRoot?.querySelector('[part=status]')?.textContent,
        }),
      );
      document.addEventListener('ready', () => w.__ready++);
    });
    await page.goto('/e2e/pages/component.html');
    await recordEvents(page, CHAT);
    await waitReady(page, CHAT);
    type Stage = { done: number; total: number; ms: number };
    const progress = await page.evaluate(
      () =>
        (window as unknown as { __progress: { file: string; loadedBytes: number; totalBytes: number; stages?: Record<string, Stage>; status: string }[] })
          .__progress,
    );
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1];
    expect(last.loadedBytes).toBeGreaterThan(0);
    expect(last.loadedBytes).toBeLessThanOrEqual(last.totalBytes);
    expect(await page.evaluate(() => (window as unknown as { __ready: number }).__ready)).toBe(1);
    // Load stages: an engine that reports them (issue 16's LoadProgress.stages) has them in the events, every
    // stage complete at the end, and the ready line sums them up; one that does not is shown by bytes (above).
    const staged = progress.filter((p) => p.stages);
    if (staged.length > 0) {
      const st = staged[staged.length - 1].stages!;
      for (const k of ['read', 'upload', 'compile']) {
        expect(st[k].total, k).toBeGreaterThan(0);
        expect(st[k].done, k).toBe(st[k].total);
      }
      await expect(page.locator('#chat [part=status]')).toContainText(`compile ${st.compile.total} pipelines in`);
    } else {
      // Bytes only: once every byte is read, the element says what the silent rest of the load is doing.
      test.info().annotations.push({ type: 'note', description: 'this engine reports no load stages yet: bytes only' });
      expect(progress.at(-1)!.status).toBe('Weights read; preparing the model on the GPU (upload, shader compile)…');
    }

    // A model without a chat template, in completion mode: presented as text continuation with openings.
    const intro = page.locator('#chat [part=intro]');
    await expect(intro).toContainText('no chat template');
    await expect(intro.locator('[part=suggestion]').first()).toHaveText('Once upon a time, there was a little girl named Lily.');

    await checkGolden(page);
    expect(await page.evaluate(() => (window as unknown as { __tokens: number }).__tokens)).toBeGreaterThanOrEqual(40);
    await expect(page.locator('#chat .message.continuation [part=echo]').last()).toHaveText(tomGolden().prompt);
    await expect(page.locator('#chat .message.user')).toHaveCount(0);

    // The developer stats line: hidden unless show-stats; present or "true" shows it, "false" hides it.
    const stats = page.locator('#chat [part~=stats]').last();
    await expect(stats).toBeHidden();
    await page.evaluate(() => document.querySelector('#chat')!.setAttribute('show-stats', ''));
    await expect(stats).toBeVisible();
    await expect(stats).toContainText('40 new');
    await page.evaluate(() => document.querySelector('#chat')!.setAttribute('show-stats', 'false'));
    await expect(stats).toBeHidden();
    await page.evaluate(() => document.querySelector('#chat')!.setAttribute('show-stats', 'yes'));
    await expect(page.locator('#chat [part=error] .detail')).toContainText("attribute 'show-stats'");
    await page.evaluate(() => document.querySelector('#chat')!.removeAttribute('show-stats'));

    // Themed from outside: custom property and ::part.
    await expect(page.locator('#chat [part=send]')).toHaveCSS('background-color', 'rgb(200, 30, 120)');
    await expect(page.locator('#chat [part=messages]')).toHaveCSS('background-color', 'rgb(250, 245, 230)');

    // Untrusted text stays text: markup typed or generated never becomes elements.
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    await ask(page, CHAT, evil);
    await expect(page.locator('#chat .message [part=echo]').last()).toHaveText(evil);
    const elementsInMessages = await page.evaluate(
      () => document.querySelector('#chat')!.shadowRoot!.querySelectorAll('.message .text *, .message .echo *').length,
    );
    expect(elementsInMessages).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: info.outputPath('component-source.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  test('load panel: the three stages with their counts when reported, bytes per file when not', async ({ page }) => {
    // The panel's rendering and the adapter from LoadProgress events (src/component/progress.ts, runtime.ts),
    // driven by the event sequences an engine sends; no model is loaded here.
    const errors = watchConsole(page);
    await page.goto('/demo/?autoload=0');
    const r = await page.evaluate(async () => {
      const { renderStages, renderFile, stagesSummary } = await import('/src/component/progress.ts' as string);
      const { perFileProgress } = await import('/src/component/runtime.ts' as string);
      const panel = document.createElement('div');
      document.body.append(panel);
      const seen: unknown[] = [];
      const onFile = perFileProgress((p: { stages?: unknown; stage?: string; file: string }) => {
        seen.push(p);
        if (p.stages) renderStages(panel, p.stages, p.stage, p.file);
      });
      const MiB = 1 << 20;
      const ev = (stage: string, read: number, up: number, comp: number, ms: number) => ({
        stage,
        file: 'model.safetensors',
        bytesDone: read * MiB,
        bytesTotal: 4 * MiB,
        stages: { read: { done: read * MiB, total: 4 * MiB, ms }, upload: { done: up, total: 57, ms: ms / 2 }, compile: { done: comp, total: 31, ms } },
      });
      const rows = () => [...panel.querySelectorAll<HTMLElement>('[part=stage]')].map((e) => `${e.dataset.stage}|${e.dataset.state}|${e.textContent}`);
      onFile(ev('read', 1, 0, 0, 100));
      const reading = rows();
      onFile(ev('upload', 4, 20, 3, 900));
      const uploading = rows();
      onFile(ev('compile', 4, 57, 30, 40_000));
      const compiling = rows();
      onFile(ev('compile', 4, 57, 31, 41_000));
      const done = rows();
      const summary = stagesSummary((seen.at(-1) as { stages: unknown }).stages);
      // Bytes only (an engine without stages): one row per file, with percent.
      const bytesPanel = document.createElement('div');
      const bytes = perFileProgress((p: { file: string; loadedBytes: number; totalBytes: number; stages?: unknown }) => {
        renderFile(bytesPanel, p);
        seen.push(p);
      });
      bytes({ file: 'a.safetensors', bytesDone: 512, bytesTotal: 2048 });
      bytes({ file: 'a.safetensors', bytesDone: 2048, bytesTotal: 2048 });
      return { reading, uploading, compiling, done, summary, bytesRows: bytesPanel.textContent, lastStages: (seen.at(-1) as { stages?: unknown }).stages };
    });
    expect(r.reading).toEqual([
      'read|active|Read weights (model.safetensors)1.0 MiB / 4.0 MiB · 100 ms',
      'upload|pending|Upload to GPU0 / 57 tensors · waiting',
      'compile|pending|Compile shaders0 / 31 pipelines · waiting',
    ]);
    expect(r.uploading).toEqual([
      'read|done|Read weights4.0 MiB / 4.0 MiB · done in 900 ms',
      'upload|active|Upload to GPU20 / 57 tensors · 450 ms',
      'compile|active|Compile shaders3 / 31 pipelines · 900 ms',
    ]);
    expect(r.compiling[2]).toBe('compile|active|Compile shaders30 / 31 pipelines · 40.0 s');
    expect(r.done.map((x) => x.split('|')[1])).toEqual(['done', 'done', 'done']);
    expect(r.summary).toBe('read 4.0 MiB in 41.0 s · upload 57 tensors in 20.5 s · compile 31 pipelines in 41.0 s');
    expect(r.bytesRows).toBe('a.safetensors2.0 KiB / 2.0 KiB (100%)');
    expect(r.lastStages).toBeUndefined();
    expect(errors).toEqual([]);
  });
});
