// The matrix products one training step of a model runs, as shapes for the matmul autotuner: every linear layer's
// forward x·Wᵀ and input gradient g·W at the given row counts, and the head at its few rows a sequence. (LoRA's own
// rank-r products take the thin kernels, which have no tiles to tune.)
import type { TuneShape } from '@dawngrad/tensor';
import type { ModelConfig } from './config.ts';

/** rows: the row counts to tune for (e.g. B·T of the step, and the shared prefix's length); headRows: the head's. */
export function stepMatmulShapes(cfg: ModelConfig, rows: number[], headRows: number, f16B = false): TuneShape[] {
  const { hiddenSize: C, intermediateSize: I, numAttentionHeads: H, numKeyValueHeads: KV, headDim: D, vocabSize: V } = cfg;
  // [out, in] of every distinct linear layer of a decoder layer
  const linears: [number, number][] = [
    [H * D, C], // q
    [KV * D, C], // k, v
    [C, H * D], // o
    [I, C], // gate, up
    [C, I], // down
  ];
  const shapes: TuneShape[] = [];
  for (const M of rows) {
    for (const [out, inF] of linears) {
      shapes.push({ M, N: out, K: inF, transB: true, f16B }); // y = x·Wᵀ
      shapes.push({ M, N: inF, K: out, f16B }); // dx = g·W
    }
  }
  shapes.push({ M: headRows, N: V, K: C, transB: true, f16B }); // logits at the answer rows
  shapes.push({ M: headRows, N: C, K: V, f16B }); // their gradient into the last hidden states
  return shapes;
}
