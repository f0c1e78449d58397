/**
 * The TTFT harness's shared part (bench/ttft/node.ts: Node + Dawn; bench/ttft/chromium.ts: Chromium
 * through Playwright): the measurement loop (per length and mode: warm-up runs, measured runs,
 * medians, greedy agreement with dense), one row type, one printed table, one JSON file (ttft.json
 * next to ttft.svg, the TTFT-against-length chart) for both runners.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isMainThread, workerData } from 'node:worker_threads';
import { table } from '../../src/cli/util.ts';
import { runSynthWorker } from './synthetic.ts';

export type TtftMode = 'dense' | 'sample';

/** One measured prefill of a prompt from an empty KV cache; a field a runner does not measure is absent. */
export interface TtftRun {
  /** Prompt in -> first token id chosen (engine-measured: prefill + the choice read back). */
  ttftMs?: number;
  /** Submit -> first token painted, measured by the page (Chromium). */
  pageTtftMs?: number;
  tokenizeMs?: number;
  prefillMs?: number;
  /** Prompt in -> second token id chosen (the first decode step too; Node). */
  secondTokenMs?: number;
  /** Mean greedy decode step after the second token (Node). */
  decodeMsPerToken?: number;
  /** The greedy ids (Node: --steps of them). */
  greedy?: number[];
  promptTokens?: number;
  cachedTokens?: number;
  /** Fraction of the causal area the prefill attention computed (1: dense). */
  areaFraction?: number;
  /** Mean CRA reached on the sampled rows (Node). */
  cra?: number;
  /** The prefill that ran ('dense' or 'sample'). */
  prefillRan?: string;
}

/** A length and mode: the medians of its measured runs. */
export interface TtftRow extends Omit<TtftRun, 'greedy'> {
  length: number;
  promptTokens: number;
  mode: TtftMode;
  greedy?: number[];
  /** Greedy ids equal to dense's on the same prompt (sample rows, when both ran). */
  sameGreedy?: number;
  /** Why the row was not measured (e.g. the KV cache does not fit). */
  skipped?: string;
  runs: TtftRun[];
}

export interface TtftReport {
  bench: 'ttft';
  runner: 'node' | 'chromium';
  date: string;
  adapter: unknown;
  /** What each time spans, on this runner. */
  timing: string;
  options: Record<string, unknown>;
  model?: unknown;
  load?: unknown;
  rows: TtftRow[];
  [extra: string]: unknown;
}

export const median = (xs: (number | undefined)[]): number | undefined => {
  const s = xs.filter((x): x is number => typeof x === 'number').sort((p, q) => p - q);
  return s.length ? s[(s.length - 1) >> 1] : undefined;
};
export const fmt = (x: number | undefined | null, d = 1): string => (x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(d));

const MEDIAN_KEYS = ['ttftMs', 'pageTtftMs', 'tokenizeMs', 'prefillMs', 'secondTokenMs', 'decodeMsPerToken', 'areaFraction', 'cra'] as const;

export interface MeasureOptions {
  lengths: number[];
  modes: TtftMode[];
  repeat: number;
  warmup: number;
  /** The prompt of a length (undefined: skip it, with the reason logged by the runner). */
  prompt(length: number): number[] | undefined;
  /** A warm-up run's prompt (default: the measured one). */
  warmupPrompt?(ids: number[]): number[];
  run(ids: number[], mode: TtftMode, warm: boolean): Promise<TtftRun>;
  /** After each row (the runners rewrite their JSON, so a run cut short keeps what it measured). */
  onRow?(row: TtftRow, rows: TtftRow[]): void;
}

/** Per length and mode: `warmup` then `repeat` runs; the row holds their medians. A failing mode is a skipped row. */
export async function measure(o: MeasureOptions): Promise<TtftRow[]> {
  const rows: TtftRow[] = [];
  for (const length of o.lengths) {
    const ids = o.prompt(length);
    if (!ids) continue;
    for (const mode of o.modes) {
      const row: TtftRow = { length, promptTokens: ids.length, mode, runs: [] };
      try {
        for (let r = 0; r < o.warmup + o.repeat; r++) {
          const warm = r < o.warmup;
          const runIds = warm && o.warmupPrompt ? o.warmupPrompt(ids) : ids;
          const res = await o.run(runIds, mode, warm);
          if (!warm) row.runs.push(res);
          console.log(
            `  ${warm ? 'warm-up' : 'run'} ${mode} ${runIds.length} tokens: TTFT ${fmt(res.pageTtftMs ?? res.ttftMs)} ms, prefill ${fmt(res.prefillMs)} ms`,
          );
        }
        for (const k of MEDIAN_KEYS) {
          const m = median(row.runs.map((x) => x[k]));
          if (m !== undefined) row[k] = m;
        }
        const first = row.runs[0];
        row.promptTokens = first?.promptTokens ?? ids.length;
        if (first?.prefillRan) row.prefillRan = first.prefillRan;
        if (first?.greedy) row.greedy = first.greedy;
        if (row.runs.some((x) => x.cachedTokens !== undefined)) row.cachedTokens = Math.max(0, ...row.runs.map((x) => x.cachedTokens ?? 0));
        const dense = rows.find((d) => d.length === length && d.mode === 'dense' && d.greedy);
        if (mode === 'sample' && dense && row.greedy) row.sameGreedy = row.greedy.filter((t, k) => t === dense.greedy![k]).length;
      } catch (e) {
        row.skipped = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        console.log(`# ${length} ${mode}: skipped (${row.skipped})`);
      }
      rows.push(row);
      o.onRow?.(row, rows);
    }
  }
  return rows;
}

export const TABLE_HEADER = [
  'length',
  'mode',
  'TTFT ms',
  'page TTFT ms',
  'tokenize ms',
  'prefill ms',
  '2nd token ms',
  'decode ms/tok',
  'area',
  'CRA (sampled)',
  'greedy = dense',
  'dense/this',
];

/** The table both runners print (a column a runner does not measure shows '-'). */
export function tableRows(rows: TtftRow[]): string[][] {
  return rows.map((r) => {
    const dense = rows.find((d) => d.length === r.length && d.mode === 'dense');
    const t = (x: TtftRow | undefined) => x?.pageTtftMs ?? x?.ttftMs;
    const speedup = r.mode !== 'dense' && t(dense) && t(r) ? t(dense)! / t(r)! : undefined;
    return [
      String(r.promptTokens),
      r.mode,
      fmt(r.ttftMs),
      fmt(r.pageTtftMs),
      fmt(r.tokenizeMs),
      fmt(r.prefillMs),
      fmt(r.secondTokenMs),
      fmt(r.decodeMsPerToken, 2),
      fmt(r.areaFraction, 3),
      fmt(r.cra, 4),
      r.sameGreedy !== undefined ? `${r.sameGreedy}/${r.greedy?.length}` : '-',
      fmt(speedup, 2),
    ];
  });
}

/** Writes `report` to `jsonPath` (and the chart to ttft.svg beside it). */
export function writeReport(report: TtftReport, jsonPath: string, chartTitle?: string): void {
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(report, null, 1));
  if (chartTitle !== undefined) writeFileSync(join(dirname(jsonPath), 'ttft.svg'), chartSvg(report.rows, chartTitle));
}

/** Prints the table (and where the JSON went). */
export function printReport(report: TtftReport, jsonPath?: string): void {
  console.log(`\n# ttft (${report.runner}), timing: ${report.timing}`);
  console.log(table(tableRows(report.rows), TABLE_HEADER));
  if (jsonPath) console.log(`# wrote ${jsonPath}`);
}

/** TTFT (the page's where measured, else the engine's) against length, one line per mode. */
export function chartSvg(rows: TtftRow[], title: string): string {
  const W = 640,
    H = 380,
    L = 64,
    R = 130,
    T = 36,
    B = 48;
  const ms = (r: TtftRow) => r.pageTtftMs ?? r.ttftMs;
  const lens = [...new Set(rows.map((r) => r.length))].sort((a, b) => a - b);
  const yMax = Math.max(1, ...rows.map((r) => ms(r) ?? 0)) * 1.1;
  const x = (len: number) => L + (lens.length === 1 ? (W - L - R) / 2 : (lens.indexOf(len) * (W - L - R)) / (lens.length - 1));
  const y = (v: number) => H - B - (v / yMax) * (H - T - B);
  const colors: Record<TtftMode, string> = { dense: '#d9480f', sample: '#1c7ed6' };
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${L}" y="20" font-size="14">${title.replace(/[<&>]/g, '')}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">prompt length (tokens)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">TTFT (ms)</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    out.push(
      `<line x1="${L - 4}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`,
    );
  }
  for (const len of lens) out.push(`<text x="${x(len)}" y="${H - B + 16}" text-anchor="middle">${len}</text>`);
  let legendY = T + 10;
  for (const mode of ['dense', 'sample'] as const) {
    const pts = rows.filter((r) => r.mode === mode && ms(r) !== undefined).sort((a, b) => a.length - b.length);
    if (!pts.length) continue;
    out.push(`<polyline fill="none" stroke="${colors[mode]}" stroke-width="2" points="${pts.map((r) => `${x(r.length)},${y(ms(r)!)}`).join(' ')}"/>`);
    for (const r of pts) out.push(`<circle cx="${x(r.length)}" cy="${y(ms(r)!)}" r="3.5" fill="${colors[mode]}"/>`);
    out.push(
      `<rect x="${W - R + 14}" y="${legendY - 9}" width="12" height="12" fill="${colors[mode]}"/>`,
      `<text x="${W - R + 32}" y="${legendY + 1}">${mode}</text>`,
    );
    legendY += 20;
  }
  out.push('</svg>');
  return out.join('\n');
}

/**
 * The script a synthesis worker of --presynth runs (bench/ttft/synthetic.ts): under tsx the worker shim
 * (bench/ttft/synth-worker.mjs, which registers tsx: Node 20 workers get tsx's flag, not its hooks), else
 * the running bundle itself (npm run gpu:bundle), whose entry calls serveSynthWorker first.
 */
export function synthWorkerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('./synth-worker.mjs', import.meta.url) : new URL(import.meta.url);
}

/** In a synthesis worker thread (this bundle run again): serves chunks until terminated and returns true. */
export function serveSynthWorker(): boolean {
  if (isMainThread || !workerData?.ttftSynthWorker) return false;
  runSynthWorker(workerData.ttftSynthWorker);
  return true;
}
