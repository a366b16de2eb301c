// The two figures of a training run: the evaluation's confusion matrix and the loss curve. Each is built as an SVG
// string (see svg.ts for the pieces) and written as .svg + .png.

import { metricsFromConfusion, rowNormalised, type ConfusionMatrix } from './metrics.ts';
import {
  svgOpen, svgText, num, niceTicks, tickLabel, blues, writeFigure, type FigureFiles, type PngOptions,
} from './svg.ts';

export interface ConfusionPlotOptions {
  /** Shown before the metrics in the title, e.g. the run name. */
  title?: string;
  /** Draw the "invalid" column even when no prediction was invalid; default: only when some were. */
  showInvalid?: boolean;
}

const CELL = 84; // px per matrix cell
const ROW_LABEL_W = 104; // room left of each grid for the axis title and class names
const PANEL_GAP = 48;
const GRID_TOP = 96;

/**
 * The confusion matrix as an SVG: two panels, raw counts and row-normalised shares (each true class's row sums to
 * 100%), rows = true class, columns = predicted class, with macro-F1 and accuracy in the title.
 */
export function confusionMatrixSvg(cm: ConfusionMatrix, opts: ConfusionPlotOptions = {}): string {
  const m = metricsFromConfusion(cm);
  const { shares, invalidShares } = rowNormalised(cm);
  const k = cm.labels.length;
  const withInvalid = opts.showInvalid ?? m.invalid > 0;
  const cols = [...cm.labels, ...(withInvalid ? ['invalid'] : [])];
  // counts: [K, K (+1)] with the invalid column last; shares likewise.
  const counts = cm.counts.map((row, t) => (withInvalid ? [...row, cm.invalid[t]] : row));
  const fracs = shares.map((row, t) => (withInvalid ? [...row, invalidShares[t]] : row));
  const maxCount = Math.max(1, ...counts.flat());

  const panelW = ROW_LABEL_W + cols.length * CELL;
  const width = 2 * panelW + PANEL_GAP + 56; // right margin: the second panel's title is wider than a 3-column grid
  const gridBottom = GRID_TOP + k * CELL;
  const height = gridBottom + 64;
  const out: string[] = [svgOpen(width, height)];

  const head = `macro-F1 ${m.macroF1.toFixed(3)} · accuracy ${m.accuracy.toFixed(3)} · n = ${m.total}`;
  out.push(svgText(width / 2, 26, opts.title ? `${opts.title} — ${head}` : `Confusion matrix — ${head}`, { size: 16, anchor: 'middle', weight: 'bold' }));
  const f1s = m.perClass.map((c) => `${c.label} ${c.f1.toFixed(3)}`).join(' · ');
  out.push(svgText(width / 2, 48, `F1 per class: ${f1s}${m.invalid ? ` · invalid answers ${m.invalid}` : ''}`, { size: 12, anchor: 'middle', fill: '#444' }));

  const panels: { title: string; value: (t: number, p: number) => number; label: (t: number, p: number) => string }[] = [
    { title: 'counts', value: (t, p) => counts[t][p] / maxCount, label: (t, p) => String(counts[t][p]) },
    { title: 'row-normalised (% of true class)', value: (t, p) => fracs[t][p], label: (t, p) => `${(100 * fracs[t][p]).toFixed(1)}%` },
  ];
  panels.forEach((panel, pi) => {
    const x0 = 12 + pi * (panelW + PANEL_GAP) + ROW_LABEL_W; // left edge of the grid
    out.push(svgText(x0 + (cols.length * CELL) / 2, GRID_TOP - 16, panel.title, { size: 13, anchor: 'middle', weight: 'bold' }));
    // Axis titles: "true" down the left, "predicted" under the grid.
    out.push(svgText(x0 - ROW_LABEL_W + 14, GRID_TOP + (k * CELL) / 2, 'true', { size: 13, anchor: 'middle', rotate: -90, middle: true }));
    out.push(svgText(x0 + (cols.length * CELL) / 2, gridBottom + 46, 'predicted', { size: 13, anchor: 'middle' }));
    cm.labels.forEach((name, t) => {
      out.push(svgText(x0 - 8, GRID_TOP + t * CELL + CELL / 2, name, { size: 12, anchor: 'end', middle: true }));
    });
    cols.forEach((name, p) => {
      out.push(svgText(x0 + p * CELL + CELL / 2, gridBottom + 20, name, { size: 12, anchor: 'middle', fill: p >= k ? '#a50f15' : undefined }));
    });
    for (let t = 0; t < k; t++) {
      for (let p = 0; p < cols.length; p++) {
        const v = panel.value(t, p);
        const x = x0 + p * CELL;
        const y = GRID_TOP + t * CELL;
        out.push(`<rect x="${x}" y="${y}" width="${CELL}" height="${CELL}" fill="${blues(v)}" stroke="#ffffff" stroke-width="2"/>`);
        // Dark cells get white text; the diagonal (correct answers) is bold.
        out.push(svgText(x + CELL / 2, y + CELL / 2, panel.label(t, p), {
          size: 14, anchor: 'middle', middle: true, fill: v > 0.55 ? '#ffffff' : '#111111', weight: t === p ? 'bold' : 'normal',
        }));
      }
    }
    out.push(`<rect x="${x0}" y="${GRID_TOP}" width="${cols.length * CELL}" height="${k * CELL}" fill="none" stroke="#888" stroke-width="1"/>`);
  });
  out.push('</svg>\n');
  return out.join('\n');
}

/** Loss values by optimiser step. */
export interface LossSeries {
  steps: number[];
  losses: number[];
}

export interface LossPlotOptions {
  title?: string;
  /** EMA weight for the smoothed line, in [0, 1); 0 draws no smoothed line. Default 0.9 when there are ≥ 20 points. */
  smoothing?: number;
  /** Validation losses, drawn as points. */
  validation?: LossSeries;
  xLabel?: string;
  yLabel?: string;
}

/**
 * Exponential moving average with TensorBoard's bias correction (the first values are not pulled toward 0).
 * Non-finite values are skipped: their slots repeat the last average (NaN before the first finite value).
 */
export function emaSmooth(values: readonly number[], weight: number): number[] {
  if (!(weight >= 0 && weight < 1)) throw new Error(`smoothing weight must be in [0, 1), got ${weight}`);
  let avg = 0;
  let n = 0;
  return values.map((v) => {
    if (Number.isFinite(v)) {
      avg = weight * avg + (1 - weight) * v;
      n++;
    }
    return n === 0 ? NaN : avg / (1 - weight ** n);
  });
}

function checkSeries(s: LossSeries, name: string): void {
  if (s.steps.length !== s.losses.length) throw new Error(`${name}: ${s.steps.length} steps but ${s.losses.length} losses`);
}

const W = 760, H = 440, LEFT = 72, RIGHT = 24, TOP = 48, BOTTOM = 58;

/** The loss curve as an SVG: step vs loss, raw and smoothed training loss, validation points. */
export function lossCurveSvg(train: LossSeries, opts: LossPlotOptions = {}): string {
  checkSeries(train, 'lossCurveSvg train');
  if (opts.validation) checkSeries(opts.validation, 'lossCurveSvg validation');
  const val = opts.validation ?? { steps: [], losses: [] };
  const weight = opts.smoothing ?? (train.losses.length >= 20 ? 0.9 : 0);
  const smooth = weight > 0 ? emaSmooth(train.losses, weight) : null;

  const finite = (xs: number[], ys: number[]) => xs.map((x, i) => [x, ys[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const pts = [...finite(train.steps, train.losses), ...finite(val.steps, val.losses)];
  if (pts.length === 0) throw new Error('lossCurveSvg: no finite (step, loss) points to plot');
  let [xMin, xMax] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [yMin, yMax] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (xMin === xMax) { xMin -= 1; xMax += 1; }
  if (yMin === yMax) { const d = Math.abs(yMin) * 0.1 || 1; yMin -= d; yMax += d; }
  const xTicks = niceTicks(xMin, xMax, 6);
  const yTicks = niceTicks(yMin, yMax, 6);
  // Extend the axes to the outer ticks so the curve sits inside round numbers.
  xMin = Math.min(xMin, xTicks[0]); xMax = Math.max(xMax, xTicks[xTicks.length - 1]);
  yMin = Math.min(yMin, yTicks[0]); yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
  const pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
  const sx = (x: number) => LEFT + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number) => TOP + ph - ((y - yMin) / (yMax - yMin)) * ph;

  const out: string[] = [svgOpen(W, H)];
  out.push(svgText(W / 2, 28, opts.title ?? 'Training loss', { size: 16, anchor: 'middle', weight: 'bold' }));
  for (const t of yTicks) {
    out.push(`<line x1="${LEFT}" y1="${num(sy(t))}" x2="${W - RIGHT}" y2="${num(sy(t))}" stroke="#e5e5e5"/>`);
    out.push(svgText(LEFT - 8, sy(t), tickLabel(t), { size: 11, anchor: 'end', middle: true, fill: '#333' }));
  }
  for (const t of xTicks) {
    out.push(`<line x1="${num(sx(t))}" y1="${TOP}" x2="${num(sx(t))}" y2="${TOP + ph}" stroke="#f0f0f0"/>`);
    out.push(svgText(sx(t), TOP + ph + 18, tickLabel(t), { size: 11, anchor: 'middle', fill: '#333' }));
  }
  out.push(`<rect x="${LEFT}" y="${TOP}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(svgText(LEFT + pw / 2, H - 12, opts.xLabel ?? 'step', { size: 13, anchor: 'middle' }));
  out.push(svgText(18, TOP + ph / 2, opts.yLabel ?? 'loss', { size: 13, anchor: 'middle', rotate: -90, middle: true }));

  // A polyline that restarts after non-finite values instead of drawing through them.
  const pathOf = (xs: number[], ys: number[]) => {
    let d = '';
    let pen = false;
    xs.forEach((x, i) => {
      if (!Number.isFinite(x) || !Number.isFinite(ys[i])) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${num(sx(x))} ${num(sy(ys[i]))}`;
      pen = true;
    });
    return d;
  };
  const legend: [string, string, boolean][] = []; // [label, colour, isPoint]
  const rawD = pathOf(train.steps, train.losses);
  if (rawD) {
    out.push(`<path d="${rawD}" fill="none" stroke="#6baed6" stroke-width="1.2" stroke-opacity="${smooth ? 0.5 : 1}"/>`);
    legend.push(['train', '#6baed6', false]);
  }
  if (smooth) {
    out.push(`<path d="${pathOf(train.steps, smooth)}" fill="none" stroke="#08519c" stroke-width="2.2"/>`);
    legend.push([`train, smoothed (EMA ${weight})`, '#08519c', false]);
  }
  const vpts = finite(val.steps, val.losses);
  if (vpts.length) {
    out.push(`<path d="${pathOf(val.steps, val.losses)}" fill="none" stroke="#e6550d" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    for (const [x, y] of vpts) out.push(`<circle cx="${num(sx(x))}" cy="${num(sy(y))}" r="3.5" fill="#e6550d"/>`);
    legend.push(['validation', '#e6550d', true]);
  }
  legend.forEach(([label, colour, isPoint], i) => {
    const y = TOP + 16 + i * 18;
    const x = W - RIGHT - 200;
    out.push(isPoint
      ? `<circle cx="${x + 11}" cy="${y}" r="3.5" fill="${colour}"/>`
      : `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${colour}" stroke-width="2.2"/>`);
    out.push(svgText(x + 28, y, label, { size: 12, middle: true }));
  });
  out.push('</svg>\n');
  return out.join('\n');
}

/** Writes `<base>.svg` and `<base>.png` for a confusion matrix. */
export function writeConfusionMatrixPlot(base: string, cm: ConfusionMatrix, opts: ConfusionPlotOptions & PngOptions = {}): Promise<FigureFiles> {
  return writeFigure(base, confusionMatrixSvg(cm, opts), opts);
}

/** Writes `<base>.svg` and `<base>.png` for a loss curve. */
export function writeLossCurvePlot(base: string, train: LossSeries, opts: LossPlotOptions & PngOptions = {}): Promise<FigureFiles> {
  return writeFigure(base, lossCurveSvg(train, opts), opts);
}

