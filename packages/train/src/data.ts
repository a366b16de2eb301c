// Labelled-text datasets for 3-class sentiment (TweetEval sentiment and anything shaped like it).
//
// One split = parallel arrays { texts, labels } with labels 0 negative, 1 neutral, 2 positive. Layouts, detected from
// the files in the directory:
//   parquet  {split}.parquet                     Hugging Face `datasets` export, columns `text`, `label`
//   cardiff  {split}_text.txt + {split}_labels.txt (+ mapping.txt)   the cardiffnlp/tweeteval repository; its
//            validation split is called `val`
//   jsonl    {split}.jsonl                       one JSON object per line
//   csv      {split}.csv                         RFC 4180 with a header row
// Labels may be ints (0..2) or the label words. Every problem is reported as one line naming the file.

import { existsSync, statSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parquetMetadata, parquetSchema, parquetRead } from 'hyparquet';
import { parseCsvObjects } from './csv.ts';
import { mulberry32, permutation, randomInt, sampleIndices } from './rng.ts';

/** Class names by label id. The model's answer is one of these words. */
import { LABEL_NAMES, NUM_CLASSES } from './labels.ts';
export { LABEL_NAMES, NUM_CLASSES, type LabelName } from './labels.ts';

/** One split: texts[i] has label labels[i] (0..2). */
export interface Dataset {
  texts: string[];
  labels: number[];
}

export type DataFormat = 'parquet' | 'cardiff' | 'jsonl' | 'csv';

export interface LoadOptions {
  /** Force a layout instead of detecting it. */
  format?: DataFormat;
  /** Field/column holding the text (jsonl, csv, parquet); default 'text'. */
  textField?: string;
  /** Field/column holding the label (jsonl, csv, parquet); default 'label'. */
  labelField?: string;
  /** Keep only the first N rows in file order. */
  limit?: number;
  /** Keep N rows drawn at random (seeded), in file order. Not with `limit`. */
  sample?: number;
  /** Shuffle the (limited or sampled) rows with the seed. */
  shuffle?: boolean;
  /** Seed for `sample` and `shuffle`; default 0. */
  seed?: number;
}

// The cardiffnlp repository calls the validation split `val`; Hugging Face calls it `validation`.
const SPLIT_ALIASES: Record<string, string[]> = {
  validation: ['validation', 'val'],
  val: ['val', 'validation'],
};

/** The files of one split and the layout they belong to. */
export interface SplitFiles {
  format: DataFormat;
  /** The data file (cardiff: the text file). */
  file: string;
  /** cardiff only: the labels file and the optional mapping file. */
  labelsFile?: string;
  mappingFile?: string;
}

/** Finds the files of `split` in `dir`. Throws a one-line error listing what was looked for. */
export function detectLayout(dir: string, split: string, format?: DataFormat): SplitFiles {
  if (!/^[A-Za-z0-9_.-]+$/.test(split) || split.startsWith('.')) throw new Error(`invalid split name ${JSON.stringify(split)}`);
  if (!existsSync(dir)) throw new Error(`dataset directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) {
    throw new Error(`dataset path ${dir} is a file, not a directory: give the directory that holds the split files (train, validation, test as .parquet, .jsonl, .csv or _text.txt)`);
  }
  const names = SPLIT_ALIASES[split] ?? [split];
  const candidates: SplitFiles[] = [];
  for (const s of names) {
    candidates.push({ format: 'parquet', file: path.join(dir, `${s}.parquet`) });
    candidates.push({
      format: 'cardiff',
      file: path.join(dir, `${s}_text.txt`),
      labelsFile: path.join(dir, `${s}_labels.txt`),
      mappingFile: path.join(dir, 'mapping.txt'),
    });
    candidates.push({ format: 'jsonl', file: path.join(dir, `${s}.jsonl`) });
    candidates.push({ format: 'csv', file: path.join(dir, `${s}.csv`) });
  }
  const wanted = format ? candidates.filter((c) => c.format === format) : candidates;
  const found = wanted.filter((c) => existsSync(c.file));
  // two files for one split (train.parquet and train.jsonl): reading either silently could train on the wrong one
  if (found.length > 1) {
    throw new Error(`split '${split}' is in ${found.length} files in ${dir} (${found.map((c) => path.basename(c.file)).join(', ')}): keep one of them`);
  }
  for (const c of found) {
    if (c.format === 'cardiff') {
      if (!existsSync(c.labelsFile!)) throw new Error(`${c.labelsFile}: missing labels file for ${c.file}`);
      if (!existsSync(c.mappingFile!)) c.mappingFile = undefined;
    }
    return c;
  }
  const looked = wanted.map((c) => path.basename(c.file)).join(', ');
  const present = readdirSync(dir).slice(0, 12).join(', ') || 'nothing';
  throw new Error(`no split '${split}' in ${dir}: looked for ${looked}; found ${present}`);
}

/** Turns a raw label (int, bigint, numeric string or label word) into 0..2, or throws naming `where`. */
export function parseLabel(raw: unknown, where: string): number {
  let v: number;
  if (typeof raw === 'bigint') v = Number(raw);
  else if (typeof raw === 'number') v = raw;
  else if (typeof raw === 'string') {
    const s = raw.trim();
    if (/^-?\d+(\.\d*)?$/.test(s)) v = Number(s);
    else {
      const id = (LABEL_NAMES as readonly string[]).indexOf(s.toLowerCase());
      if (id < 0) throw new Error(`${where}: unknown label ${JSON.stringify(raw)} (expected 0..2 or ${LABEL_NAMES.join('/')})`);
      return id;
    }
  } else throw new Error(`${where}: label is ${raw === null ? 'null' : typeof raw}, expected an int or a label word`);
  if (!Number.isInteger(v)) throw new Error(`${where}: label ${String(raw)} is not an integer (expected 0..${NUM_CLASSES - 1} or ${LABEL_NAMES.join('/')})`);
  if (v < 0 || v >= NUM_CLASSES) throw new Error(`${where}: label ${String(raw)} is outside 0..${NUM_CLASSES - 1}`);
  return v;
}

function checkText(raw: unknown, where: string): string {
  if (typeof raw !== 'string') throw new Error(`${where}: text is ${raw === null ? 'null' : typeof raw}, expected a string`);
  return raw;
}

/** Keeps an error on one line (parser messages sometimes carry newlines). */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
}

async function readParquet(file: string, textField: string, labelField: string): Promise<Dataset> {
  const buf = await readFile(file);
  // hyparquet wants an ArrayBuffer of exactly the file (a Node Buffer may be a view into a larger pool).
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let columns: string[];
  try {
    columns = parquetSchema(parquetMetadata(ab)).children.map((c) => c.element.name);
  } catch (e) {
    throw new Error(`${file}: not a readable parquet file (${oneLine(e)})`);
  }
  for (const col of [textField, labelField]) {
    if (!columns.includes(col)) throw new Error(`${file}: missing column '${col}' (columns: ${columns.join(', ')})`);
  }
  let rows: unknown[][] = [];
  try {
    await parquetRead({ file: ab, columns: [textField, labelField], onComplete: (r: unknown[][]) => { rows = r; } });
  } catch (e) {
    throw new Error(`${file}: corrupt parquet data (${oneLine(e)})`);
  }
  const texts: string[] = new Array(rows.length);
  const labels: number[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    texts[i] = checkText(rows[i][0], `${file} row ${i}`);
    labels[i] = parseLabel(rows[i][1], `${file} row ${i}`);
  }
  return { texts, labels };
}

/** Splits a text file into lines, dropping a UTF-8 byte-order mark, the final empty line and any CR of CRLF endings. */
function lines(text: string): string[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // an invisible BOM would break the first line, as the CSV reader knows
  const out = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

/** mapping.txt lines are `id<TAB>word`; returns file id -> our id, checking every word is a known label. */
async function readMapping(file: string): Promise<Map<number, number>> {
  const map = new Map<number, number>();
  for (const [i, l] of lines(await readFile(file, 'utf8')).entries()) {
    if (l.trim() === '') continue;
    const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(l);
    if (!m) throw new Error(`${file} line ${i + 1}: expected "<id> <label word>", got ${JSON.stringify(l)}`);
    map.set(Number(m[1]), parseLabel(m[2], `${file} line ${i + 1}`));
  }
  return map;
}

async function readCardiff(f: SplitFiles): Promise<Dataset> {
  const texts = lines(await readFile(f.file, 'utf8'));
  const rawLabels = lines(await readFile(f.labelsFile!, 'utf8'));
  if (texts.length !== rawLabels.length) {
    throw new Error(`${f.labelsFile}: ${rawLabels.length} labels but ${path.basename(f.file)} has ${texts.length} texts`);
  }
  const mapping = f.mappingFile ? await readMapping(f.mappingFile) : undefined;
  const labels = rawLabels.map((raw, i) => {
    const where = `${f.labelsFile} line ${i + 1}`;
    if (!mapping) return parseLabel(raw, where);
    const s = raw.trim();
    const mapped = /^\d+$/.test(s) ? mapping.get(Number(s)) : undefined;
    // A word label is taken as is; an id must be in the mapping.
    if (mapped === undefined && /^\d+$/.test(s)) throw new Error(`${where}: label ${s} is not in ${path.basename(f.mappingFile!)}`);
    return mapped ?? parseLabel(raw, where);
  });
  return { texts, labels };
}

async function readJsonl(file: string, textField: string, labelField: string): Promise<Dataset> {
  const texts: string[] = [];
  const labels: number[] = [];
  for (const [i, l] of lines(await readFile(file, 'utf8')).entries()) {
    if (l.trim() === '') continue;
    const where = `${file} line ${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(l);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${oneLine(e)})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error(`${where}: expected a JSON object`);
    const rec = obj as Record<string, unknown>;
    for (const k of [textField, labelField]) if (!(k in rec)) throw new Error(`${where}: missing field '${k}'`);
    texts.push(checkText(rec[textField], where));
    labels.push(parseLabel(rec[labelField], where));
  }
  return { texts, labels };
}

async function readCsv(file: string, textField: string, labelField: string): Promise<Dataset> {
  const { columns, rows } = parseCsvObjects(await readFile(file, 'utf8'), { source: file });
  for (const col of [textField, labelField]) {
    if (!columns.includes(col)) throw new Error(`${file}: missing column '${col}' (columns: ${columns.join(', ')})`);
  }
  return {
    texts: rows.map((r) => r[textField]),
    labels: rows.map((r, i) => parseLabel(r[labelField], `${file} record ${i + 1}`)),
  };
}

function checkCount(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new Error(`${name} must be a positive integer, got ${v}`);
}

/**
 * Loads one split from `dir` (layout detected from its files), validates it, then applies limit/sample/shuffle.
 * Example: `await loadSplit('../shared/data/tweet_eval/sentiment', 'train', { shuffle: true, seed: 1 })`.
 */
export async function loadSplit(dir: string, split: string, opts: LoadOptions = {}): Promise<Dataset> {
  checkCount('limit', opts.limit);
  checkCount('sample', opts.sample);
  if (opts.limit !== undefined && opts.sample !== undefined) throw new Error('use either limit or sample, not both');
  const seed = opts.seed ?? 0;
  const textField = opts.textField ?? 'text';
  const labelField = opts.labelField ?? 'label';
  const f = detectLayout(dir, split, opts.format);
  let ds: Dataset;
  if (f.format === 'parquet') ds = await readParquet(f.file, textField, labelField);
  else if (f.format === 'cardiff') ds = await readCardiff(f);
  else if (f.format === 'jsonl') ds = await readJsonl(f.file, textField, labelField);
  else ds = await readCsv(f.file, textField, labelField);
  if (ds.texts.length === 0) throw new Error(`${f.file}: split '${split}' is empty`);

  if (opts.limit !== undefined) ds = take(ds, Array.from({ length: Math.min(opts.limit, ds.texts.length) }, (_, i) => i));
  if (opts.sample !== undefined) {
    if (opts.sample > ds.texts.length) throw new Error(`${f.file}: cannot sample ${opts.sample} rows from ${ds.texts.length}`);
    ds = take(ds, sampleIndices(ds.texts.length, opts.sample, seed));
  }
  if (opts.shuffle) ds = shuffleDataset(ds, seed);
  return ds;
}

/** The rows at `indices`, in that order. */
export function take(ds: Dataset, indices: readonly number[]): Dataset {
  return { texts: indices.map((i) => ds.texts[i]), labels: indices.map((i) => ds.labels[i]) };
}

/** A seeded shuffle of the rows (texts and labels move together). */
export function shuffleDataset(ds: Dataset, seed: number): Dataset {
  return take(ds, permutation(ds.texts.length, seed));
}

/** How many rows of each class: counts[c] for c in 0..2. */
export function labelCounts(labels: readonly number[]): number[] {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

/**
 * Splits `n` into per-class quotas proportional to `counts` (largest-remainder rounding, ties to the lower class id),
 * so a subset keeps the class balance of the full split.
 */
export function proportionalQuotas(counts: readonly number[], n: number): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  const exact = counts.map((c) => (n * c) / total);
  const quotas = exact.map(Math.floor);
  let left = n - quotas.reduce((a, b) => a + b, 0);
  const order = exact.map((e, c) => ({ c, frac: e - Math.floor(e) })).sort((a, b) => b.frac - a.frac || a.c - b.c);
  for (const { c } of order) {
    if (left === 0) break;
    if (quotas[c] < counts[c]) { quotas[c]++; left--; }
  }
  return quotas;
}

export interface StratifiedOptions {
  seed?: number;
  /** 'proportional' (default) keeps the split's class balance; 'balanced' takes n/3 of each class. */
  mode?: 'proportional' | 'balanced';
}

/**
 * A seeded subset of `n` rows chosen per class, for quick evaluations that still see every class.
 * Rows stay in their original order.
 */
export function stratifiedSubset(ds: Dataset, n: number, opts: StratifiedOptions = {}): Dataset {
  checkCount('subset size', n);
  if (n > ds.labels.length) throw new Error(`cannot take a subset of ${n} rows from ${ds.labels.length}`);
  const counts = labelCounts(ds.labels);
  let quotas: number[];
  if ((opts.mode ?? 'proportional') === 'balanced') {
    quotas = counts.map((_, c) => Math.floor(n / NUM_CLASSES) + (c < n % NUM_CLASSES ? 1 : 0));
    quotas.forEach((q, c) => {
      if (q > counts[c]) throw new Error(`class '${LABEL_NAMES[c]}' has only ${counts[c]} rows, ${q} needed for a balanced subset of ${n}`);
    });
  } else quotas = proportionalQuotas(counts, n);
  const byClass: number[][] = counts.map(() => []);
  ds.labels.forEach((l, i) => byClass[l].push(i));
  const rng = mulberry32(opts.seed ?? 0);
  const chosen: number[] = [];
  byClass.forEach((rows, c) => {
    // Partial Fisher–Yates: the first quotas[c] entries become a uniform sample of this class.
    for (let i = 0; i < quotas[c]; i++) {
      const j = i + randomInt(rng, rows.length - i);
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    chosen.push(...rows.slice(0, quotas[c]));
  });
  return take(ds, chosen.sort((a, b) => a - b));
}
