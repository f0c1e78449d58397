/**
 * The load panel of <sieve-chat>: the load's three stages (weights read or
 * downloaded, uploaded/quantized to the GPU, pipelines compiled), each with
 * its counts, from engines that report them (LoadProgress.stages); per-file
 * bytes from engines that do not. Pure DOM over the progress events, so the
 * page can show what a 40 s "100%" is doing.
 */
import type { FileProgress, LoadStage, LoadStages, StageCount } from './link.ts';

export const STAGES: { stage: LoadStage; label: string; unit: (c: StageCount) => string }[] = [
  { stage: 'read', label: 'Read weights', unit: (c) => `${fmtBytes(c.done)} / ${fmtBytes(c.total)}` },
  { stage: 'upload', label: 'Upload to GPU', unit: (c) => `${c.done} / ${c.total} tensors` },
  { stage: 'compile', label: 'Compile shaders', unit: (c) => `${c.done} / ${c.total} pipelines` },
];

export const fmtBytes = (n: number): string =>
  n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

const fmtMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

const isDone = (c: StageCount): boolean => c.total > 0 && c.done >= c.total;

/** Draws (or updates) one row per stage in `panel`: label, bar, "done / total unit", time; the active stage marked. */
export function renderStages(panel: HTMLElement, stages: LoadStages, active: LoadStage | undefined, file: string): void {
  for (const { stage, label, unit } of STAGES) {
    let row = panel.querySelector<HTMLElement>(`[data-stage="${stage}"]`);
    if (!row) {
      row = document.createElement('div');
      row.className = 'stage';
      row.dataset.stage = stage;
      row.setAttribute('part', 'stage');
      const bar = document.createElement('progress');
      bar.setAttribute('part', 'progress-bar');
      row.append(
        Object.assign(document.createElement('span'), { className: 'name' }),
        bar,
        Object.assign(document.createElement('span'), { className: 'count' }),
      );
      panel.append(row);
    }
    const c = stages[stage];
    const done = isDone(c);
    const state = done ? 'done' : stage === active ? 'active' : c.done > 0 ? 'active' : 'pending';
    row.dataset.state = state;
    const name = row.querySelector('.name')!;
    name.textContent = stage === 'read' && file && !done ? `${label} (${file})` : label;
    (name as HTMLElement).title = name.textContent;
    const bar = row.querySelector('progress')!;
    bar.max = Math.max(1, c.total);
    bar.value = Math.min(c.done, bar.max);
    const tail = state === 'pending' ? 'waiting' : done ? `done in ${fmtMs(c.ms)}` : fmtMs(c.ms);
    row.querySelector('.count')!.textContent = c.total > 0 || state !== 'pending' ? `${unit(c)} · ${tail}` : tail;
  }
}

/** "read 1.0 MiB in 0.2 s · upload 57 tensors in 0.4 s · compile 31 pipelines in 38.0 s" */
export function stagesSummary(stages: LoadStages): string {
  return STAGES.map(({ stage }) => {
    const c = stages[stage];
    const what = stage === 'read' ? fmtBytes(c.total) : `${c.total} ${stage === 'upload' ? 'tensors' : 'pipelines'}`;
    return `${stage} ${what} in ${fmtMs(c.ms)}`;
  }).join(' · ');
}

/** Per-file rows, for engines that report bytes only. */
export function renderFile(panel: HTMLElement, p: FileProgress): void {
  let row = panel.querySelector<HTMLElement>(`[data-file="${CSS.escape(p.file)}"]`);
  if (!row) {
    row = document.createElement('div');
    row.className = 'file';
    row.dataset.file = p.file;
    row.setAttribute('part', 'file');
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: p.file, title: p.file });
    const bar = document.createElement('progress');
    bar.setAttribute('part', 'progress-bar');
    row.append(name, bar, Object.assign(document.createElement('span'), { className: 'bytes' }));
    panel.append(row);
  }
  const bar = row.querySelector('progress')!;
  bar.max = Math.max(1, p.totalBytes);
  bar.value = Math.min(p.loadedBytes, bar.max);
  const pct = p.totalBytes > 0 ? Math.floor((100 * p.loadedBytes) / p.totalBytes) : 100;
  row.querySelector('.bytes')!.textContent = `${fmtBytes(p.loadedBytes)} / ${fmtBytes(p.totalBytes)} (${pct}%)`;
}
