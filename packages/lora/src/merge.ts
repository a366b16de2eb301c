// Merging folds an adapter into its base weight: W' = W + scale·B·A ([out, r]·[r, in] = [out, in]). The merged model
// computes the same function with no adapter overhead (inference, export); unmerge subtracts the same product and
// gets W back up to f32 rounding. Both run on the GPU; B·A is formed here and nowhere else.
import * as T from '@dawngrad/tensor';
import { scope } from '@dawngrad/tensor';
import { setData } from '@dawngrad/model';
import type { LoraLayer } from './lora.ts';

/** scale·B·A: [out, in], the layer's weight update. */
export function deltaWeight(l: LoraLayer): T.Tensor {
  return scope(() => T.unary('mulScalar', T.matmul(l.B.data, l.A.data), l.scale)); // [out, r]·[r, in]
}

function fold(l: LoraLayer, sign: 1 | -1): void {
  const w = l.linear.weight;
  const next = scope(() => {
    const d = deltaWeight(l);
    return sign > 0 ? T.add(w.data, d) : T.sub(w.data, d); // W ± scale·B·A: [out, in]
  });
  setData(w, T.keep(next));
}

/** W += scale·B·A; the adapter is unplugged from the layer (its update now lives in W). */
export function mergeLayer(l: LoraLayer): void {
  if (l.merged) throw new Error(`merge: ${l.path} is already merged`);
  fold(l, 1);
  l.linear.adapters = l.linear.adapters.filter((a) => a !== l.adapter);
  l.merged = true;
}

/** W −= scale·B·A and plug the adapter back in. */
export function unmergeLayer(l: LoraLayer): void {
  if (!l.merged) throw new Error(`unmerge: ${l.path} is not merged`);
  fold(l, -1);
  l.linear.adapters.push(l.adapter);
  l.merged = false;
}
