// A linear layer with a low-rank update — LoRA's y = x·Wᵀ + s·(x'·Aᵀ)·Bᵀ — as one op, so it costs two dispatches
// forward and four backward instead of the ten of its parts.
//
//   x: [N, in]   W: [out, in]   A: [r, in]   B: [out, r]   x': x, or (a 5th input) x after LoRA's dropout   ->   y: [N, out]
//
// Forward:  h = x'·Aᵀ [N, r] (a thin kernel), then y = x·Wᵀ + s·h·Bᵀ in one gemm whose epilogue adds the rank-r term.
// Backward, g = dL/dy:
//   gB = g·B [N, r]
//   dx = g·W + s·gB·A        (one gemm with the same epilogue; with dropout, dx = g·W and dx' = s·gB·A separately)
//   dA = s·gBᵀ·x'            dB = s·gᵀ·h            dW = gᵀ·x (only when W is trained)
// dA and dB reduce over the N rows: thin kernels, accumulated straight into the parameters' packed gradients when the
// caller gave them (BackwardCtx.into), so no add follows.
import * as tensor from '@dawngrad/tensor';
import { ref, type Tensor } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

export interface LinearLowRankAttrs {
  /** LoRA's alpha / r (or alpha / √r) */
  scale: number;
}

function checkShapes([x, W, A, B, xd]: readonly (readonly number[])[], fmt = (s: readonly number[]) => `[${s.join(', ')}]`): void {
  const [N, inF] = x as [number, number];
  const [outF, r] = [W![0]!, A![0]!];
  const ok =
    x!.length === 2 && W!.length === 2 && W![1] === inF && A!.length === 2 && A![1] === inF && B!.length === 2 && B![0] === outF && B![1] === r &&
    (!xd || (xd.length === 2 && xd[0] === N && xd[1] === inF));
  if (!ok) throw new Error(`linearLowRank: x ${fmt(x!)}, W ${fmt(W!)}, A ${fmt(A!)}, B ${fmt(B!)}${xd ? `, x' ${fmt(xd)}` : ''} do not fit x [N, in], W [out, in], A [r, in], B [out, r]`);
}

export const LINEAR_LOW_RANK = defineOp<LinearLowRankAttrs, Tensor>({
  name: 'linearLowRank',
  rule: "y = x·Wᵀ + s·(x'·Aᵀ)·Bᵀ: dx = g·W + s·(g·B)·A, dA = s·(g·B)ᵀ·x', dB = s·gᵀ·(x'·Aᵀ), dW = gᵀ·x",
  forward([x, W, A, B, xd], { scale }) {
    const h = tensor.matmul(xd ?? x!, A!, { transB: true }); // [N, r], kept for dB
    const out = tensor.matmul(x!, W!, { transB: true, lowRank: { h, e: B!, transE: true, scale } });
    return { out, saved: h };
  },
  backward(g, { inputs: [x, W, A, B, xd], attrs: { scale }, needs, saved: h, into }) {
    const xin = xd ?? x!;
    const gB = needs[0] || needs[2] || needs[4] ? tensor.matmul(g, B!) : null; // [N, r]
    const dx = needs[0] ? tensor.matmul(g, W!, xd ? {} : { lowRank: { h: gB!, e: A!, scale } }) : null;
    const dW = needs[1] ? tensor.matmul(g, x!, { transA: true, accumulate: into[1] ?? undefined }) : null;
    // the LoRA factors' gradients sum over the N rows: straight into their accumulators when they have them
    const dA = needs[2] ? tensor.matmul(gB!, xin, { transA: true, alpha: scale, accumulate: into[2] ?? undefined }) : null;
    const dB = needs[3] ? tensor.matmul(g, h, { transA: true, alpha: scale, accumulate: into[3] ?? undefined }) : null;
    const dxd = xd && needs[4] ? tensor.matmul(gB!, A!, { alpha: scale }) : null;
    gB?.dispose();
    return [dx, dW, dA, dB, dxd];
  },
  cpu: {
    forward([x, W, A, B, xd], { scale }) {
      const h = ref.matmul(xd ?? x!, A!, { transB: true });
      return ref.matmul(h, B!, { transB: true, alpha: scale, accumulate: ref.matmul(x!, W!, { transB: true }) });
    },
    backward(g, { inputs: [x, W, A, B, xd], attrs: { scale } }) {
      const xin = xd ?? x!;
      const gB = ref.matmul(g, B!);
      const h = ref.matmul(xin, A!, { transB: true });
      const lowRankDx = ref.matmul(gB, A!, { alpha: scale });
      const dx = ref.matmul(g, W!, xd ? {} : { accumulate: lowRankDx });
      const grads: F64[] = [dx, ref.matmul(g, x!, { transA: true }), ref.matmul(gB, xin, { transA: true, alpha: scale }), ref.matmul(g, h, { transA: true, alpha: scale })];
      if (xd) grads.push(lowRankDx);
      return grads;
    },
  },
});

/** x·Wᵀ + scale·(x'·Aᵀ)·Bᵀ with x' = `dropped` (LoRA's dropout of x) or x itself. */
export function linearLowRank(x: Var, W: Var, A: Var, B: Var, scale: number, dropped?: Var): Var {
  const inputs = dropped ? [x, W, A, B, dropped] : [x, W, A, B];
  checkShapes(inputs.map((v) => v.shape));
  return apply(LINEAR_LOW_RANK, inputs, { scale });
}
