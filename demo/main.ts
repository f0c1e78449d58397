// The chat demo: a <sieve-chat> element (the same component that
// `npm run build` ships) plus a model chooser, settings and the heatmap of
// the last sparse prefill. Settings are mirrored onto the element's attributes.
import '../src/component/index.ts';
import { drawSparsity } from '../src/component/heatmap.ts';
import type { SieveChatElement, ReplyResult } from '../src/component/sieve-chat.ts';
import type { ReplyStats } from '../src/component/link.ts';
import { ATTRIBUTES } from '../src/component/options.ts';
import type { PlainError } from '../src/component/plain-errors.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const chat = $<SieveChatElement>('chat');
const pageError = $('page-error');
const heatmap = $<HTMLCanvasElement>('heatmap');

const params = new URLSearchParams(location.search);
const defaultModel = new URL(params.get('model') ?? '/models/stories260k/', location.href).href;
$('default-url').textContent = defaultModel.replace(location.origin, '');

function showPageError(text: string): void {
  pageError.textContent = text;
  pageError.hidden = false;
}

// Settings forms -> attributes of <sieve-chat>.
for (const id of ['load-settings', 'attn-settings', 'gen-settings']) {
  const form = $<HTMLFormElement>(id);
  const apply = (el: Element) => {
    const f = el as HTMLInputElement;
    if (!f.name) return;
    if (f.type === 'checkbox') chat.toggleAttribute(f.name, f.checked);
    else if (f.value === '') chat.removeAttribute(f.name);
    else chat.setAttribute(f.name, f.value);
  };
  for (const el of form.elements) apply(el);
  form.addEventListener('input', (ev) => apply(ev.target as Element));
  form.addEventListener('submit', (ev) => ev.preventDefault());
}
// Query parameters override settings (?attention=dense&max-tokens=100): handy for links and tests.
for (const [k, v] of params) {
  if (!(k in ATTRIBUTES)) continue;
  chat.setAttribute(k, v);
  const field = document.querySelector<HTMLInputElement>(`aside [name="${k}"]`);
  if (field?.type === 'checkbox') {
    field.checked = v !== 'false';
    chat.toggleAttribute(k, field.checked);
  } else if (field) field.value = v;
}

// Model chooser.
$('load-default').addEventListener('click', () => void chat.load(defaultModel));
$<HTMLFormElement>('url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const url = $<HTMLInputElement>('model-url').value.trim();
  if (!url) return;
  let href = url;
  try {
    href = new URL(url.endsWith('/') ? url : `${url}/`, location.href).href;
  } catch {
    /* the element reports it, naming the text */
  }
  void chat.load(href);
});
const folderInput = $<HTMLInputElement>('folder-input');
folderInput.addEventListener('change', () => {
  if (folderInput.files && folderInput.files.length > 0) void chat.load(folderInput.files);
});
type DirPicker = (o?: { mode?: 'read' }) => Promise<FileSystemDirectoryHandle>;
$('pick-folder').addEventListener('click', async () => {
  const picker = (window as unknown as { showDirectoryPicker?: DirPicker }).showDirectoryPicker;
  if (!picker) {
    folderInput.click();
    return;
  }
  try {
    void chat.load(await picker({ mode: 'read' }));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showPageError(`Could not open the folder: ${(e as Error).message}`);
  }
});

// Stats -> heatmap of the last sparse prefill, and a caption that says which
// turn it shows and what the latest prefill was (a later dense prefill is
// named, not left to look like the picture's).
const caption = $('heatmap-caption');
let turn = 0;
let lastSparse: { turn: number; stats: ReplyStats } | undefined;
chat.addEventListener('done', (ev) => {
  const r = (ev as CustomEvent<ReplyResult>).detail;
  const s = r.stats;
  if (!s) return;
  turn++;
  const sp = s.sparsity;
  const prefilled = s.prefillTokens ?? s.promptTokens - s.cachedTokens;
  const cachedNote = s.cachedTokens > 0 ? ` after ${s.cachedTokens} cached` : '';
  if (sp?.mode === 'sample') {
    lastSparse = { turn, stats: s };
    drawSparsity(heatmap, sp);
    caption.textContent =
      `Turn ${turn}: sparse prefill of ${sp.seqLen} tokens${s.cachedTokens > 0 ? ` (${s.cachedTokens} of them cached)` : ''}, ` +
      `${(100 * sp.meanAreaFraction).toFixed(1)}% of the causal area computed.`;
  } else {
    const dense = `dense prefill of ${prefilled} token${prefilled === 1 ? '' : 's'}${cachedNote}: every key column kept`;
    if (lastSparse) {
      const ls = lastSparse.stats;
      caption.textContent =
        `Shown: turn ${lastSparse.turn}'s sparse prefill (${ls.sparsity?.seqLen ?? ls.promptTokens} tokens). ` + `Latest, turn ${turn}: ${dense}.`;
    } else {
      drawSparsity(heatmap, sp);
      caption.textContent = `Turn ${turn}: ${dense} (sparse prefill starts at 'Sparse from' tokens, with attention mode 'sample').`;
    }
  }
});
chat.addEventListener('ready', (ev) => {
  // The header names the kernel tier the model runs (the 'kernels' setting resolved on this GPU).
  const kernels = (ev as CustomEvent<{ kernels?: string }>).detail?.kernels;
  $('kernels').textContent = kernels ? `kernels: ${kernels}` : '';
  pageError.hidden = true;
  turn = 0;
  lastSparse = undefined;
  drawSparsity(heatmap, undefined);
  caption.textContent = 'No prefill yet with this model.';
});
chat.addEventListener('error', (ev) => console.info('sieve-chat error:', (ev as unknown as CustomEvent<PlainError>).detail.detail));
drawSparsity(heatmap, undefined);
addEventListener('resize', () => drawSparsity(heatmap, lastSparse?.stats.sparsity));

// WebGPU: the element itself says, once and in plain words, when a model
// cannot run here (it checks navigator.gpu and the adapter before loading).
// The header names the adapter when there is one.
const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
gpu?.requestAdapter().then(
  (a) => {
    if (!a) return;
    const i = a.info;
    $('adapter').textContent = `GPU: ${[i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unknown adapter'}`;
  },
  () => {},
);
if (params.get('autoload') !== '0') chat.setAttribute('model', defaultModel);
