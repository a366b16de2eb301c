// Sequences too long for the model or the device are found before anything runs, and a tweet never breaks a run: every
// split is tokenised up front and the longest rows checked against max_position_embeddings (a --system too long for it
// is refused) and against the adapter's buffer limits at the chosen batch sizes; --max-length (default: the model's
// limit) cuts the tweet, never the answer, and the run says how many it cut. `predict` cuts the same way, batches by
// --batch-size and classifies each line on its own. Also here: Mistral's sliding window, through `dawngrad forward`.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '@dawngrad/model';
import { copyModel, dawngrad, editJson, expectRefusal, jsonl, tempDir, tree, tweets, writeData, DAWN_STARTED, HF_TINY } from './helpers.ts';
import { maxAbs } from '../shared.ts';

let tmp: string;
let data: string;
let long: string; // about 200 KB of words: tens of thousands of tokens
beforeAll(() => {
  tmp = tempDir();
  data = writeData(join(tmp, 'data'), { train: 8, validation: 3, test: 3 });
  long = Array.from({ length: 30_000 }, (_, i) => ['great', 'awful', 'meeting', 'today'][i % 4]).join(' ') + ' THE END';
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const train = (model: string, d: string, out: string, ...extra: string[]) => [
  'train', '--model', model, '--data', d, '--out', out, '--max-eval', '3', '--batch-size', '4', '--checkpoint-every', '0',
  '--targets', 'q_proj,v_proj', '--r', '4', '--eval-mode', 'generate', '--no-eval-before', ...extra,
];

/** Run in a fresh working directory; `out` is inside it, so `tree(cwd)` shows anything written. */
async function inCwd(args: (out: string) => string[]) {
  const cwd = tempDir('dawngrad-cwd-');
  const r = await dawngrad(args(join(cwd, 'run')), { cwd });
  return { r, cwd, written: tree(cwd) };
}

describe.concurrent('sequence lengths, checked up front', () => {
  it('a --system too long for the model is refused before the GPU starts (it used to fail at the test evaluation)', async () => {
    const system = Array.from({ length: 400 }, () => 'classify').join(' '); // hf-tiny allows 256 positions
    const { r, written } = await inCwd((out) => train(HF_TINY, data, out, '--system', system));
    expectRefusal(r, 1, /^dawngrad: --system: with an empty tweet the prompt is already \d{3,} tokens; with \d+ for the answer that is over the 256 positions allowed \(max_position_embeddings\): shorten --system$/);
    expect(r.rawStderr).not.toMatch(DAWN_STARTED);
    expect(written).toEqual([]);
  });

  it('--max-length above the model\'s limit is refused', async () => {
    const { r, written } = await inCwd((out) => train(HF_TINY, data, out, '--max-length', '300'));
    expectRefusal(r, 1, /^dawngrad: --max-length 300 is over the model's max_position_embeddings \(256\)$/);
    expect(written).toEqual([]);
  });

  it('a 200 KB tweet is cut to fit (never its answer), the run says so, and it trains', async () => {
    const d = writeData(join(tmp, 'long-data'), { train: 8, validation: 3, test: 3 }, {
      train: jsonl([...tweets(7), { text: long, label: 2 }]),
      test: jsonl([...tweets(2), { text: long, label: 0 }]),
    });
    const { r, written } = await inCwd((out) => train(HF_TINY, d, out, '--max-train', '8'));
    expect(r.code, r.rawStderr).toBe(0);
    expect(r.stdout).toMatch(/^--max-length 256: cut the tweet of 1 train, 1 test example\(s\) to fit \(answers are never cut\)$/m);
    expect(written).toContain('run/summary.json');
    // and with a --max-length of its own
    const { r: r2 } = await inCwd((out) => train(HF_TINY, d, out, '--max-train', '8', '--max-length', '64', '--max-steps', '1'));
    expect(r2.code, r2.rawStderr).toBe(0);
    expect(r2.stdout).toMatch(/^--max-length 64: cut the tweet of 1 train, 1 test example\(s\)/m);
  });

  it('rows too large for the device at the chosen batch size are refused before any step, with what would fit', async () => {
    // a model that allows 16384 positions: the long tweet fills them, and the attention scores of one row are 4 GiB
    const model = copyModel(join(tmp, 'long-model'));
    editJson(join(model, 'config.json'), (j) => (j.max_position_embeddings = 16384));
    const d = writeData(join(tmp, 'device-data'), { train: 8, validation: 3, test: 3 }, { train: jsonl([...tweets(7), { text: long, label: 2 }]) });
    const { r, written } = await inCwd((out) => train(model, d, out, '--max-train', '8'));
    expectRefusal(r, 1, /^dawngrad: the longest training row \(prompt \+ answer\) has 16384 tokens: at --batch-size 4 its attention scores \[4, 4, 16384, 16384\] need 16384 MiB, over this adapter's maxStorageBufferBindingSize \(\d+ MiB\); use --max-length \d+$/);
    expect(written).toEqual([]);
  });
});

describe.concurrent('predict', () => {
  it('with nothing on stdin, says there is nothing to classify', async () => {
    const r = await dawngrad(['predict', '--model', HF_TINY], { input: '\n  \n' });
    expectRefusal(r, 2, /^dawngrad: predict: nothing to classify: stdin held no non-empty line/);
    expect(r.rawStderr).not.toMatch(DAWN_STARTED);
  });

  it('20 KB of random bytes: every line classified on its own, long ones cut, in input order', async () => {
    let s = 12345;
    const bytes = Buffer.from(Array.from({ length: 20_000 }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 0xff));
    bytes[20_000 - 3] = 0x0a; // at least one line break near the end, so the last line is short
    const lines = bytes.toString('utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
    const r = await dawngrad(['predict', '--model', HF_TINY, '--batch-size', '16'], { input: bytes, timeoutMs: 300_000 });
    expect(r.code, r.rawStderr).toBe(0);
    const out = r.stdout.split('\n').filter((l) => l !== '');
    expect(out).toHaveLength(lines.length);
    out.forEach((l, i) => expect(l).toBe(`${l.split('\t')[0]}\t${lines[i]}`));
    expect(out.every((l) => /^(negative|neutral|positive|invalid)\t/.test(l))).toBe(true);
    expect(r.lines.join('\n')).toMatch(/predict: cut \d+ tweet\(s\) to fit 256 positions/);
  });

  it('--batch-size changes the batches, not the answers', async () => {
    const texts = ['so happy today', 'this is awful', 'the meeting is at noon', 'great game', 'worst day ever'];
    const [a, b] = await Promise.all([1, 64].map((bs) => dawngrad(['predict', '--model', HF_TINY, '--batch-size', String(bs), ...texts])));
    expect(a!.code, a!.rawStderr).toBe(0);
    expect(a!.stdout.trim().split('\n')).toHaveLength(5);
    expect(a!.stdout).toBe(b!.stdout);
  });
});

describe('sliding-window attention through the CLI', () => {
  it('dawngrad forward on a config with "sliding_window": 4 gives transformers\' logits (it used to ignore the window)', async () => {
    const model = copyModel(join(tmp, 'window-model'));
    editJson(join(model, 'config.json'), (j) => (j.sliding_window = 4));
    const out = join(tmp, 'window-out.safetensors');
    const r = await dawngrad(['forward', '--model', model, '--batch', join(HF_TINY, 'reference.safetensors'), '--out', out]);
    expect(r.code, r.rawStderr).toBe(0);
    const [got, ref, batch] = await Promise.all([out, join(HF_TINY, 'sliding_window.safetensors'), join(HF_TINY, 'reference.safetensors')].map((f) => SafetensorsFile.open(f)));
    const logits = (await got!.readTensor('logits')).data as Float32Array;
    const want = (await ref!.readTensor('sliding_window_4.logits')).data as Float32Array;
    const mask = (await batch!.readTensor('attention_mask')).data as Int32Array;
    const V = 1000;
    let worst = 0;
    mask.forEach((m, row) => {
      if (m) worst = Math.max(worst, maxAbs(logits.subarray(row * V, (row + 1) * V), want.subarray(row * V, (row + 1) * V)));
    });
    for (const f of [got, ref, batch]) await f!.close();
    expect(worst).toBeLessThanOrEqual(1e-4);
  });
});

