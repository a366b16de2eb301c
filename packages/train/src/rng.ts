// Seeded pseudo-random numbers for data order, sampling and subsets.
//
// Everything random in training (which tweets, in which order) must be reproducible from one integer seed, and
// Math.random() cannot be seeded. The generator itself (mulberry32) lives in @dawngrad/tensor, shared by every package.

import { mulberry32, type Rng } from '@dawngrad/tensor';

export { mulberry32, type Rng };

/** A uniform integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`randomInt needs a positive integer bound, got ${n}`);
  return Math.floor(rng() * n);
}

/** Fisher–Yates shuffle of `items` in place (every permutation equally likely); returns the same array. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}

/** A seeded random permutation of 0..n-1: the trainer's data order for one epoch (e.g. seed + epoch). */
export function permutation(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`permutation size must be a non-negative integer, got ${n}`);
  const idx = Array.from({ length: n }, (_, i) => i);
  return shuffleInPlace(idx, mulberry32(seed));
}

/**
 * k distinct indices drawn uniformly from 0..n-1, returned in increasing order (so a sample keeps file order).
 * Uses a partial Fisher–Yates shuffle: O(n) memory, O(k) random draws.
 */
export function sampleIndices(n: number, k: number, seed: number): number[] {
  if (!Number.isInteger(k) || k < 0) throw new Error(`sample size must be a non-negative integer, got ${k}`);
  if (k > n) throw new Error(`cannot sample ${k} items from ${n}`);
  const rng = mulberry32(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + randomInt(rng, n - i);
    const tmp = idx[i];
    idx[i] = idx[j];
    idx[j] = tmp;
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}
