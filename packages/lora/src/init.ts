// Initial values of the LoRA factors, drawn on the CPU from a seeded generator (the factors are small: r × in and
// out × r) and uploaded once. PEFT's choices, reproduced:
//   true       A ~ kaiming_uniform_(a=√5) = U(−1/√in, 1/√in) (nn.Linear's default init), B = 0
//   'gaussian' A ~ N(0, σ = 1/r), B = 0            (PEFT: nn.init.normal_(A, std=1/r))
//   false      A and B both nn.Linear-default random (B ~ U(−1/√r, 1/√r)), so the adapter changes the output from
//              the start — useful in tests, not in training.
// With B = 0 the adapted model starts out exactly equal to the base model, and A's randomness lets B's gradient
// be non-zero from the first step.
import type { InitLoraWeights } from './config.ts';

export { mulberry32, type Rng } from '@dawngrad/tensor';
import type { Rng } from '@dawngrad/tensor';

/** n values from U(−bound, bound). */
export function uniform(rng: Rng, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  return out;
}

/** n values from N(0, std²) by Box–Muller (1 − u keeps the log away from 0). */
export function normal(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng()));
    const th = 2 * Math.PI * rng();
    out[i] = r * Math.cos(th) * std;
    if (i + 1 < n) out[i + 1] = r * Math.sin(th) * std;
  }
  return out;
}

/**
 * kaiming_uniform_(W, a=√5) for a weight [fanOut, fanIn]: gain = √(2/(1+a²)) = √(1/3), std = gain/√fanIn,
 * bound = √3·std = 1/√fanIn.
 */
export function kaimingUniformBound(fanIn: number): number {
  const gain = Math.sqrt(2 / (1 + 5));
  return Math.sqrt(3) * (gain / Math.sqrt(fanIn));
}

/** A: [r, inF] and B: [outF, r] as host arrays, per init_lora_weights. */
export function initLoraFactors(init: InitLoraWeights, r: number, inF: number, outF: number, rng: Rng): { a: Float32Array; b: Float32Array } {
  if (init === 'gaussian') return { a: normal(rng, r * inF, 1 / r), b: new Float32Array(outF * r) };
  const a = uniform(rng, r * inF, kaimingUniformBound(inF));
  const b = init === true ? new Float32Array(outF * r) : uniform(rng, outF * r, kaimingUniformBound(r));
  return { a, b };
}
