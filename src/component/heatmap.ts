/**
 * A picture of one sparse prefill: one row per (layer, head), one column per
 * bin of key positions [0, seqLen). Blue: columns SampleAttention selected
 * (darker = more of the bin kept); orange: the local window as seen by the
 * last query rows; light grey: key columns skipped. Drawn on a canvas from a
 * SparsityReport (src/engine/types.ts). The engine fills HeadStats.columnBins
 * when the prefill asks for reportColumns (the component always does); an
 * engine without it leaves only the window and the per-head counts to show.
 */
import { COLUMN_BINS, type SparsityReport } from '../engine/types.ts';

const LABEL_W = 44;
const TOP = 18;

export function drawSparsity(canvas: HTMLCanvasElement, report: SparsityReport | undefined): void {
  const dpr = globalThis.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || canvas.width;
  const cssH = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const g = canvas.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#555';
  if (!report || report.mode !== 'sample') {
    g.fillText(report ? `last prefill was dense (${report.seqLen} tokens): every key column kept` : 'no sparse prefill yet', 4, 14);
    return;
  }
  if (report.heads.length === 0) {
    g.fillText(`sparse prefill of ${report.seqLen} tokens: ${(100 * report.meanAreaFraction).toFixed(1)}% of the causal area computed`, 4, 14);
    g.fillText('(the engine did not report per-head statistics)', 4, 30);
    g.fillStyle = '#eceef1';
    g.fillRect(LABEL_W, 40, cssW - LABEL_W - 4, 14);
    g.fillStyle = 'rgba(47, 111, 222, 0.8)';
    g.fillRect(LABEL_W, 40, (cssW - LABEL_W - 4) * report.meanAreaFraction, 14);
    return;
  }
  const heads = [...report.heads].sort((a, b) => a.layer - b.layer || a.head - b.head);
  const plotW = cssW - LABEL_W - 4;
  const rowH = Math.max(1, (cssH - TOP - 4) / heads.length);
  const seqLen = report.seqLen;
  const bins = Math.min(COLUMN_BINS, seqLen);
  const binW = plotW / bins;
  const colsPerBin = seqLen / bins;
  const hasColumns = heads.some((h) => h.columnBins);
  g.fillText(
    `sparse prefill of ${seqLen} tokens: ${(100 * report.meanAreaFraction).toFixed(1)}% of the causal area computed` +
      (hasColumns ? '' : ' (column positions not reported: counts only)'),
    4,
    12,
  );
  let lastLayer = -1;
  heads.forEach((h, i) => {
    const y = TOP + i * rowH;
    g.fillStyle = '#eceef1';
    g.fillRect(LABEL_W, y, plotW, Math.max(1, rowH - (rowH > 3 ? 1 : 0)));
    if (h.columnBins) {
      // columnBins has COLUMN_BINS bins; fold them onto `bins` drawing columns.
      for (let b = 0; b < COLUMN_BINS; b++) {
        const n = h.columnBins[b];
        if (!n) continue;
        const x0 = LABEL_W + Math.floor((b * bins) / COLUMN_BINS) * binW;
        const kept = Math.min(1, n / Math.max(1, seqLen / COLUMN_BINS));
        g.fillStyle = `rgba(47, 111, 222, ${0.25 + 0.75 * kept})`;
        g.fillRect(x0, y, Math.max(1, binW), Math.max(1, rowH - (rowH > 3 ? 1 : 0)));
      }
    } else if (h.selected > 0) {
      g.fillStyle = 'rgba(47, 111, 222, 0.6)';
      g.fillRect(LABEL_W, y, Math.max(1, (h.selected / seqLen) * plotW), Math.max(1, rowH / 2));
    }
    const wBins = Math.max(1, Math.round(h.window / colsPerBin));
    g.fillStyle = 'rgba(230, 140, 30, 0.85)';
    g.fillRect(LABEL_W + (bins - wBins) * binW, y, wBins * binW, Math.max(1, rowH - (rowH > 3 ? 1 : 0)));
    if (h.layer !== lastLayer) {
      lastLayer = h.layer;
      g.fillStyle = '#555';
      g.fillText(`L${h.layer}`, 4, y + Math.min(11, rowH + 9));
      if (i > 0) {
        g.fillStyle = '#999';
        g.fillRect(0, y - 0.5, cssW, 0.5);
      }
    }
  });
}
