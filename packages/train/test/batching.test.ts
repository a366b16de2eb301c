// trainBatch's shared-prefix split: the prefix [1, P] and the suffix rows [B, T - P] must put back exactly the plain
// batch — ids, mask, the loss rows and their targets — and P must be the longest common prefix that still leaves every
// row its last prompt token (the logits predicting the first answer token are only computed on suffix rows).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose, scope } from '@dawngrad/tensor';
import { HfTokenizer } from '@dawngrad/model';
import { trainBatch, sharedPrefixLength, MIN_SHARED_PREFIX, type TrainBatch } from '../src/batching.ts';
import { PromptFormat, type Example } from '../src/prompts.ts';
import { loadSplit } from '../src/data.ts';

// packages/train/test/batching.test.ts -> /work/main -> ../shared
const SHARED = path.resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const MODEL = path.join(SHARED, 'models/tweet-mistral-tiny');
const TWEETS = path.join(SHARED, 'data/tweet_eval/sentiment');

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

/** A batch's tensors on the host. */
async function host(b: TrainBatch) {
  return {
    prefix: b.prefix ? Array.from(await b.prefix.toArray()) : [],
    ids: await b.inputIds.toArray(),
    mask: await b.attentionMask.toArray(),
    at: await b.logitsAt.toArray(),
    S: b.inputIds.shape[1]!,
  };
}

/** Rebuild the plain [B, T] ids and mask and the plain loss rows from a prefix batch, and compare with `plain`. */
async function expectSameAsPlain(shared: TrainBatch, plain: TrainBatch) {
  const p = await host(plain);
  const s = await host(shared);
  const P = s.prefix.length;
  const { B, T } = plain;
  expect([shared.B, shared.T, s.S]).toEqual([B, T, T - P]);
  expect(shared.inputIds.shape).toEqual([B, T - P]);
  for (let b = 0; b < B; b++) {
    const ids = [...s.prefix, ...s.ids.slice(b * s.S, (b + 1) * s.S)];
    const mask = [...s.prefix.map(() => 1), ...s.mask.slice(b * s.S, (b + 1) * s.S)];
    expect(ids, `row ${b} ids`).toEqual(Array.from(p.ids.slice(b * T, (b + 1) * T)));
    expect(mask, `row ${b} mask`).toEqual(Array.from(p.mask.slice(b * T, (b + 1) * T)));
  }
  // suffix row b*S + j is plain row b*T + j + P
  expect(Array.from(s.at, (r) => Math.floor(r / s.S) * T + (r % s.S) + P)).toEqual(Array.from(p.at));
  expect(Array.from(shared.targets)).toEqual(Array.from(plain.targets));
  expect(shared.tokens).toBe(plain.tokens);
}

/** Example rows from raw ids: prompt ‖ answer. */
const ex = (prompt: number[], answer: number[]): Example => ({ prompt: Int32Array.from(prompt), answer: Int32Array.from(answer), label: 0 });

describe('trainBatch with sharePrefix', () => {
  it('real prompts share their system turn: P ≥ 8, maximal, and the split rebuilds the plain batch', async () => {
    const fmt = new PromptFormat(HfTokenizer.fromDir(MODEL));
    const data = await loadSplit(TWEETS, 'train', { limit: 16 });
    const rows = fmt.examples(data.texts, data.labels);
    const P = sharedPrefixLength(rows);
    expect(P).toBeGreaterThanOrEqual(MIN_SHARED_PREFIX);
    for (const r of rows) expect(Array.from(r.prompt.slice(0, P))).toEqual(Array.from(rows[0]!.prompt.slice(0, P)));
    // maximal: some row differs at P, or P already reaches the cap (one prompt token left)
    const capped = Math.min(...rows.map((r) => r.prompt.length - 1)) === P;
    expect(capped || rows.some((r) => r.prompt[P] !== rows[0]!.prompt[P])).toBe(true);
    const plain = trainBatch(rows);
    const shared = trainBatch(rows, { sharePrefix: true });
    expect(plain.prefix).toBeUndefined();
    expect(shared.prefix?.shape).toEqual([1, P]);
    await expectSameAsPlain(shared, plain);
    plain.dispose();
    shared.dispose();
  });

  it('random rows: the split always rebuilds the plain batch and keeps each last prompt token in the suffix', async () => {
    const tok = fc.integer({ min: 1, max: 9 });
    const row = fc.record({ tail: fc.array(tok, { minLength: 0, maxLength: 5 }), answer: fc.array(tok, { minLength: 1, maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(tok, { minLength: 1, maxLength: 12 }), fc.array(row, { minLength: 1, maxLength: 5 }), async (head, rs) => {
        const rows = rs.map((r) => ex([...head, ...r.tail], r.answer));
        const P = sharedPrefixLength(rows);
        expect(P).toBeLessThanOrEqual(Math.min(...rows.map((r) => r.prompt.length - 1)));
        const plain = trainBatch(rows);
        const shared = trainBatch(rows, { sharePrefix: true, minPrefix: 1 });
        expect(shared.prefix?.shape[1] ?? 0).toBe(rows.length >= 2 ? P : 0);
        await expectSameAsPlain(shared, plain);
        plain.dispose();
        shared.dispose();
      }),
      { numRuns: 25 },
    );
  });

  it('identical prompts: the prefix is all but the last prompt token, whose row is the first loss row', async () => {
    const rows = [ex([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11, 12]), ex([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [13])];
    const b = trainBatch(rows, { sharePrefix: true });
    expect(b.prefix?.shape).toEqual([1, 9]);
    expect((await b.logitsAt.toArray())[0]).toBe(0); // row 0, suffix column 0 = token 10 predicts the answer's 11
    const plain = trainBatch(rows);
    await expectSameAsPlain(b, plain);
    b.dispose();
    plain.dispose();
  });

  it('stays plain when not asked, below minPrefix, or with one row', () => scope(() => {
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const two = [ex(prompt, [11]), ex(prompt, [12])];
    expect(trainBatch(two).prefix).toBeUndefined();
    expect(trainBatch(two, { sharePrefix: true, minPrefix: 10 }).prefix).toBeUndefined(); // P = 9 < 10
    expect(trainBatch([two[0]!], { sharePrefix: true }).prefix).toBeUndefined();
    expect(trainBatch([ex([1, 2], [3]), ex([4, 2], [3])], { sharePrefix: true, minPrefix: 1 }).prefix).toBeUndefined(); // P = 0
    expect(() => trainBatch([])).toThrow(/trainBatch: needs at least one row/);
  }));
});
