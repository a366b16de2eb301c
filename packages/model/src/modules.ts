// The building blocks of the decoder, each holding its parameters under their Hugging Face names.
import { Tensor } from '@dawngrad/tensor';
import { Var, matmul, linearLowRank } from '@dawngrad/autograd';

/** A named parameter: its HF name and the Var holding it. */
export interface NamedParam {
  name: string;
  param: Var;
}

/**
 * A low-rank update the layer computes inside its own product: y = x·Wᵀ + scale·(x'·Aᵀ)·Bᵀ with A: [r, in], B: [out, r],
 * and x' = input(x) (LoRA's dropout while training) or x itself. LoRA plugs in here.
 */
export interface LowRankUpdate {
  A: Var;
  B: Var;
  scale: number;
  /** x' for the update's path; undefined (or returning x): x itself */
  input?: (x: Var) => Var;
}

/** y = x·Wᵀ with W in HF layout [out, in]; no bias (Mistral/Llama have none). */
export class Linear {
  /** a low-rank update fused into the layer's product (LoRA); null for a plain layer */
  lowRank: LowRankUpdate | null = null;

  constructor(
    /** module path, e.g. model.layers.0.self_attn.q_proj */
    readonly path: string,
    public weight: Var,
  ) {}

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  // x: [N, in] -> [N, out]
  forward(x: Var): Var {
    const lr = this.lowRank;
    const xd = lr?.input?.(x);
    return lr ? linearLowRank(x, this.weight, lr.A, lr.B, lr.scale, xd === x ? undefined : xd) : matmul(x, this.weight, { transB: true });
  }
}

/** Replace a Var's data in place (keeps graph identity for callers holding the Var). */
export function setData(v: Var, t: Tensor): void {
  v.data.dispose();
  v.data = t;
}

/** i32 [rows, n]: the RoPE positions start, start+1, ..., start+n-1 on every row. */
export function positionIds(rows: number, n: number, start: number): Tensor {
  return Tensor.fromArray(Int32Array.from({ length: rows * n }, (_, i) => start + (i % n)), [rows, n], 'i32');
}
