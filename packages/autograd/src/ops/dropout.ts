// Inverted dropout: y = x·mask/(1−p), mask[i] = 1 with probability 1−p. The mask is not stored: it is a pure
// function of (seed, flat element index) — a stateless hash — so the backward regenerates it, and the CPU twin
// below computes bit-for-bit the same mask. The caller picks a fresh seed per step and per call site.
//
// The hash: PCG's output permutation (O'Neill; the "pcg_hash" of Jarzynski & Olano, "Hash Functions for GPU
// Rendering", 2020) applied twice, h = pcg(index + pcg(seed)). Element i is kept iff h ≥ threshold, threshold =
// round(p·2³²): an integer comparison, so GPU and CPU agree exactly, with P(keep) = 1 − threshold/2³².
import { ref, grid, Tensor, WG, FLAT_INDEX, defineKernel } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

export interface DropoutAttrs {
  /** drop probability, 0 ≤ p < 1 */
  p: number;
  /** the mask's seed (u32); same seed and shape, same mask */
  seed: number;
}

const PCG_WGSL = `
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}`;

/** The same hash on the CPU, in u32 arithmetic. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The integer a hash must reach for its element to be kept. */
function threshold(p: number): number {
  return Math.min(Math.round(p * 2 ** 32), 2 ** 32 - 1);
}

/** Whether element i is kept under (seed, p): the CPU twin of the kernel's mask. */
export function dropoutKeeps(i: number, seed: number, p: number): boolean {
  return pcgHash((i + pcgHash(seed)) >>> 0) >= threshold(p);
}

// x: [...] -> y: [...]; the backward runs the same kernel on g (the mask and the scale are the same)
const maskKernel = defineKernel({
  name: 'dropoutMask',
  params: { n: 'u32', seedHash: 'u32', threshold: 'u32', scale: 'f32' },
  bindings: { X: 'f32', Y: 'rw f32' },
  decls: PCG_WGSL,
  body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let keep = pcg(i + p.seedHash) >= p.threshold;
  Y[i] = select(0.0, X[i] * p.scale, keep);`,
});

function applyMask(x: Tensor, { p, seed }: DropoutAttrs): Tensor {
  const y = Tensor.empty(x.shape, 'f32');
  maskKernel.run({ X: x, Y: y }, { n: x.size, seedHash: pcgHash(seed), threshold: threshold(p), scale: 1 / (1 - p) }, grid(Math.ceil(x.size / WG)));
  return y;
}

function cpuMask(x: F64, { p, seed }: DropoutAttrs): F64 {
  const scale = Math.fround(1 / (1 - p)); // the kernel's f32 scale, so twins agree to rounding
  return { shape: [...x.shape], data: x.data.map((v, i) => (dropoutKeeps(i, seed, p) ? v * scale : 0)) };
}

export const DROPOUT = defineOp<DropoutAttrs>({
  name: 'dropout',
  rule: 'dx = g·mask/(1−p), the mask regenerated from (seed, index)',
  forward([x], a) {
    if (x!.dtype !== 'f32') throw new Error(`dropout: needs f32, got ${x!.dtype}`);
    return applyMask(x!, a);
  },
  backward: (g, { attrs }) => [applyMask(g, attrs)],
  cpu: {
    forward: ([x], a) => cpuMask(x!, a),
    backward: (g, { attrs }) => [cpuMask(g, attrs)],
  },
});

export interface DropoutOptions {
  /** the mask's seed (an integer, used as u32) */
  seed: number;
  /** false: the identity (evaluation) */
  training?: boolean;
}

/** Inverted dropout; the identity (x itself, nothing recorded) when !training or p = 0. */
export function dropout(x: Var, p: number, { seed, training = true }: DropoutOptions): Var {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!Number.isInteger(seed)) throw new Error(`dropout: seed must be an integer, got ${seed}`);
  if (!training || p === 0) return x;
  return apply(DROPOUT, [x], { p, seed: seed >>> 0 });
}
