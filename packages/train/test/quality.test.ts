// The quality knobs' host-side arithmetic, worked by hand: class-balanced rows, the warm-up–stable–decay schedule,
// the label prior and calibrated predictions, the options' checks and what the run summary names. (The loss with label
// smoothing is tested in packages/autograd/test/loss.test.ts; calibration through the model in test/e2e/quality.test.ts.)
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { balanceRows } from '../src/batching.ts';
import { lrFactor, warmupSteps, WSD_DECAY } from '../src/optim/schedule.ts';
import { labelPrior, calibratedPredictions } from '../src/evaluate.ts';
import { resolveOptions, type TrainOptions } from '../src/options.ts';
import { techniques, headline, type EvalSummary } from '../src/report.ts';
import { computeMetrics } from '../src/metrics.ts';

describe('balanceRows', () => {
  //              0  1  2  3  4  5  6  7  8  9
  const labels = [1, 1, 2, 1, 0, 2, 1, 1, 2, 0];

  it('none keeps the first n rows in file order', () => {
    expect(balanceRows(labels, 'none', 4)).toEqual([0, 1, 2, 3]);
    expect(balanceRows(labels, 'none')).toEqual([...labels.keys()]);
  });

  it('down takes the first k rows of each class from the whole split, interleaved', () => {
    // n = 9: k = min(3, rarest class 0 has 2) = 2 → class 0: 4, 9; class 1: 0, 1; class 2: 2, 5
    expect(balanceRows(labels, 'down', 9)).toEqual([4, 0, 2, 9, 1, 5]);
    // n = 3: k = 1
    expect(balanceRows(labels, 'down', 3)).toEqual([4, 0, 2]);
    expect(() => balanceRows([0, 0, 1], 'down')).toThrow(/class 2 has no train rows/);
    expect(() => balanceRows(labels, 'down', 2)).toThrow(/2 rows leave none per class/);
  });

  it('up repeats the rarer classes of the first n rows cyclically up to the largest', () => {
    // first 6 rows: class 0: [4]; class 1: [0, 1, 3]; class 2: [2, 5] → 3 rounds
    expect(balanceRows(labels, 'up', 6)).toEqual([4, 0, 2, 4, 1, 5, 4, 3, 2]);
    // a class absent from the first n rows is skipped, not an error
    expect(balanceRows(labels, 'up', 2)).toEqual([0, 1]);
  });

  it('every mode gives each present class the same number of rows (down, up)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 200 }), (ls) => {
        const counts = (idx: number[]) => [0, 1, 2].map((c) => idx.filter((i) => ls[i] === c).length);
        const up = counts(balanceRows(ls, 'up'));
        const present = up.filter((c) => c > 0);
        expect(new Set(present).size).toBe(1);
        if (new Set(ls).size === 3) expect(new Set(counts(balanceRows(ls, 'down'))).size).toBe(1);
      }),
    );
  });
});

describe("the 'wsd' schedule", () => {
  it('warms up, holds the full lr, then decays linearly to 0 over the last 20% of the steps', () => {
    const s = { name: 'wsd' as const, totalSteps: 100, warmupSteps: warmupSteps(100, 0.1) };
    expect(WSD_DECAY).toBe(0.2);
    expect(lrFactor(s, 0)).toBeCloseTo(0.1, 12); // warm-up: (s + 1) / 10
    expect(lrFactor(s, 9)).toBe(1);
    expect(lrFactor(s, 50)).toBe(1);
    expect(lrFactor(s, 80)).toBe(1); // (100 − 80) / 20
    expect(lrFactor(s, 90)).toBeCloseTo(0.5, 12);
    expect(lrFactor(s, 99)).toBeCloseTo(0.05, 12);
    expect(lrFactor({ ...s, warmupSteps: 0 }, 0)).toBe(1);
  });
});

describe('calibration', () => {
  it('labelPrior is the mean softmax over the label logits', () => {
    // row 0: softmax(0, 0, 0) = 1/3 each; row 1: softmax(ln 2, 0, 0) = (1/2, 1/4, 1/4)
    const p = labelPrior([0, 0, 0, Math.log(2), 0, 0], 3);
    expect(p[0]).toBeCloseTo((1 / 3 + 1 / 2) / 2, 12);
    expect(p[1]).toBeCloseTo((1 / 3 + 1 / 4) / 2, 12);
    expect(p.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
    expect(() => labelPrior([1, 2], 3)).toThrow(/not rows of 3/);
  });

  it('calibratedPredictions divides the prior out: a favoured class must win by more than its prior', () => {
    const scores = [2, 1.5, 0, 0, 0.2, 0];
    expect(calibratedPredictions(scores, [1 / 3, 1 / 3, 1 / 3])).toEqual([0, 1]); // a flat prior changes nothing
    // prior (0.6, 0.2, 0.2): row 0: 2 − ln 0.6 = 2.51 < 1.5 − ln 0.2 = 3.11 → class 1
    expect(calibratedPredictions(scores, [0.6, 0.2, 0.2])).toEqual([1, 1]);
    // row 1 with prior (0.2, 0.6, 0.2): 0 − ln 0.2 = 1.61 > 0.2 − ln 0.6 = 0.71 → class 0 (the first maximum on ties)
    expect(calibratedPredictions(scores, [0.2, 0.6, 0.2])).toEqual([0, 0]);
  });

  it("dividing out the model's own prior spreads a skewed classifier's answers over the classes", () => {
    // logits that always favour class 1 a little, with some signal: calibrated by their own prior, class 0 appears
    const scores: number[] = [];
    for (let i = 0; i < 30; i++) scores.push(i % 3 === 0 ? 0.5 : 0, 1, 0.3 * (i % 2));
    expect(new Set(calibratedPredictions(scores, [1 / 3, 1 / 3, 1 / 3]))).toEqual(new Set([1]));
    expect(new Set(calibratedPredictions(scores, labelPrior(scores, 3))).size).toBeGreaterThan(1);
  });
});

describe('options and the run summary', () => {
  const base = { recipe: 'quick' } as Partial<TrainOptions>;
  it('checks the knobs of a --config file', () => {
    expect(() => resolveOptions({ ...base, labelSmoothing: 1 })).toThrow(/--label-smoothing must be in \[0, 1\), got 1/);
    expect(() => resolveOptions({ ...base, balance: 'sideways' as never })).toThrow(/--balance must be one of none, down, up/);
    expect(() => resolveOptions({ ...base, calibrate: 'prior' as never })).toThrow(/--calibrate must be one of none, content-free, validation/);
    expect(() => resolveOptions({ ...base, calibrate: 'validation', evalMode: 'generate' })).toThrow(/needs first-token scores/);
    expect(resolveOptions({ ...base, balance: 'up', calibrate: 'content-free' }).balance).toBe('up');
    // the quick recipe calibrates; asking for generation alone turns that off instead of refusing the recipe
    expect(resolveOptions(base).calibrate).toBe('validation');
    expect(resolveOptions({ ...base, evalMode: 'generate' }).calibrate).toBe('none');
  });

  it('names the knobs a run used, and the calibrated score is the headline', () => {
    const o = resolveOptions({ ...base, labelSmoothing: 0.1, balance: 'down', calibrate: 'validation', rslora: true });
    expect(techniques(o)).toEqual([
      'label smoothing 0.1',
      'class-balanced rows (the first rows of each class in equal numbers)',
      "calibrated first-token scoring (the validation split's label prior divided out)",
      'rsLoRA scaling (alpha/√r)',
    ]);
    expect(techniques(resolveOptions({ recipe: 'full' }))).toEqual([]);
    expect(techniques(resolveOptions(base))).toEqual(["calibrated first-token scoring (the validation split's label prior divided out)"]); // quick calibrates
    const m = (pred: number[]) => computeMetrics([0, 1, 2], pred);
    const e: EvalSummary = { n: 3, seconds: 1, tokensPerSecond: 1, generate: { macroF1: 0.2, invalidRate: 0, metrics: m([1, 1, 1]) } };
    expect(headline(e)).toBe(e.generate!.metrics);
    e.calibrated = { method: 'validation', prior: [0.2, 0.5, 0.3], macroF1: 1, metrics: m([0, 1, 2]) };
    expect(headline(e).macroF1).toBe(1);
  });
});
