import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadSplit, detectLayout, parseLabel, LABEL_NAMES, labelCounts, stratifiedSubset, proportionalQuotas, shuffleDataset,
  type Dataset,
} from '../src/data.ts';
import { parseCsv, parseCsvObjects } from '../src/csv.ts';
import { mulberry32, permutation, sampleIndices, shuffleInPlace } from '../src/rng.ts';

// packages/train/test/data.test.ts -> /work/main -> ../shared
const SHARED = path.resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const TWEETS = path.join(SHARED, 'data/tweet_eval/sentiment');

let tmp: string;
beforeAll(() => { tmp = mkdtempSync(path.join(tmpdir(), 'dawngrad-data-')); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fresh directory under tmp with the given files. */
let dirCount = 0;
function dirWith(files: Record<string, string | Buffer>): string {
  const d = path.join(tmp, `d${dirCount++}`);
  mkdirSync(d);
  for (const [name, body] of Object.entries(files)) writeFileSync(path.join(d, name), body);
  return d;
}

/** Runs `fn`, expects it to reject with a one-line message matching every pattern. */
async function expectError(fn: () => Promise<unknown> | unknown, ...patterns: (string | RegExp)[]): Promise<void> {
  let msg: string | undefined;
  try { await fn(); } catch (e) { msg = (e as Error).message; }
  expect(msg, 'expected an error').toBeDefined();
  expect(msg).not.toContain('\n');
  for (const p of patterns) expect(msg).toMatch(p);
}

describe('TweetEval parquet (shared data)', () => {
  it('reads the documented row counts with labels in 0..2', async () => {
    for (const [split, n] of [['train', 45615], ['validation', 2000], ['test', 12284]] as const) {
      const ds = await loadSplit(TWEETS, split);
      expect(ds.texts.length).toBe(n);
      expect(ds.labels.length).toBe(n);
      expect(ds.labels.every((l) => l === 0 || l === 1 || l === 2)).toBe(true);
      expect(ds.texts.every((t) => typeof t === 'string' && t.length > 0)).toBe(true);
      // Every class occurs (a decoding bug that maps everything to one value would fail here).
      expect(labelCounts(ds.labels).every((c) => c > 0)).toBe(true);
    }
  });

  it('maps val <-> validation, detects the layout, and names missing columns', async () => {
    const val = await loadSplit(TWEETS, 'val');
    const validation = await loadSplit(TWEETS, 'validation');
    expect(val).toEqual(validation);
    expect(detectLayout(TWEETS, 'test').format).toBe('parquet');
    await expectError(() => loadSplit(TWEETS, 'test', { labelField: 'sentiment' }), 'test.parquet', "missing column 'sentiment'");
  });

  it('limit keeps the first rows; sample and shuffle are seeded and keep pairs aligned', async () => {
    const full = await loadSplit(TWEETS, 'validation');
    const first = await loadSplit(TWEETS, 'validation', { limit: 50 });
    expect(first.texts).toEqual(full.texts.slice(0, 50));
    expect(first.labels).toEqual(full.labels.slice(0, 50));

    const s1 = await loadSplit(TWEETS, 'validation', { sample: 100, seed: 7 });
    const s1again = await loadSplit(TWEETS, 'validation', { sample: 100, seed: 7 });
    const s2 = await loadSplit(TWEETS, 'validation', { sample: 100, seed: 8 });
    expect(s1).toEqual(s1again);
    expect(s1.texts).not.toEqual(s2.texts);
    // A sample is a subset in file order, with each text keeping its own label.
    const pos = new Map(full.texts.map((t, i) => [t, i]));
    const idx = s1.texts.map((t) => pos.get(t)!);
    expect(idx.every((i) => i !== undefined)).toBe(true);
    expect([...idx].sort((a, b) => a - b)).toEqual(idx);
    idx.forEach((i, j) => expect(s1.labels[j]).toBe(full.labels[i]));

    const sh = await loadSplit(TWEETS, 'validation', { shuffle: true, seed: 3 });
    expect(sh.texts).not.toEqual(full.texts);
    expect([...sh.texts].sort()).toEqual([...full.texts].sort());
    sh.texts.forEach((t, j) => expect(sh.labels[j]).toBe(full.labels[pos.get(t)!]));
  });

  it('rejects corrupt and truncated parquet with the file name', async () => {
    const bytes = readFileSync(path.join(TWEETS, 'validation.parquet'));
    const garbage = dirWith({ 'train.parquet': Buffer.from('this is not parquet at all, just text') });
    await expectError(() => loadSplit(garbage, 'train'), 'train.parquet', /parquet/);
    const truncated = dirWith({ 'train.parquet': bytes.subarray(0, Math.floor(bytes.length / 2)) });
    await expectError(() => loadSplit(truncated, 'train'), 'train.parquet');
    // Right footer, damaged data pages: the reader must fail (or, if it decodes, the labels must still be valid).
    const damaged = Buffer.from(bytes);
    for (let i = 200; i < damaged.length - 2000; i += 97) damaged[i] ^= 0x5a;
    const dir = dirWith({ 'train.parquet': damaged });
    try {
      const ds = await loadSplit(dir, 'train');
      expect(ds.labels.every((l) => l >= 0 && l <= 2)).toBe(true);
    } catch (e) {
      expect((e as Error).message).toContain('train.parquet');
    }
  });
});

describe('cardiffnlp text layout', () => {
  const texts = ['I love it', 'meh, whatever', 'worst "day" ever', 'ok'];
  it('reads {split}_text.txt / {split}_labels.txt with mapping.txt, and val for validation', async () => {
    const d = dirWith({
      'val_text.txt': texts.join('\n') + '\n',
      'val_labels.txt': '2\n1\n0\n1\n',
      'mapping.txt': '0\tnegative\n1\tneutral\n2\tpositive\n',
    });
    expect(detectLayout(d, 'validation').format).toBe('cardiff');
    const ds = await loadSplit(d, 'validation');
    expect(ds).toEqual({ texts, labels: [2, 1, 0, 1] });
  });

  it('remaps ids through mapping.txt and handles CRLF', async () => {
    // This file's id 0 means positive: our id for positive is 2.
    const d = dirWith({
      'train_text.txt': 'great\r\nawful\r\n',
      'train_labels.txt': '0\r\n2\r\n',
      'mapping.txt': '0\tpositive\n1\tneutral\n2\tnegative\n',
    });
    expect(await loadSplit(d, 'train')).toEqual({ texts: ['great', 'awful'], labels: [2, 0] });
  });

  it('reports count mismatches, labels out of range and a missing labels file', async () => {
    await expectError(
      () => loadSplit(dirWith({ 'test_text.txt': 'a\nb\nc\n', 'test_labels.txt': '0\n1\n' }), 'test'),
      'test_labels.txt', '2 labels', '3 texts');
    await expectError(
      () => loadSplit(dirWith({ 'test_text.txt': 'a\nb\n', 'test_labels.txt': '0\n3\n' }), 'test'),
      'test_labels.txt line 2', 'outside 0..2');
    await expectError(() => loadSplit(dirWith({ 'test_text.txt': 'a\n' }), 'test'), 'test_labels.txt', 'missing labels file');
    await expectError(
      () => loadSplit(dirWith({ 'test_text.txt': 'a\n', 'test_labels.txt': '7\n', 'mapping.txt': '0\tnegative\n' }), 'test'),
      'line 1', 'not in mapping.txt');
  });
});

describe('generic JSONL and CSV', () => {
  it('reads JSONL with int or word labels and custom field names', async () => {
    const d = dirWith({
      'train.jsonl': [
        JSON.stringify({ tweet: 'yay', sentiment: 'positive' }),
        '',
        JSON.stringify({ tweet: 'boo', sentiment: 0 }),
        JSON.stringify({ tweet: 'hm', sentiment: 'Neutral' }),
      ].join('\n'),
    });
    const ds = await loadSplit(d, 'train', { textField: 'tweet', labelField: 'sentiment' });
    expect(ds).toEqual({ texts: ['yay', 'boo', 'hm'], labels: [2, 0, 1] });
    await expectError(() => loadSplit(d, 'train'), 'train.jsonl line 1', "missing field 'text'");
  });

  it('names the JSONL line of bad JSON, unknown words and bad labels', async () => {
    await expectError(() => loadSplit(dirWith({ 'x.jsonl': '{"text":"a","label":1}\n{oops\n' }), 'x'), 'x.jsonl line 2', 'invalid JSON');
    await expectError(() => loadSplit(dirWith({ 'x.jsonl': '{"text":"a","label":"happy"}\n' }), 'x'), 'x.jsonl line 1', 'unknown label "happy"');
    await expectError(() => loadSplit(dirWith({ 'x.jsonl': '{"text":"a","label":-1}\n' }), 'x'), 'outside 0..2');
    await expectError(() => loadSplit(dirWith({ 'x.jsonl': '{"text":"a","label":1.5}\n' }), 'x'), 'label 1.5 is not an integer');
    await expectError(() => loadSplit(dirWith({ 'x.jsonl': '{"text":7,"label":1}\n' }), 'x'), 'text is number');
  });

  it('reads CSV with quoted commas, quotes and newlines', async () => {
    const d = dirWith({ 'test.csv': 'id,text,label\n1,"hello, world",positive\n2,"say ""hi""\nnow",1\n3,plain,0\n' });
    const ds = await loadSplit(d, 'test');
    expect(ds).toEqual({ texts: ['hello, world', 'say "hi"\nnow', 'plain'], labels: [2, 1, 0] });
    await expectError(() => loadSplit(d, 'test', { labelField: 'y' }), 'test.csv', "missing column 'y'");
  });

  it('reports a missing split (listing what it looked for), an empty split and bad options', async () => {
    const d = dirWith({ 'train.csv': 'text,label\n' });
    await expectError(() => loadSplit(d, 'test'), "no split 'test'", 'test.parquet', 'test_text.txt', 'test.jsonl', 'test.csv');
    await expectError(() => loadSplit(d, 'train'), 'train.csv', 'empty');
    await expectError(() => loadSplit(path.join(tmp, 'nope'), 'train'), 'does not exist');
    await expectError(() => loadSplit(d, '../train'), 'invalid split name');
    await expectError(() => loadSplit(d, 'train', { limit: 0 }), 'limit must be a positive integer');
    await expectError(() => loadSplit(d, 'train', { limit: 1, sample: 1 }), 'not both');
  });

  it('parseLabel accepts ints, bigints, numeric strings and words, nothing else', async () => {
    expect([0, 1n, '2', ' negative ', 'POSITIVE'].map((v) => parseLabel(v, 'x'))).toEqual([0, 1, 2, 0, 2]);
    expect(LABEL_NAMES.map((w) => parseLabel(w, 'x'))).toEqual([0, 1, 2]);
    for (const bad of [3, 3n, '-1', 'pos', null, true]) await expectError(() => parseLabel(bad, 'where'), 'where');
  });
});

describe('RFC 4180 CSV parser', () => {
  it('handles CRLF, BOM, empty fields, blank lines and a missing final newline', () => {
    expect(parseCsv('\ufeffa,b\r\n1,\r\n\r\n,2')).toEqual([['a', 'b'], ['1', ''], ['', '2']]);
    expect(parseCsv('"",x\n')).toEqual([['', 'x']]);
    expect(parseCsv('a;"b;c"', { delimiter: ';' })).toEqual([['a', 'b;c']]);
  });

  it('rejects stray and unterminated quotes with a line number', async () => {
    await expectError(() => parseCsv('a,b\nx,y"z\n', { source: 'f.csv' }), 'f.csv', 'stray quote', 'line 2');
    await expectError(() => parseCsv('a\n"open\n\nstill', { source: 'f.csv' }), 'unterminated', 'line 2');
    await expectError(() => parseCsv('"a"b\n'), 'after a closing quote');
    await expectError(() => parseCsvObjects('a,b\n1\n', { source: 'g.csv' }), 'g.csv', 'record 1 has 1 fields');
  });

  it('round-trips any table through an independent RFC 4180 writer', () => {
    // The writer quotes every field that needs it (and some that don't, at random), doubling inner quotes.
    const field = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r', ' ', 'é', '😀'), maxLength: 8 });
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 4 }).chain((w) => fc.array(fc.array(field, { minLength: w, maxLength: w }), { minLength: 1, maxLength: 6 })),
      fc.boolean(), fc.boolean(),
      (rows, crlf, quoteAll) => {
        // A one-field empty record is a blank line, which CSV cannot tell apart: quote it.
        const enc = (f: string) => (quoteAll || /[",\r\n]/.test(f) || f === '' ? `"${f.replace(/"/g, '""')}"` : f);
        const text = rows.map((r) => r.map(enc).join(',')).join(crlf ? '\r\n' : '\n');
        expect(parseCsv(text)).toEqual(rows);
      }), { numRuns: 300 });
  });
});

describe('seeded randomness', () => {
  it('mulberry32 is deterministic per seed, in [0,1), and roughly uniform', () => {
    const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
    const xs = Array.from({ length: 20000 }, () => a());
    expect(Array.from({ length: 20000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs.slice(0, 5));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    // Chi-square over 10 bins, 9 degrees of freedom: 27.9 is the 0.999 quantile.
    const bins = new Array(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]++;
    const chi2 = bins.reduce((s, o) => s + (o - 2000) ** 2 / 2000, 0);
    expect(chi2).toBeLessThan(27.9);
    expect(() => mulberry32(1.5)).toThrow(/integer/);
  });

  it('permutation and sampleIndices return valid, seed-dependent results', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer(), (n, seed) => {
      const p = permutation(n, seed);
      expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
      const k = Math.floor(n / 3);
      const s = sampleIndices(n, k, seed);
      expect(s.length).toBe(k);
      expect(new Set(s).size).toBe(k);
      s.forEach((v, i) => { expect(v).toBeGreaterThanOrEqual(0); expect(v).toBeLessThan(n); if (i) expect(v).toBeGreaterThan(s[i - 1]); });
    }), { numRuns: 100 });
    expect(permutation(50, 1)).not.toEqual(permutation(50, 2));
    expect(() => sampleIndices(3, 4, 0)).toThrow(/cannot sample 4 items from 3/);
  });

  it('Fisher–Yates puts each item in each position about equally often', () => {
    // 3 items, 6000 shuffles: each (item, position) pair should appear ~2000 times.
    const rng = mulberry32(9);
    const hits = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let r = 0; r < 6000; r++) shuffleInPlace([0, 1, 2], rng).forEach((item, pos) => hits[item][pos]++);
    for (const row of hits) for (const h of row) expect(Math.abs(h - 2000)).toBeLessThan(200);
  });
});

describe('subsets', () => {
  const ds: Dataset = {
    texts: Array.from({ length: 100 }, (_, i) => `t${i}`),
    labels: Array.from({ length: 100 }, (_, i) => (i < 20 ? 0 : i < 70 ? 1 : 2)), // 20 / 50 / 30
  };

  it('proportional quotas sum to n and stay within 1 of the exact share', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 3, maxLength: 3 }), fc.nat(), (counts, r) => {
      const total = counts.reduce((a, b) => a + b, 0);
      fc.pre(total > 0);
      const n = r % (total + 1);
      const q = proportionalQuotas(counts, n);
      expect(q.reduce((a, b) => a + b, 0)).toBe(n);
      q.forEach((v, c) => { expect(v).toBeLessThanOrEqual(counts[c]); expect(Math.abs(v - (n * counts[c]) / total)).toBeLessThan(1); });
    }));
  });

  it('stratifiedSubset keeps class shares, original rows and order; balanced takes n/3 each', () => {
    const sub = stratifiedSubset(ds, 10, { seed: 1 });
    expect(labelCounts(sub.labels)).toEqual([2, 5, 3]); // 10 × (20, 50, 30)/100
    sub.texts.forEach((t, j) => expect(sub.labels[j]).toBe(ds.labels[Number(t.slice(1))]));
    const order = sub.texts.map((t) => Number(t.slice(1)));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(stratifiedSubset(ds, 10, { seed: 2 }).texts).not.toEqual(sub.texts);
    expect(stratifiedSubset(ds, 10, { seed: 1 })).toEqual(sub);
    expect(labelCounts(stratifiedSubset(ds, 31, { mode: 'balanced' }).labels)).toEqual([11, 10, 10]);
    expect(() => stratifiedSubset(ds, 90, { mode: 'balanced' })).toThrow(/class 'negative' has only 20 rows/);
    expect(() => stratifiedSubset(ds, 101)).toThrow(/101 rows from 100/);
  });

  it('shuffleDataset keeps each text with its label', () => {
    const sh = shuffleDataset(ds, 5);
    expect(sh.texts).not.toEqual(ds.texts);
    sh.texts.forEach((t, j) => expect(sh.labels[j]).toBe(ds.labels[Number(t.slice(1))]));
  });
});
