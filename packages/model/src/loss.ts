// The causal-LM loss exactly as transformers computes it: the logits at position t predict the label at t+1;
// labels of -100 are ignored; the mean runs over the labelled tokens only.
import { Tensor } from '@dawngrad/tensor';
import { Var, constant, crossEntropy } from '@dawngrad/autograd';

export const IGNORE_INDEX = -100;

export interface ShiftedTargets {
  /** flat rows of [B*T] whose logits predict a label, i32 [N] */
  rows: Int32Array;
  /** the label each of those rows predicts, i32 [N] */
  targets: Int32Array;
}

/** Shift labels [B, T] by one: row b*T+t predicts labels[b, t+1]; keep only labelled rows. */
export function shiftLabels(labels: Int32Array, B: number, T: number): ShiftedTargets {
  const rows: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b * T + t + 1]!;
      if (y !== IGNORE_INDEX) {
        rows.push(b * T + t);
        targets.push(y);
      }
    }
  }
  return { rows: Int32Array.from(rows), targets: Int32Array.from(targets) };
}

/** Full-sequence targets [B*T]: labels shifted left by one, -100 where nothing is predicted. */
export function shiftedTargetsFull(labels: Int32Array, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1]!;
  return out;
}

/** Mean cross-entropy of logits [N, V] against targets i32 [N] (-100 ignored). */
export function causalLmLoss(logits: Var, targets: Int32Array): Var {
  return crossEntropy(logits, constant(Tensor.fromArray(targets, [targets.length], 'i32')), { ignoreIndex: IGNORE_INDEX });
}
