// Counting NaN and ±Infinity on the GPU: what anomaly detection (autograd's detectAnomaly) runs after every op.
// The test is on the bit pattern (all exponent bits set), not `x != x`: a shader compiler may assume floats are finite
// and fold `x != x` to false.
import { rt, grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG, FLAT_INDEX, MAIN_SIG } from './elementwise.ts';

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
  rt().dispatch({
    kernel: {
      key: 'countNonFinite',
      wgsl: () => `
struct P { n: u32, slot: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<atomic<u32>>;
${MAIN_SIG} {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  if ((X[i] & ${EXPONENT}u) == ${EXPONENT}u) { atomicAdd(&C[p.slot], 1u); }
}`,
    },
    buffers: [x.buffer, counts.buffer],
    params: [x.size, slot],
    workgroups: grid(Math.ceil(x.size / WG)),
  });
}

/** The CPU twin: how many values are NaN or ±Infinity. */
export function countNonFiniteRef(x: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) n++;
  return n;
}
