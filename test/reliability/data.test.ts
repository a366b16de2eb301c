// Bad datasets through `dawngrad train` and `dawngrad eval`: one line naming the file (and the line or row) and the
// problem, exit 1, nothing written — and for train, refused before the GPU is started or the model is loaded.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine, dawngrad, expectRefused, jsonl, tempDir, tweets, writeData, DAWN_STARTED, type Command } from './helpers.ts';

let tmp: string;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SIZES = { train: 8, validation: 3, test: 3 };
const good = tweets(4);

/** A dataset directory with one split's file replaced (null: removed); `extra` files are written beside it. */
type Layout = { override: Record<string, string | null>; extra?: Record<string, string | Buffer> };

const cases: [string, Command, Layout, RegExp][] = [
  ['a missing split', 'train', { override: { test: null } },
    /^dawngrad: no split 'test' in \S+: looked for test\.parquet, test_text\.txt, test\.jsonl, test\.csv; found train\.jsonl, validation\.jsonl$/],
  ['a missing text field', 'train', { override: { train: jsonl([{ tweet: 'hi', label: 0 }]) } }, /\S+\/train\.jsonl line 1: missing field 'text'$/],
  ['a missing label field', 'eval', { override: { test: jsonl([good[0]!, { text: 'hi' }]) } }, /\S+\/test\.jsonl line 2: missing field 'label'$/],
  ['a label outside 0..2', 'train', { override: { train: jsonl([good[0]!, { text: 'meh', label: 3 }]) } }, /\S+\/train\.jsonl line 2: label 3 is outside 0\.\.2$/],
  ['an unknown label word', 'train', { override: { validation: jsonl([{ text: 'meh', label: 'happy' }]) } },
    /\S+\/validation\.jsonl line 1: unknown label "happy" \(expected 0\.\.2 or negative\/neutral\/positive\)$/],
  ['a text that is not a string', 'train', { override: { train: jsonl([{ text: 42, label: 1 }]) } }, /\S+\/train\.jsonl line 1: text is number, expected a string$/],
  ['a line that is not JSON', 'eval', { override: { test: jsonl(good) + '{"text": "x", "label": \n' } }, /\S+\/test\.jsonl line 5: invalid JSON \(.+\)$/],
  ['an empty split', 'train', { override: { test: '' } }, /\S+\/test\.jsonl: split 'test' is empty$/],
  ['an unreadable parquet file', 'train', { override: { train: null }, extra: { 'train.parquet': Buffer.from('PAR1 this is not parquet at all PAR1') } },
    /\S+\/train\.parquet: not a readable parquet file \(.+\)$/],
  ['a csv without its label column', 'eval', { override: { test: null }, extra: { 'test.csv': 'text,sentiment\nhello,1\n' } },
    /\S+\/test\.csv: missing column 'label' \(columns: text, sentiment\)$/],
  ['cardiff files whose counts disagree', 'train', { override: { train: null }, extra: { 'train_text.txt': 'a\nb\nc\n', 'train_labels.txt': '0\n1\n' } },
    /\S+\/train_labels\.txt: 2 labels but train_text\.txt has 3 texts$/],
  ['a fractional label', 'train', { override: { train: jsonl([good[0]!, { text: 'meh', label: 1.5 }]) } },
    /\S+\/train\.jsonl line 2: label 1\.5 is not an integer \(expected 0\.\.2 or negative\/neutral\/positive\)$/],
  // which one would be read? refused rather than guessed
  ['a split in two formats', 'eval', { override: {}, extra: { 'test.csv': 'text,label\nhello,1\n' } },
    /^dawngrad: split 'test' is in 2 files in \S+ \(test\.jsonl, test\.csv\): keep one of them$/],
];

describe.concurrent('bad datasets are refused with one line, exit 1, nothing written', () => {
  it.each(cases)('%s (%s)', async (name, cmd, layout, msg) => {
    const data = writeData(join(tmp, name.replace(/\W+/g, '-')), SIZES, layout.override);
    for (const [f, content] of Object.entries(layout.extra ?? {})) writeFileSync(join(data, f), content);
    const r = await expectRefused(cmd, { data }, msg);
    // the data is read before anything else: Dawn never started (its start-up warnings would be on stderr)
    if (cmd === 'train') expect(r.rawStderr).not.toMatch(DAWN_STARTED);
  });
});

describe.concurrent('what the data layer accepts, and where it points', () => {
  it('--data naming a file says it is a file, not that it does not exist', async () => {
    const data = writeData(join(tmp, 'as-file'), SIZES);
    await expectRefused('train', { data: join(data, 'train.jsonl') },
      /^dawngrad: dataset path \S+\/train\.jsonl is a file, not a directory: give the directory that holds the split files/);
  });

  it('a JSONL file that starts with a byte-order mark is read (as the CSV reader reads one)', async () => {
    const data = writeData(join(tmp, 'bom'), SIZES, { test: '\ufeff' + jsonl(tweets(3)) });
    const r = await dawngrad(commandLine('eval', { data }, ''));
    expect(r.code, r.rawStderr).toBe(0);
    expect(r.stdout).toMatch(/by generation .* on 3 tweets/);
  });
});
