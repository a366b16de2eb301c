// Evaluation results for a terminal: an aligned confusion matrix with counts and row percentages, and a one-line
// metrics summary. Colour (ANSI escapes) only when writing to a TTY and NO_COLOR is unset (https://no-color.org).

import { metricsFromConfusion, rowNormalised, type ConfusionMatrix, type Metrics } from './metrics.ts';

/** Anything with an optional isTTY flag: process.stdout, process.stderr, a test double. */
export interface MaybeTty {
  isTTY?: boolean;
}

/**
 * Whether to colour output for `stream`: only on a TTY, and not when NO_COLOR is set to a non-empty value or
 * TERM is 'dumb'.
 */
export function useColor(stream: MaybeTty = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!stream.isTTY) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return env.TERM !== 'dumb';
}

const ANSI = { reset: '\x1b[0m', bold: '\x1b[1m', dim: '\x1b[2m', red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m' };
export type Style = keyof typeof ANSI;

/** Wraps `s` in ANSI styles when `on`; otherwise returns it unchanged. */
export function paint(s: string, on: boolean, ...styles: Style[]): string {
  return on && styles.length ? styles.map((st) => ANSI[st]).join('') + s + ANSI.reset : s;
}

/** Removes ANSI escape sequences (for measuring and for tests). */
export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

export interface MatrixFormatOptions {
  /** Colour the output; default false (callers decide with useColor(stream)). */
  color?: boolean;
  /** Show the "invalid" column even when no prediction was invalid; default: only when some were. */
  showInvalid?: boolean;
}

/**
 * The confusion matrix as aligned text, rows = true class, columns = predicted class; each cell is
 * "count pct%" where pct is the share of the true class (row). A final column gives the row total (support).
 *
 *                       predicted
 *   true          negative      neutral     positive   total
 *   negative   1308  32.9%  1954  49.2%   710  17.9%    3972
 */
export function formatConfusionMatrix(cm: ConfusionMatrix, opts: MatrixFormatOptions = {}): string {
  const color = opts.color ?? false;
  const k = cm.labels.length;
  const anyInvalid = cm.invalid.some((v) => v > 0);
  const withInvalid = opts.showInvalid ?? anyInvalid;
  const { shares, invalidShares } = rowNormalised(cm);
  const headers = [...cm.labels, ...(withInvalid ? ['invalid'] : [])];
  // cells[t][p] = [count, percentage] as strings; the invalid column last.
  const cells = cm.counts.map((row, t) => {
    const cs = row.map((v, p) => [String(v), `${(100 * shares[t][p]).toFixed(1)}%`]);
    if (withInvalid) cs.push([String(cm.invalid[t]), `${(100 * invalidShares[t]).toFixed(1)}%`]);
    return cs;
  });
  const totals = cm.counts.map((row, t) => String(row.reduce((a, b) => a + b, 0) + cm.invalid[t]));

  const labelW = Math.max(4, ...cm.labels.map((l) => l.length));
  const countW = headers.map((_, p) => Math.max(...cells.map((r) => r[p][0].length)));
  const pctW = 6; // "100.0%"
  const colW = headers.map((h, p) => Math.max(h.length, countW[p] + 1 + pctW));
  const totalW = Math.max(5, ...totals.map((s) => s.length));
  const gap = '  ';

  const lines: string[] = [];
  const gridW = colW.reduce((a, w) => a + w + gap.length, 0);
  lines.push(' '.repeat(labelW + gap.length) + paint('predicted'.padStart(Math.floor((gridW + 'predicted'.length) / 2)), color, 'dim'));
  lines.push(
    paint('true'.padEnd(labelW), color, 'dim') + gap +
    headers.map((h, p) => paint(h.padStart(colW[p]), color, 'bold')).join(gap) + gap +
    paint('total'.padStart(totalW), color, 'dim'),
  );
  for (let t = 0; t < k; t++) {
    const row = cells[t].map(([count, pct], p) => {
      const text = `${count.padStart(countW[p])} ${pct.padStart(pctW)}`.padStart(colW[p]);
      // Green on the diagonal (right answers), red for invalid answers.
      if (p === t) return paint(text, color, 'green', 'bold');
      if (p >= k && cm.invalid[t] > 0) return paint(text, color, 'red');
      return text;
    });
    lines.push(paint(cm.labels[t].padEnd(labelW), color, 'bold') + gap + row.join(gap) + gap + totals[t].padStart(totalW));
  }
  return lines.join('\n');
}

/**
 * One line: macro-F1, accuracy, per-class F1, row count and invalid answers, e.g.
 * `macro-F1 0.527 | accuracy 0.559 | F1 negative 0.427 neutral 0.644 positive 0.510 | n 12284, invalid 0`
 */
export function formatMetricsSummary(m: Metrics, opts: { color?: boolean } = {}): string {
  const color = opts.color ?? false;
  const perClass = m.perClass.map((c) => `${c.label} ${c.f1.toFixed(3)}`).join(' ');
  const invalid = paint(`invalid ${m.invalid}`, color && m.invalid > 0, 'red');
  return [
    paint(`macro-F1 ${m.macroF1.toFixed(3)}`, color, 'bold'),
    `accuracy ${m.accuracy.toFixed(3)}`,
    `F1 ${perClass}`,
    `n ${m.total}, ${invalid}`,
  ].join(' | ');
}

/** The summary line, a blank line and the matrix, coloured for `stream` when appropriate. */
export function formatEvaluation(cm: ConfusionMatrix, stream: MaybeTty = process.stdout, env: NodeJS.ProcessEnv = process.env): string {
  const color = useColor(stream, env);
  return `${formatMetricsSummary(metricsFromConfusion(cm), { color })}\n\n${formatConfusionMatrix(cm, { color })}\n`;
}
