// The one seeded pseudo-random generator of the project: data order, LoRA initialisation, sampling and tests all draw
// from it, so a run is reproducible from one integer seed (Math.random() cannot be seeded).
// mulberry32 (Tommy Ettinger's constants): 32 bits of state, fast, good enough for shuffling and initialisation.

/** A generator of uniform floats in [0, 1). */
export type Rng = () => number;

/** mulberry32 seeded with any safe integer (the high bits are folded in, so seeds 2^32 apart still differ). */
export function mulberry32(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  let a = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
