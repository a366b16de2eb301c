// The matmul autotuner, with the GPU family forced onto this adapter: it times every candidate, keeps the fastest per
// shape class, drops a candidate that computes something else, and its table round-trips.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, setMatmulPath, tuneMatmul, tunedTable, loadTuned, gemmTileFor, kernelPolicy, shapeClass } from '../src/index.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => {
  setMatmulPath(null);
  dispose();
});

describe('tuneMatmul', () => {
  it('does nothing where the matmul family has no tiles (a CPU adapter)', async () => {
    setMatmulPath(null);
    if (kernelPolicy().matmul !== 'tiled') expect(await tuneMatmul([{ M: 64, N: 64, K: 64 }])).toEqual([]);
  });

  it('times every tile, records the fastest for the shape class, and the table round-trips', async () => {
    setMatmulPath('tiled');
    try {
      const [r] = await tuneMatmul([{ M: 40, N: 72, K: 64, transB: true }, { M: 48, N: 72, K: 64, transB: true }], { reps: 1 });
      expect(r!.shapeClass).toBe(shapeClass(40, 72, 64, 1, false, true)); // both shapes are one class: tuned once
      const finite = Object.entries(r!.ms).filter(([, t]) => Number.isFinite(t));
      expect(finite.length).toBeGreaterThanOrEqual(5);
      expect(r!.ms[r!.best]).toBe(Math.min(...finite.map(([, t]) => t)));
      const table = tunedTable();
      expect(gemmTileFor(40, 72, 64, 1, false, true)).toEqual(table[r!.shapeClass]);
      kernelPolicy().tuned = {};
      loadTuned(JSON.parse(JSON.stringify(table)));
      expect(gemmTileFor(40, 72, 64, 1, false, true)).toEqual(table[r!.shapeClass]);
    } finally {
      kernelPolicy().tuned = {};
      setMatmulPath(null);
    }
  }, 600_000); // six tiles to compile: seconds each on a CPU adapter
});
