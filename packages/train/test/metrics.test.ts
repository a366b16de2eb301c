import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  confusionMatrix, confusionFromCounts, metricsFromConfusion, computeMetrics, accuracy, rowNormalised, INVALID,
} from '../src/metrics.ts';
import { LABEL_NAMES } from '../src/data.ts';

describe('confusion matrix and metrics, worked by hand', () => {
  // idx:    0  1   2  3  4  5  6  7  8
  const yTrue = [0, 0, 0, 1, 1, 2, 2, 2, 2];
  const yPred = [0, 1, -1, 1, 1, 2, 0, 2, 1];

  it('counts rows = true, cols = predicted, invalid separately', () => {
    const cm = confusionMatrix(yTrue, yPred);
    expect(cm.counts).toEqual([
      [1, 1, 0], // true negative: idx 0 -> neg, idx 1 -> neu (idx 2 invalid)
      [0, 2, 0], // true neutral: idx 3, 4 -> neu
      [1, 1, 2], // true positive: idx 6 -> neg, idx 8 -> neu, idx 5, 7 -> pos
    ]);
    expect(cm.invalid).toEqual([1, 0, 0]);
    expect(cm.labels).toEqual(LABEL_NAMES);
  });

  it('gives sklearn precision/recall/F1, macro-F1 and accuracy', () => {
    const m = computeMetrics(yTrue, yPred);
    // negative: TP 1, predicted 2 (idx 0, 6), support 3 (incl. the invalid) -> P 1/2, R 1/3, F1 = (2·1/2·1/3)/(1/2+1/3) = 2/5
    // neutral:  TP 2, predicted 4 (idx 1, 3, 4, 8), support 2 -> P 1/2, R 1, F1 = 1/1.5 = 2/3
    // positive: TP 2, predicted 2, support 4 -> P 1, R 1/2, F1 = 2/3
    const expected = [[1 / 2, 1 / 3, 2 / 5, 3], [1 / 2, 1, 2 / 3, 2], [1, 1 / 2, 2 / 3, 4]];
    m.perClass.forEach((c, i) => {
      expect(c.label).toBe(LABEL_NAMES[i]);
      expect(c.precision).toBeCloseTo(expected[i][0], 12);
      expect(c.recall).toBeCloseTo(expected[i][1], 12);
      expect(c.f1).toBeCloseTo(expected[i][2], 12);
      expect(c.support).toBe(expected[i][3]);
    });
    expect(m.macroF1).toBeCloseTo((2 / 5 + 2 / 3 + 2 / 3) / 3, 12); // = 26/45
    expect(m.macroPrecision).toBeCloseTo((1 / 2 + 1 / 2 + 1) / 3, 12);
    expect(m.macroRecall).toBeCloseTo((1 / 3 + 1 + 1 / 2) / 3, 12);
    expect(m.accuracy).toBeCloseTo(5 / 9, 12); // 1 + 2 + 2 correct of 9; the invalid one is wrong
    expect(accuracy(yTrue, yPred)).toBeCloseTo(5 / 9, 12);
    expect(m.total).toBe(9);
    expect(m.invalid).toBe(1);
  });

  it('a class never predicted has precision 0 and F1 0 (zero_division = 0)', () => {
    // Majority-answer collapse: everything predicted negative.
    const m = computeMetrics([0, 1, 2, 2], [0, 0, 0, 0]);
    // negative: P 1/4, R 1, F1 = (2·1/4)/(5/4) = 2/5; neutral and positive: never predicted -> 0
    expect(m.perClass.map((c) => c.precision)).toEqual([1 / 4, 0, 0]);
    expect(m.perClass.map((c) => c.f1)[0]).toBeCloseTo(2 / 5, 12);
    expect(m.perClass.map((c) => c.f1).slice(1)).toEqual([0, 0]);
    expect(m.macroF1).toBeCloseTo(2 / 15, 12);
    expect(m.accuracy).toBe(1 / 4);
    // All invalid: nothing right, no NaN anywhere.
    const none = computeMetrics([0, 1, 2], [INVALID, INVALID, INVALID]);
    expect([none.macroF1, none.accuracy, ...none.perClass.map((c) => c.precision)]).toEqual([0, 0, 0, 0, 0]);
    expect(computeMetrics([], []).accuracy).toBe(0);
  });

  it('row-normalises including the invalid column', () => {
    const { shares, invalidShares } = rowNormalised(confusionMatrix(yTrue, yPred));
    expect(shares[0]).toEqual([1 / 3, 1 / 3, 0]);
    expect(invalidShares).toEqual([1 / 3, 0, 0]);
    expect(shares[2]).toEqual([1 / 4, 1 / 4, 1 / 2]);
  });

  it('rejects mismatched lengths and out-of-range labels with one line', () => {
    expect(() => confusionMatrix([0, 1], [0])).toThrow(/2 true labels but 1 predictions/);
    expect(() => confusionMatrix([3], [0])).toThrow(/true label 3 at index 0 is outside 0..2/);
    expect(() => confusionMatrix([0], [-2])).toThrow(/prediction -2 at index 0/);
    expect(() => confusionMatrix([0], [0.5])).toThrow(/prediction 0.5/);
    expect(() => confusionFromCounts([[1, 2], [3, 4]])).toThrow(/3×3/);
  });
});

describe('external oracle: the Hugging Face PEFT reference run', () => {
  it('its confusion matrix gives macro-F1 0.527 (shared/models/tweet-mistral-tiny/README.md)', () => {
    const m = metricsFromConfusion(confusionFromCounts([[1308, 1954, 710], [698, 4114, 1125], [152, 781, 1442]]));
    // F1 = 2·TP / (predicted + support):
    //   negative 2·1308 / (2158 + 3972) = 0.42675, neutral 2·4114 / (6849 + 5937) = 0.64352,
    //   positive 2·1442 / (3277 + 2375) = 0.51026; mean 0.52684
    expect(m.macroF1.toFixed(3)).toBe('0.527');
    expect(m.total).toBe(12284); // every TEST tweet
    expect(m.accuracy).toBeCloseTo((1308 + 4114 + 1442) / 12284, 12);
  });
});

/** Independent formulation: count TP/FP/FN per class straight from the pairs; F1 = 2TP / (2TP + FP + FN). */
function bruteForce(yTrue: number[], yPred: number[]) {
  const per = [0, 1, 2].map((c) => {
    let tp = 0, fp = 0, fn = 0;
    for (let i = 0; i < yTrue.length; i++) {
      if (yTrue[i] === c && yPred[i] === c) tp++;
      else if (yPred[i] === c) fp++;
      else if (yTrue[i] === c) fn++;
    }
    return {
      precision: tp + fp ? tp / (tp + fp) : 0,
      recall: tp + fn ? tp / (tp + fn) : 0,
      f1: 2 * tp + fp + fn ? (2 * tp) / (2 * tp + fp + fn) : 0,
      support: tp + fn,
    };
  });
  const correct = yTrue.filter((t, i) => t === yPred[i]).length;
  return { per, macroF1: per.reduce((a, p) => a + p.f1, 0) / 3, accuracy: yTrue.length ? correct / yTrue.length : 0 };
}

describe('property: matches the brute-force formulation', () => {
  it('for random labels and predictions (including invalid ones)', () => {
    const pair = fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: -1, max: 2 }));
    fc.assert(fc.property(fc.array(pair, { maxLength: 60 }), (pairs) => {
      const yTrue = pairs.map((p) => p[0]);
      const yPred = pairs.map((p) => p[1]);
      const m = computeMetrics(yTrue, yPred);
      const b = bruteForce(yTrue, yPred);
      expect(m.macroF1).toBeCloseTo(b.macroF1, 12);
      expect(m.accuracy).toBeCloseTo(b.accuracy, 12);
      m.perClass.forEach((c, i) => {
        expect(c.precision).toBeCloseTo(b.per[i].precision, 12);
        expect(c.recall).toBeCloseTo(b.per[i].recall, 12);
        expect(c.f1).toBeCloseTo(b.per[i].f1, 12);
        expect(c.support).toBe(b.per[i].support);
      });
      // Every row lands in exactly one cell.
      const cells = m.matrix.counts.flat().reduce((a, v) => a + v, 0) + m.invalid;
      expect(cells).toBe(pairs.length);
    }), { numRuns: 500 });
  });
});
