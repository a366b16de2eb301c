// Merging folds an adapter into its base weight: W' = W + scale·B·A ([out, r]·[r, in] = [out, in]). The merged model
// computes the same function with no adapter overhead (inference, export); unmerge subtracts the same product and
// gets W back up to f32 rounding. Both run on the GPU as one matmul accumulating into W; B·A appears nowhere else.
import * as T from '@dawngrad/tensor';
import type { LoraLayer } from './lora.ts';

/** scale·B·A: [out, in], the layer's weight update (a new tensor; merge itself does not need it). */
export function deltaWeight(l: LoraLayer): T.Tensor {
  return T.matmul(l.B.data, l.A.data, { alpha: l.scale }); // [out, r]·[r, in]
}

// W ± scale·B·A accumulated into W's own buffer by the matmul: no [out, in] temporary
function fold(l: LoraLayer, sign: 1 | -1): void {
  T.matmul(l.B.data, l.A.data, { alpha: sign * l.scale, accumulate: l.linear.weight.data });
}

/** W += scale·B·A; the adapter is unplugged from the layer (its update now lives in W). */
export function mergeLayer(l: LoraLayer): void {
  if (l.merged) throw new Error(`merge: ${l.path} is already merged`);
  fold(l, 1);
  l.linear.lowRank = null;
  l.merged = true;
}

/** W −= scale·B·A and plug the adapter back in. */
export function unmergeLayer(l: LoraLayer): void {
  if (!l.merged) throw new Error(`unmerge: ${l.path} is not merged`);
  fold(l, -1);
  l.linear.lowRank = l.update;
  l.merged = false;
}
