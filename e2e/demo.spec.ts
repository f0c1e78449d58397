// The chat demo (demo/) in Debian Chromium on real WebGPU (SwiftShader here):
// bundled model, exact greedy text, stop, local folder, broken folders, and
// the findings of issue 18 (each asserted where a loaded page already is).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { ask, newestStatsInView, recordEvents, STORIES, storyGolden, tomGolden, waitReady, watchConsole } from './component-helpers.ts';

const CHAT = '#chat';

test.describe('chat demo', () => {
  test('loads the bundled model; greedy "Tom had a red car" is llama2.c\'s text; stop, then the next message works', async ({ page }, info) => {
    const errors = watchConsole(page);
    await page.goto('/demo/?temperature=0&max-tokens=100&mode=completion');
    await recordEvents(page, CHAT);
    // A short chat box, so that three replies overflow it (the newest one's stats line must be scrolled into view).
    await page.addStyleTag({ content: 'sieve-chat { height: 330px !important; }' });
    await waitReady(page, CHAT);
    await expect(page.locator('#chat [part=status]')).toContainText('Ready');

    // The bundled model is introduced as what it is: a story model that continues text (no chat template),
    // with openings to start from; one click puts an opening in the input.
    await expect(page.locator('#bundled-intro')).toContainText('continues the text');
    const intro = page.locator('#chat [part=intro]');
    await expect(intro).toContainText('no chat template');
    const lily = 'Once upon a time, there was a little girl named Lily.';
    await intro.locator('[part=suggestion]', { hasText: lily }).click();
    await expect(page.locator('#chat textarea')).toHaveValue(lily);
    await expect(page.locator('#chat textarea')).toHaveAttribute('placeholder', /continue/);

    const { prompt, text } = tomGolden();
    const r = await ask(page, CHAT, prompt);
    expect(r.error).toBeUndefined();
    expect(r.finishReason).toBe('length');
    expect(r.stats?.completionTokens).toBe(100);
    expect(r.stats?.promptTokens).toBe(9); // BOS + 8 ids, as in the golden file
    expect(prompt + r.text).toBe(text.slice(0, prompt.length + r.text.length));
    expect(r.text.length).toBeGreaterThan(250); // 100 tokens of this story are 271 characters
    // What the page shows is the streamed text, as text.
    await expect(page.locator('#chat .message.assistant .text').last()).toHaveText(r.text, { useInnerText: false });
    // Text continuation reads as one text: the prompt, then the model's words, in one bubble (no "user" turn).
    await expect(page.locator('#chat .message.assistant [part=echo]').last()).toHaveText(prompt, { useInnerText: false });
    await expect(page.locator('#chat .message.user')).toHaveCount(0);
    await expect(page.locator('#chat [part~=stats]').last()).toContainText('9 prompt tokens');
    await expect(page.locator('#chat [part~=stats]').last()).toContainText('TTFT');
    await page.screenshot({ path: info.outputPath('golden-reply.png'), fullPage: true });

    // Stop mid-reply.
    await page.locator('aside [name=max-tokens]').fill('400');
    const input = page.locator('#chat textarea');
    await input.fill('Once upon a time');
    await input.press('Enter');
    await page.waitForFunction(
      () => (document.querySelector('#chat')!.shadowRoot!.querySelector('.message.assistant.streaming .text')?.textContent?.length ?? 0) > 20,
    );
    await page.locator('#chat [part=stop]').click();
    await page.waitForFunction(() => (window as unknown as { __done: unknown[] }).__done.length >= 2);
    const stopped = await page.evaluate(
      () => (window as unknown as { __done: { finishReason: string; text: string; stats?: { completionTokens: number } }[] }).__done[1],
    );
    expect(stopped.finishReason).toBe('abort');
    expect(stopped.text.length).toBeGreaterThan(20);
    expect(stopped.stats?.completionTokens ?? 0).toBeLessThan(400);
    await expect(page.locator('#chat [part~=stats]').last()).toContainText('stopped');
    await page.screenshot({ path: info.outputPath('stopped.png'), fullPage: true });

    await page.locator('aside [name=max-tokens]').fill('30');
    const next = await ask(page, CHAT, prompt);
    expect(next.error).toBeUndefined();
    expect(next.stats?.completionTokens).toBe(30);
    // The KV cache stayed consistent through the abort: same greedy text again.
    expect(prompt + next.text).toBe(text.slice(0, prompt.length + next.text.length));
    // This turn reused the cache (BOS at least): the line says how much, and gives no prefill rate over the rest.
    const cached = next.stats!.cachedTokens;
    expect(cached).toBeGreaterThan(0);
    const nextStats = page.locator('#chat [part~=stats]').last();
    await expect(nextStats).toContainText(`9 prompt tokens (${cached} cached, ${9 - cached} prefilled)`);
    await expect(nextStats).not.toContainText(/prefill \d+ tok\/s/);
    // The newest reply's stats line is in view, with the conversation taller than its box.
    const view = await newestStatsInView(page, CHAT);
    expect(view.overflows).toBe(true);
    expect(view.inView).toBe(true);
    // The stats line is a setting: off hides every one, on shows them again.
    await page.locator('aside [name=show-stats]').uncheck();
    await expect(nextStats).toBeHidden();
    await page.locator('aside [name=show-stats]').check();
    await expect(nextStats).toBeVisible();

    // A prompt past 'Sparse from (tokens)' (64 here) runs SampleAttention; the heatmap shows it.
    await page.locator('aside [name=max-tokens]').fill('2');
    const story = storyGolden();
    const sparse = await ask(page, CHAT, story);
    expect(sparse.error).toBeUndefined();
    expect(sparse.stats?.promptTokens).toBeGreaterThan(64);
    expect(sparse.stats?.sparsity?.mode).toBe('sample');
    expect((sparse.stats as { areaFraction?: number }).areaFraction).toBeLessThan(1);
    // Every head reports where its kept columns lie (HeadStats.columnBins; a typed array arrives as an object after JSON).
    const heads = (sparse.stats?.sparsity as { heads?: { selected: number; cra: number; columnBins?: Record<string, number> }[] } | undefined)?.heads ?? [];
    expect(heads.length).toBeGreaterThan(0);
    for (const h of heads) expect(Object.values(h.columnBins ?? { missing: -1 }).reduce((s, x) => s + x, 0)).toBe(h.selected);
    // The demo's 'Columns per KV group' = topup: every head reaches alpha (0.95) on its sampled rows
    // (the engine's default 'group' rule only guarantees it for the group's sum).
    for (const h of heads) expect(h.cra).toBeGreaterThanOrEqual(0.95 - 1e-4);
    await expect(page.locator('#chat [part~=stats]').last()).toContainText('sparse prefill');
    const bluePixels = await page.evaluate(() => {
      const c = document.getElementById('heatmap') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > d[i] + 60) n++;
      return n;
    });
    expect(bluePixels).toBeGreaterThan(50);
    const caption = page.locator('#heatmap-caption');
    await expect(caption).toHaveText(/^Turn \d+: sparse prefill of \d+ tokens/);
    const sparseTurn = Number(/^Turn (\d+)/.exec((await caption.textContent())!)![1]);
    await page.screenshot({ path: info.outputPath('sparse-heatmap.png'), fullPage: true });

    // A mistyped model URL is refused before the loaded model is touched: the model stays loaded...
    await page.locator('#model-url').fill(new URL('/models/storiez260k/', page.url()).href);
    await page.locator('#url-form button').click();
    await expect(page.locator('#chat [part=error] .title')).toContainText('could not be downloaded', { timeout: 30_000 });
    await expect(page.locator('#chat [part=error] .detail')).toContainText('storiez260k');
    await expect(page.locator('#chat [part=status]')).toContainText('kept');
    await expect(page.locator(CHAT)).toHaveAttribute('ready', '');

    // ...and answers: a later dense prefill (short, below 'Sparse from', a length already compiled), which the
    // caption names; the picture stays the sparse one's.
    const dense = await ask(page, CHAT, prompt);
    expect(dense.error).toBeUndefined();
    expect(prompt + dense.text).toBe(text.slice(0, prompt.length + dense.text.length));
    expect(dense.stats?.sparsity?.mode).toBe('dense');
    await expect(caption).toContainText(`Shown: turn ${sparseTurn}'s sparse prefill`);
    await expect(caption).toContainText(`Latest, turn ${sparseTurn + 1}: dense prefill`);

    // One message over the context (512 tokens): its own advice, no empty reply bubble, the text back in the input.
    const bubbles = await page.locator('#chat .message').count();
    const long = `${storyGolden(100_000).trim()} ${storyGolden(100_000).trim()}`;
    const over = await ask(page, CHAT, long);
    expect(over.finishReason).toBe('error');
    expect(over.error?.title).toMatch(/This message is too long for the model \(\d+ tokens; the model's context holds 512\)\. Shorten it/);
    await expect(page.locator('#chat [part=error] .title')).toContainText('This message is too long');
    await expect(page.locator('#chat .message')).toHaveCount(bubbles);
    expect(await page.locator('#chat .message.assistant .text').evaluateAll((els) => els.filter((e) => e.textContent === '').length)).toBe(0);
    await expect(page.locator('#chat textarea')).toHaveValue(long);
    // The browser logs the mistyped URL's 404 itself; nothing else went wrong.
    expect(errors.filter((e) => !e.includes('status of 404 (Not Found)'))).toEqual([]);
    expect(errors.length).toBeLessThanOrEqual(1);
  });

  test('loads a local folder (webkitdirectory input); a broken folder shows an error and the page stays usable', async ({ page }, info) => {
    const errors = watchConsole(page);
    await page.goto('/demo/?autoload=0&temperature=0&max-tokens=20&mode=completion');
    await recordEvents(page, CHAT);

    // 1. a good folder from disk
    await page.locator('#folder-input').setInputFiles(STORIES);
    await waitReady(page, CHAT);
    const { prompt, text } = tomGolden();
    const r = await ask(page, CHAT, prompt);
    expect(prompt + r.text).toBe(text.slice(0, prompt.length + r.text.length));
    expect(r.stats?.completionTokens).toBe(20);

    // 2. broken folders: a truncated weights file, no config.json, an unsupported model type
    const root = info.outputPath('broken');
    const truncated = join(root, 'truncated');
    mkdirSync(truncated, { recursive: true });
    for (const f of ['config.json', 'tokenizer.model', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(truncated, f));
    writeFileSync(join(truncated, 'model.safetensors'), readFileSync(join(STORIES, 'model.safetensors')).subarray(0, 5000));
    const noConfig = join(root, 'no-config');
    mkdirSync(noConfig, { recursive: true });
    copyFileSync(join(STORIES, 'model.safetensors'), join(noConfig, 'model.safetensors'));
    const unsupported = join(root, 'unsupported');
    mkdirSync(unsupported, { recursive: true });
    for (const f of ['tokenizer.model', 'tokenizer_config.json', 'model.safetensors']) copyFileSync(join(STORIES, f), join(unsupported, f));
    const cfg = JSON.parse(readFileSync(join(STORIES, 'config.json'), 'utf8'));
    writeFileSync(join(unsupported, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));

    const errorBox = page.locator('#chat [part=error]');
    const cases: [string, RegExp][] = [
      [truncated, /damaged|not in a supported format|missing/i],
      [noConfig, /not a complete model/i],
      [unsupported, /not supported/i],
    ];
    for (const [dir, words] of cases) {
      await page.locator('#folder-input').setInputFiles(dir);
      await expect(errorBox).toBeVisible({ timeout: 60_000 });
      await expect(errorBox.locator('.title')).toHaveText(words);
      await expect(page.locator('#chat [part=send]')).toBeDisabled();
      await page.screenshot({ path: info.outputPath(`error-${dir.split('/').pop()}.png`), fullPage: true });
    }

    // 3. a context past the model's own maximum (max_position_embeddings) is refused by name before
    // anything is allocated (issue 20; the GPU-limit errors of the memory plan: test/loader/plan.test.ts)
    await page.locator('aside [name=context-length]').fill('100000000');
    await page.locator('#load-default').click();
    await expect(errorBox.locator('.title')).toHaveText(/invalid value/, { timeout: 60_000 });
    await expect(errorBox.locator('.detail')).toContainText("above the model's maximum");
    await page.screenshot({ path: info.outputPath('error-context-over-max.png'), fullPage: true });

    // 4. still usable: load the bundled model and chat again
    await page.locator('aside [name=context-length]').fill('0');
    await page.locator('#load-default').click();
    await waitReady(page, CHAT);
    await expect(errorBox).toBeHidden();
    const again = await ask(page, CHAT, prompt);
    expect(prompt + again.text).toBe(text.slice(0, prompt.length + again.text.length));
    expect(errors).toEqual([]);
  });

  test('settings are validated in plain words; no WebGPU is reported in plain words', async ({ browser }, info) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = watchConsole(page);
    // A page without navigator.gpu (as in a browser without WebGPU).
    await page.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    await page.goto('/demo/');
    // One message, from the element, in a browser's terms (no Node or apt-get advice), again after a click on Load.
    const alerts = page.getByRole('alert').filter({ visible: true });
    await expect(page.locator('#chat [part=error] .title')).toContainText('WebGPU is not available in this browser', { timeout: 30_000 });
    await expect(alerts).toHaveCount(1);
    await expect(page.getByText('apt-get')).toHaveCount(0);
    await page.locator('#load-default').click();
    await expect(page.locator('#chat [part=error] .title')).toContainText('WebGPU is not available', { timeout: 30_000 });
    await expect(alerts).toHaveCount(1);
    await expect(page.locator('#page-error')).toBeHidden();

    // Phone width: the chat comes first, on the first screen; the settings follow it.
    await page.setViewportSize({ width: 390, height: 844 });
    const chatBox = (await page.locator('#chat').boundingBox())!;
    const settings = (await page.locator('aside').boundingBox())!;
    expect(chatBox.y).toBeLessThan(settings.y);
    expect(chatBox.y + chatBox.height).toBeLessThanOrEqual(settings.y);
    expect(chatBox.y).toBeLessThan(200);
    expect(chatBox.width).toBeGreaterThan(340);
    // ...and its input spans the chat's width, the buttons under it.
    const inputBox = (await page.locator('#chat textarea').boundingBox())!;
    expect(inputBox.width).toBeGreaterThan(chatBox.width * 0.8);
    await page.screenshot({ path: info.outputPath('phone.png') });
    await page.setViewportSize({ width: 1280, height: 720 });

    await page.locator('aside [name=alpha]').fill('7');
    await expect(page.locator('#chat [part=error] .detail')).toContainText("attribute 'alpha'");
    await page.screenshot({ path: info.outputPath('no-webgpu.png'), fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  });
});
