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
    if (f.value === '') chat.removeAttribute(f.name);
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
  if (field) field.value = v;
}

// Model chooser.
$('load-default').addEventListener('click', () => void chat.load(defaultModel));
$<HTMLFormElement>('url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const url = $<HTMLInputElement>('model-url').value.trim();
  if (url) void chat.load(new URL(url.endsWith('/') ? url : `${url}/`, location.href).href);
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

// Stats -> heatmap of the last sparse prefill.
let lastSparse: ReplyStats | undefined;
chat.addEventListener('done', (ev) => {
  const r = (ev as CustomEvent<ReplyResult>).detail;
  const sp = r.stats?.sparsity;
  if (sp && (sp.mode === 'sample' || !lastSparse)) {
    lastSparse = r.stats;
    drawSparsity(heatmap, sp);
  }
});
chat.addEventListener('ready', () => pageError.hidden = true);
chat.addEventListener('error', (ev) => console.info('sieve-chat error:', (ev as unknown as CustomEvent<PlainError>).detail.detail));
drawSparsity(heatmap, undefined);
addEventListener('resize', () => drawSparsity(heatmap, lastSparse?.sparsity));

// WebGPU present? Say so in plain words; the rest of the page stays usable.
const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
if (!gpu) {
  showPageError('This browser has no WebGPU, so no model can run here. Use a recent Chrome or Edge, or Chromium with --enable-unsafe-webgpu.');
} else {
  gpu.requestAdapter().then((a) => {
    if (!a) {
      showPageError('WebGPU is present but no GPU adapter is available (blocklisted GPU or no driver). Try another browser or machine.');
      return;
    }
    const i = a.info;
    $('adapter').textContent = `GPU: ${[i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unknown adapter'}`;
  }, () => {});
  if (params.get('autoload') !== '0') chat.setAttribute('model', defaultModel);
}
