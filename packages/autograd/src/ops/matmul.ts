// C = op(A)·op(B), batched, with transpose flags (a transposed operand is never copied).
// Backward (written for the plain case, the flags permute it): dA = g·Bᵀ, dB = Aᵀ·g.
// A batch-free operand shared across a batch (a weight) gets the sum of its per-batch gradients.
import * as T from '@dawngrad/tensor';
import { ref, type Tensor } from '@dawngrad/tensor';
import { defineOp, apply } from '../op.ts';
import type { Var } from '../var.ts';

export interface MatmulAttrs {
  transA?: boolean;
  transB?: boolean;
}

/** dA for C = op(A)·op(B): g·op(B)ᵀ, laid out as A is. */
function gradA(g: Tensor, b: Tensor, { transA, transB }: MatmulAttrs): Tensor {
  // A plain: dA = g·op(B)ᵀ; A transposed: dA = op(B)·gᵀ
  return transA ? T.matmul(b, g, { transA: transB, transB: true }) : T.matmul(g, b, { transB: !transB });
}

/** dB for C = op(A)·op(B): op(A)ᵀ·g, laid out as B is. */
function gradB(g: Tensor, a: Tensor, { transA, transB }: MatmulAttrs): Tensor {
  // B plain: dB = op(A)ᵀ·g; B transposed: dB = gᵀ·op(A)
  return transB ? T.matmul(g, a, { transA: true, transB: transA }) : T.matmul(a, g, { transA: !transA });
}

/** A batched activation times an unbatched weight: fold the batch into rows so the weight's gradient is one matmul. */
function foldBatch(x: Tensor): Tensor {
  return x.reshape([-1, x.shape[x.rank - 1]!]);
}

export const MATMUL = defineOp<MatmulAttrs>({
  name: 'matmul',
  rule: 'C = A·B: dA = g·Bᵀ, dB = Aᵀ·g (transposes permute the factors; shared weights sum over the batch)',
  forward: ([a, b], attrs) => T.matmul(a!, b!, attrs),
  backward(g, { inputs: [a, b], attrs, needs }) {
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      da = gradA(g, b!, attrs);
      if (da.rank > a!.rank) da = T.sumTo(da, a!.shape);
    }
    if (needs[1]) {
      if (b!.rank === 2 && a!.rank > 2 && !attrs.transA) db = gradB(foldBatch(g), foldBatch(a!), attrs);
      else {
        db = gradB(g, a!, attrs);
        if (db.rank > b!.rank) db = T.sumTo(db, b!.shape);
      }
    }
    return [da, db];
  },
  cpu: {
    forward: ([a, b], attrs) => ref.matmul(a!, b!, attrs),
    backward(g, { inputs: [a, b], attrs: { transA, transB } }) {
      const da = transA ? ref.matmul(b!, g, { transA: transB, transB: true }) : ref.matmul(g, b!, { transB: !transB });
      const db = transB ? ref.matmul(g, a!, { transA: true, transB: transA }) : ref.matmul(a!, g, { transA: !transA });
      return [ref.sumTo(da, a!.shape), ref.sumTo(db, b!.shape)];
    },
  },
});

/** op(a)·op(b); `matmul(x, W, { transB: true })` is a linear layer with an HF-layout weight W: [out, in]. */
export const matmul = (a: Var, b: Var, attrs: MatmulAttrs = {}) => apply(MATMUL, [a, b], attrs);
