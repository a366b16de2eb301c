// Classification metrics for the sentiment evaluation: confusion matrix, accuracy, per-class precision/recall/F1,
// macro-F1 — with scikit-learn's semantics so numbers compare with the Hugging Face reference runs.
//
// A generated answer that is not one of the label words is an "invalid" prediction, encoded as -1. It counts as
// wrong: it lowers accuracy and the recall of its true class, but it is nobody's false positive (sklearn does the
// same when -1 is left out of `labels=[0, 1, 2]`).

import { LABEL_NAMES } from './labels.ts';

/** The encoded prediction for an answer that is not a label word. */
export const INVALID = -1;

/** counts[t][p]: how many rows of true class t were predicted as class p (rows = true, cols = predicted). */
export interface ConfusionMatrix {
  labels: readonly string[];
  counts: number[][];
  /** invalid[t]: rows of true class t whose prediction was INVALID (the optional extra column). */
  invalid: number[];
}

/** Builds the K×K matrix (+ invalid column) from parallel arrays of true labels and predictions. */
export function confusionMatrix(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  labels: readonly string[] = LABEL_NAMES,
): ConfusionMatrix {
  const k = labels.length;
  if (yTrue.length !== yPred.length) throw new Error(`confusionMatrix: ${yTrue.length} true labels but ${yPred.length} predictions`);
  const counts = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const invalid = new Array<number>(k).fill(0);
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i];
    const p = yPred[i];
    if (!Number.isInteger(t) || t < 0 || t >= k) throw new Error(`confusionMatrix: true label ${t} at index ${i} is outside 0..${k - 1}`);
    if (p === INVALID) invalid[t]++;
    else if (Number.isInteger(p) && p >= 0 && p < k) counts[t][p]++;
    else throw new Error(`confusionMatrix: prediction ${p} at index ${i} is neither 0..${k - 1} nor ${INVALID} (invalid)`);
  }
  return { labels, counts, invalid };
}

/** Wraps a matrix given as plain rows (e.g. from a report) after checking its shape; `invalid` defaults to zeros. */
export function confusionFromCounts(counts: number[][], labels: readonly string[] = LABEL_NAMES, invalid?: number[]): ConfusionMatrix {
  const k = labels.length;
  const ok = (v: number) => Number.isInteger(v) && v >= 0;
  if (counts.length !== k || counts.some((r) => r.length !== k || !r.every(ok))) {
    throw new Error(`confusion counts must be a ${k}×${k} matrix of non-negative integers`);
  }
  if (invalid && (invalid.length !== k || !invalid.every(ok))) throw new Error(`invalid counts must be ${k} non-negative integers`);
  return { labels, counts: counts.map((r) => [...r]), invalid: invalid ? [...invalid] : new Array<number>(k).fill(0) };
}

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Rows whose true class is this one (including invalid predictions). */
  support: number;
  /** Rows predicted as this class. */
  predicted: number;
}

export interface Metrics {
  accuracy: number;
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  perClass: ClassMetrics[];
  /** All evaluated rows. */
  total: number;
  /** Rows with an invalid prediction. */
  invalid: number;
  matrix: ConfusionMatrix;
}

/** a / b, or 0 when b is 0 (sklearn's zero_division=0: a class never predicted has precision 0). */
function safeDiv(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

/** Accuracy, per-class and macro precision/recall/F1 from a confusion matrix. */
export function metricsFromConfusion(cm: ConfusionMatrix): Metrics {
  const k = cm.labels.length;
  const perClass: ClassMetrics[] = [];
  let correct = 0;
  let total = 0;
  for (let c = 0; c < k; c++) {
    const tp = cm.counts[c][c];
    const support = cm.counts[c].reduce((a, b) => a + b, 0) + cm.invalid[c]; // row sum
    let predicted = 0; // column sum
    for (let t = 0; t < k; t++) predicted += cm.counts[t][c];
    const precision = safeDiv(tp, predicted);
    const recall = safeDiv(tp, support);
    const f1 = safeDiv(2 * precision * recall, precision + recall);
    perClass.push({ label: cm.labels[c], precision, recall, f1, support, predicted });
    correct += tp;
    total += support;
  }
  const mean = (f: (m: ClassMetrics) => number) => perClass.reduce((a, m) => a + f(m), 0) / k;
  return {
    accuracy: safeDiv(correct, total),
    macroPrecision: mean((m) => m.precision),
    macroRecall: mean((m) => m.recall),
    macroF1: mean((m) => m.f1),
    perClass,
    total,
    invalid: cm.invalid.reduce((a, b) => a + b, 0),
    matrix: cm,
  };
}

/** Everything at once from true labels and predictions (-1 = invalid answer). */
export function computeMetrics(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, labels: readonly string[] = LABEL_NAMES): Metrics {
  return metricsFromConfusion(confusionMatrix(yTrue, yPred, labels));
}

/** Fraction of rows predicted correctly (invalid predictions are wrong). */
export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  if (yTrue.length !== yPred.length) throw new Error(`accuracy: ${yTrue.length} true labels but ${yPred.length} predictions`);
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++;
  return safeDiv(correct, yTrue.length);
}

/** Row-normalised matrix: share of each true class going to each prediction (invalid column last). */
export function rowNormalised(cm: ConfusionMatrix): { shares: number[][]; invalidShares: number[] } {
  const shares: number[][] = [];
  const invalidShares: number[] = [];
  cm.counts.forEach((row, t) => {
    const n = row.reduce((a, b) => a + b, 0) + cm.invalid[t];
    shares.push(row.map((v) => safeDiv(v, n)));
    invalidShares.push(safeDiv(cm.invalid[t], n));
  });
  return { shares, invalidShares };
}
