import { describe, it, expect } from 'vitest';
import {
  formatConfusionMatrix, formatMetricsSummary, formatEvaluation, useColor, stripAnsi, paint,
} from '../src/terminal.ts';
import { Progress, formatDuration, formatRate, type ProgressStream } from '../src/progress.ts';
import { confusionFromCounts, confusionMatrix, metricsFromConfusion } from '../src/metrics.ts';

// The Hugging Face reference run (shared/models/tweet-mistral-tiny/README.md).
const HF = confusionFromCounts([[1308, 1954, 710], [698, 4114, 1125], [152, 781, 1442]]);
const ESC = '\x1b';

describe('terminal confusion matrix', () => {
  it('has aligned columns, row labels, counts, row % and totals', () => {
    const text = formatConfusionMatrix(HF);
    expect(text).not.toContain(ESC);
    const lines = text.split('\n');
    expect(lines[0].trim()).toBe('predicted');
    expect(lines[1].split(/\s+/)).toEqual(['true', 'negative', 'neutral', 'positive', 'total']);
    // Header and rows have the same width, and every column ends at the same place.
    const body = lines.slice(1);
    expect(new Set(body.map((l) => l.length)).size).toBe(1);
    // Where each right-aligned number column ends (the row label, left-aligned, is skipped).
    const ends = (l: string) => [...l.matchAll(/\S+(?=\s|$)/g)].slice(1).map((m) => m.index! + m[0].length);
    expect(ends(lines[2])).toEqual(ends(lines[3]));
    expect(ends(lines[3])).toEqual(ends(lines[4]));
    // Row 'negative': 1308 of 3972 true negatives = 32.9%, 1954/3972 = 49.2%, 710/3972 = 17.9%.
    expect(lines[2].split(/\s+/)).toEqual(['negative', '1308', '32.9%', '1954', '49.2%', '710', '17.9%', '3972']);
    expect(lines[4].split(/\s+/)).toEqual(['positive', '152', '6.4%', '781', '32.9%', '1442', '60.7%', '2375']);
  });

  it('shows the invalid column when some predictions were invalid', () => {
    const text = formatConfusionMatrix(confusionMatrix([0, 0, 1, 2], [0, -1, 1, 2]));
    const lines = text.split('\n');
    expect(lines[1].split(/\s+/)).toEqual(['true', 'negative', 'neutral', 'positive', 'invalid', 'total']);
    expect(lines[2].split(/\s+/)).toEqual(['negative', '1', '50.0%', '0', '0.0%', '0', '0.0%', '1', '50.0%', '2']);
  });

  it('colours only when asked, and the colours strip back to the plain text', () => {
    const plain = formatConfusionMatrix(HF);
    const coloured = formatConfusionMatrix(HF, { color: true });
    expect(coloured).toContain(`${ESC}[32m`); // green diagonal
    expect(stripAnsi(coloured)).toBe(plain);
    expect(paint('x', false, 'red')).toBe('x');
  });

  it('uses colour only on a TTY with NO_COLOR unset or empty', () => {
    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: true }, { NO_COLOR: '' })).toBe(true); // the spec: empty means unset
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColor({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(useColor({ isTTY: false }, {})).toBe(false);
    expect(useColor({}, {})).toBe(false);
    expect(formatEvaluation(HF, { isTTY: true }, { NO_COLOR: 'yes' })).not.toContain(ESC);
    expect(formatEvaluation(HF, { isTTY: true }, {})).toContain(ESC);
  });
});

describe('metrics summary line', () => {
  it('gives macro-F1, accuracy and per-class F1 on one line', () => {
    const line = formatMetricsSummary(metricsFromConfusion(HF));
    expect(line).not.toContain('\n');
    // Hand arithmetic: F1 = 2·TP / (predicted + support); accuracy = (1308 + 4114 + 1442) / 12284 = 0.5588
    expect(line).toContain('macro-F1 0.527');
    expect(line).toContain('accuracy 0.559');
    expect(line).toContain('negative 0.427'); // 2616 / 6130
    expect(line).toContain('neutral 0.644'); // 8228 / 12786
    expect(line).toContain('positive 0.510'); // 2884 / 5652
    expect(line).toContain('n 12284, invalid 0');
  });
});

/** A stream double that records writes. */
function sink(isTTY: boolean, columns = 100): ProgressStream & { out: string[] } {
  const out: string[] = [];
  return { out, isTTY, columns, write: (s: string) => out.push(s) };
}

/** A fake millisecond clock. */
function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('progress reporter', () => {
  it('formats durations and rates', () => {
    expect([formatDuration(42), formatDuration(185), formatDuration(3720), formatDuration(NaN)]).toEqual(['42s', '3m05s', '1h02m', '?']);
    expect([formatRate(0.1234), formatRate(12.34), formatRate(4567), formatRate(2.5e6)]).toEqual(['0.123', '12.3', '4.57k', '2.50M']);
  });

  it('plain mode prints at the first tick, then every intervalMs, then at done', () => {
    const s = sink(false);
    const c = clock();
    const p = new Progress({ total: 20, label: 'train', stream: s, now: c.now, intervalMs: 5000, percentStep: 0 });
    for (let i = 0; i < 20; i++) { c.advance(1000); p.tick(); }
    // Lines at t = 1 s (first), 6 s, 11 s, 16 s.
    expect(s.out.length).toBe(4);
    expect(s.out.map((l) => /\d+\/20/.exec(l)![0])).toEqual(['1/20', '6/20', '11/20', '16/20']);
    p.done({ loss: 0.5 });
    expect(s.out.length).toBe(5);
    expect(s.out[4]).toBe('train done, 20/20 in 20s, 1.00 it/s, loss 0.5000\n');
    expect(s.out.join('')).not.toContain('\r');
  });

  it('plain mode also prints at each percentStep', () => {
    const s = sink(false);
    const c = clock();
    const p = new Progress({ total: 100, stream: s, now: c.now, intervalMs: Infinity, percentStep: 25 });
    for (let i = 0; i < 100; i++) { c.advance(10); p.tick(); }
    expect(s.out.map((l) => /\d+\/100/.exec(l)![0])).toEqual(['1/100', '25/100', '50/100', '75/100', '100/100']);
  });

  it('reports %, ETA, it/s and tokens/s from the clock', () => {
    const c = clock();
    const p = new Progress({ total: 100, stream: sink(false), now: c.now });
    for (let i = 0; i < 20; i++) { c.advance(500); p.tick(1, { tokens: 100, loss: 1.25 }); }
    // 20 iterations in 10 s: 2 it/s, 200 tokens/s; 80 left -> 40 s.
    const line = p.status();
    expect(line).toContain(' 20%');
    expect(line).toContain('20/100');
    expect(line).toContain('10s eta 40s');
    expect(line).toContain('2.00 it/s');
    expect(line).toContain('200 tok/s');
    expect(line).toContain('loss 1.2500');
  });

  it('measures rates over a recent window, so a slow first step stops skewing the ETA', () => {
    const c = clock();
    const p = new Progress({ total: 1000, stream: sink(false), now: c.now, windowMs: 30_000 });
    c.advance(60_000); p.tick(); // warm-up: 60 s for the first step
    for (let i = 0; i < 100; i++) { c.advance(1000); p.tick(); }
    // Since the start it is 101 / 160 s = 0.63 it/s; the window sees 1 it/s.
    expect(p.rates().perSec).toBeCloseTo(1, 1);
  });

  it('a resumed loop counts its earlier iterations toward % and the ETA, not toward the rates', () => {
    const s = sink(false);
    const c = clock();
    const p = new Progress({ total: 100, stream: s, now: c.now, initial: 60 });
    for (let i = 0; i < 10; i++) { c.advance(2000); p.tick(); }
    // 10 iterations in 20 s since the resume: 0.5 it/s; 30 left -> 60 s.
    const line = p.status();
    expect(line).toContain('70/100');
    expect(line).toContain(' 70%');
    expect(line).toContain('0.500 it/s');
    expect(line).toContain('eta 1m00s');
    p.done();
    expect(s.out[s.out.length - 1]).toBe('done, 70/100 in 20s, 0.500 it/s\n');
    expect(() => new Progress({ total: 10, initial: 11 })).toThrow(/initial must be an integer in \[0, 10\], got 11/);
  });

  it('TTY mode redraws one line in place, fitted to the width and throttled', () => {
    const s = sink(true, 60);
    const c = clock();
    const p = new Progress({ total: 50, label: 'eval', stream: s, now: c.now, redrawMs: 100 });
    for (let i = 0; i < 50; i++) { c.advance(10); p.tick(1, { tokens: 30 }); }
    // 500 ms of ticks at one redraw per 100 ms: the first tick and then every 10th.
    expect(s.out.length).toBe(5);
    for (const w of s.out) {
      expect(w.startsWith('\r')).toBe(true);
      expect(w.endsWith(`${ESC}[K`)).toBe(true);
      expect(w.slice(1, -3).length).toBeLessThanOrEqual(59);
      expect(w).not.toContain('\n');
    }
    expect(s.out[1]).toContain('█');
    // Too narrow for a bar: the numbers stay, the bar goes.
    const narrow = sink(true, 50);
    new Progress({ total: 10, stream: narrow, now: c.now }).tick(1, { loss: 1 });
    expect(narrow.out[0]).not.toContain('|');
    expect(narrow.out[0]).toContain('1/10');
    p.done();
    expect(s.out[5].endsWith('\n')).toBe(true);
    expect(s.out[5]).toContain('eval done, 50/50');
    p.done(); // idempotent
    expect(s.out.length).toBe(6);
    expect(() => p.tick()).toThrow(/tick\(\) after done\(\)/);
  });

  it('rejects a bad total or tick count', () => {
    expect(() => new Progress({ total: 0, stream: sink(false) })).toThrow(/positive integer, got 0/);
    expect(() => new Progress({ total: 2.5, stream: sink(false) })).toThrow(/positive integer/);
    expect(() => new Progress({ total: 2, stream: sink(false) }).tick(-1)).toThrow(/non-negative/);
  });
});
