// Counting NaN and ±Infinity on the GPU: what anomaly detection (autograd's detectAnomaly) runs after every op.
// The test is on the bit pattern (all exponent bits set), not `x != x`: a shader compiler may assume floats are finite
// and fold `x != x` to false.
import { grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor } from '../kernel.ts';

const EXPONENT = 0x7f800000;

/**
 * Add the number of non-finite values of the f32 tensor `x` to `counts[slot]` (u32), on the GPU, without a readback.
 * `counts` must be zeroed by the caller; one counts buffer can serve many tensors, one slot each.
 */
export function countNonFinite(x: Tensor, counts: Tensor, slot = 0): void {
  if (x.dtype !== 'f32') throw new Error(`countNonFinite: needs f32, got ${x.dtype}`);
  if (counts.dtype !== 'u32') throw new Error(`countNonFinite: counts must be u32, got ${counts.dtype}`);
  if (!Number.isInteger(slot) || slot < 0 || slot >= counts.size) throw new Error(`countNonFinite: slot ${slot} is outside counts [${counts.size}]`);
  if (x.size === 0) return;
  kernelFor('countNonFinite', () => ({
    params: { n: 'u32', slot: 'u32' },
    bindings: { X: 'u32', Counts: 'rw atomic<u32>' },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  if ((X[i] & ${EXPONENT}u) == ${EXPONENT}u) { atomicAdd(&Counts[p.slot], 1u); }`,
  })).run({ X: x, Counts: counts }, { n: x.size, slot }, grid(Math.ceil(x.size / WG)));
}

/** The CPU twin: how many values are NaN or ±Infinity. */
export function countNonFiniteRef(x: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) n++;
  return n;
}
