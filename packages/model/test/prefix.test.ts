// The shared-prefix forward (Batch.prefix) against the plain forward on the hf-tiny fixture model: rows that start with
// the same tokens run once with the whole rows [B, T], once as one prefix [1, P] plus the suffixes [B, T - P]. The
// logits at the loss rows, the loss and every base-parameter gradient must agree to float32 rounding — the prefix path
// only skips repeated work. P = 1, a middle P, and a P that leaves one row only its last prompt token.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, dispose, Tensor, scope, mulberry32 } from '@dawngrad/tensor';
import { backward, constant, crossEntropy, noGrad } from '@dawngrad/autograd';
import { loadModel, type Batch, type MistralForCausalLM } from '../src/index.ts';

const HF_TINY = resolve(fileURLToPath(import.meta.url), '../../../../../shared/fixtures/hf-tiny');
let model: MistralForCausalLM;

beforeAll(async () => {
  await init();
  model = await loadModel(HF_TINY);
  model.requiresGrad(true);
});
afterAll(() => {
  model?.dispose();
  dispose();
});

/** A row: its token ids, where its prompt ends, and the answer tokens after it (the loss reads the rows before them). */
interface Row {
  ids: number[];
  promptLen: number;
}

// K shared tokens, then each row's own tokens; prompts of 8, 12 and 10 tokens and answers of 2, 3 and 1, so rows
// differ in length (right padding) and row 0 has exactly one prompt token after a K-token prefix
const K = 7;
function makeRows(): Row[] {
  const r = mulberry32(7);
  const tok = () => 1 + Math.floor(r() * 999); // hf-tiny's vocabulary is 1000
  const shared = Array.from({ length: K }, tok);
  return [
    [8, 2],
    [12, 3],
    [10, 1],
  ].map(([p, a]) => ({ ids: [...shared, ...Array.from({ length: p! - K + a! }, tok)], promptLen: p! }));
}

/** The rows as a plain batch, or as a P-token prefix plus suffixes; loss rows index the flat rows of inputIds. */
function buildBatch(rows: Row[], P: number): { batch: Batch; logitsAt: Tensor; targets: Tensor } {
  const B = rows.length;
  const T = Math.max(...rows.map((x) => x.ids.length));
  const S = T - P;
  const ids = new Int32Array(B * S);
  const mask = new Int32Array(B * S);
  const at: number[] = [];
  const targets: number[] = [];
  rows.forEach((row, b) => {
    row.ids.slice(P).forEach((t, j) => {
      ids[b * S + j] = t;
      mask[b * S + j] = 1;
    });
    for (let t = row.promptLen - 1; t < row.ids.length - 1; t++) {
      at.push(b * S + t - P);
      targets.push(row.ids[t + 1]!);
    }
  });
  const batch: Batch = { inputIds: Tensor.fromArray(ids, [B, S], 'i32'), attentionMask: Tensor.fromArray(mask, [B, S], 'i32') };
  if (P > 0) batch.prefix = { ids: Tensor.fromArray(Int32Array.from(rows[0]!.ids.slice(0, P)), [1, P], 'i32') };
  return {
    batch,
    logitsAt: Tensor.fromArray(Int32Array.from(at), [at.length], 'i32'),
    targets: Tensor.fromArray(Int32Array.from(targets), [targets.length], 'i32'),
  };
}

/** Forward + backward of one batch: the loss-row logits, the loss, and every parameter's gradient (then zeroed). */
async function run(rows: Row[], P: number) {
  const out = scope(() => {
    const { batch, logitsAt, targets } = buildBatch(rows, P);
    const logits = model.forward(batch, { logitsAt }); // [N, V]
    const loss = crossEntropy(logits, constant(targets));
    backward(loss);
    return { logits: logits.data, loss: loss.data };
  });
  const grads = new Map<string, Float32Array>();
  for (const { name, param } of model.namedParameters()) {
    expect(param.grad, `${name} has a gradient`).toBeTruthy();
    grads.set(name, await param.grad!.toArray());
    param.zeroGrad();
  }
  const logits = await out.logits.toArray();
  const loss = await out.loss.item();
  out.logits.dispose();
  out.loss.dispose();
  return { logits, loss, grads };
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
};

describe('the shared-prefix forward equals the plain forward', () => {
  it.each([1, 4, K])('P = %i: logits at the loss rows, the loss and every base gradient', async (P) => {
    const rows = makeRows();
    const plain = await run(rows, 0);
    const shared = await run(rows, P);
    expect(maxAbsDiff(shared.logits, plain.logits)).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(shared.loss - plain.loss) / plain.loss).toBeLessThanOrEqual(1e-5);
    for (const [name, g] of plain.grads) {
      const scale = maxAbs(g);
      expect(scale, `${name}: the plain gradient is not all zero`).toBeGreaterThan(0);
      expect(maxAbsDiff(shared.grads.get(name)!, g) / scale, `gradient of ${name}`).toBeLessThanOrEqual(1e-4);
    }
  });

  it('hidden states of the suffix rows equal the plain rows after the prefix', async () => {
    const rows = makeRows();
    const P = 5;
    const hidden = (p: number) => scope(() => {
      const { batch } = buildBatch(rows, p);
      return noGrad(() => model.hiddenStates(batch)).data.toArray(); // [B*(T-p), C]; the read is encoded before the scope frees it
    });
    const plain = await hidden(0);
    const shared = await hidden(P);
    const C = model.config.hiddenSize;
    const T = Math.max(...rows.map((x) => x.ids.length));
    const S = T - P;
    // compare every real (non-padding) suffix token of every row
    let worst = 0;
    rows.forEach((row, b) => {
      for (let t = P; t < row.ids.length; t++) {
        for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs(shared[(b * S + t - P) * C + c]! - plain[(b * T + t) * C + c]!));
      }
    });
    expect(shared.length).toBe(rows.length * S * C);
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it('refuses a prefix that is not i32 [1, P]', () => {
    scope(() => {
      const { batch } = buildBatch(makeRows(), 3);
      const bad = { ...batch, prefix: { ids: Tensor.fromArray(new Int32Array(6), [2, 3], 'i32') } };
      expect(() => noGrad(() => model.forward(bad))).toThrow(/forward: prefix\.ids must be i32 \[1, P\] with P ≥ 1, got i32 \[2, 3\]/);
    });
  });
});
