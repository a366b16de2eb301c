// Seeded pseudo-random numbers for data order, sampling and subsets.
//
// Everything random in training (which tweets, in which order) must be reproducible from one integer seed, and
// Math.random() cannot be seeded. mulberry32 is a tiny 32-bit generator (Tommy Ettinger's constants): good enough
// statistical quality for shuffling, fast, and short enough to read.

/** A generator of uniform floats in [0, 1). */
export type Rng = () => number;

/** Validates a seed: any safe integer (negative and large values are folded to 32 bits). */
function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  // Fold the high bits in so that seeds 2^32 apart still differ.
  return (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
}

/** mulberry32: a seeded generator of uniform floats in [0, 1) with a period of 2^32. */
export function mulberry32(seed: number): Rng {
  let a = checkSeed(seed);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
