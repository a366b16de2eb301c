// The per-kernel profiler: known dispatches show up under their keys with the right counts, the time lands on the
// kernel that spent it (a 1024³ matmul against a 16-element add), the totals add up to what the runtime counted,
// results are the same with it on, and with it off nothing observes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  init, dispose, rt, Tensor, unary, binary, matmul, ref,
  startProfile, stopProfile, profile, profiling, formatProfile, type ProfileReport,
} from '@dawngrad/tensor';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 7.3 + i * 0.37);
  return a;
}

const keyOf = (r: ProfileReport, prefix: string) => r.kernels.filter((k) => k.key.startsWith(prefix));

describe('profile', () => {
  it('reports each kernel with its dispatch count and non-zero GPU time', async () => {
    const a = Tensor.fromArray(seeded(64 * 48, 1), [64, 48]);
    const b = Tensor.fromArray(seeded(48 * 40, 2), [48, 40]);
    await rt().sync();
    const before = { ...rt().stats };
    startProfile();
    expect(profiling()).toBe(true);
    const outs = [matmul(a, b), binary('add', a, a), binary('add', a, a), unary('exp', a), unary('exp', a), unary('exp', a)];
    const r = await stopProfile();
    expect(profiling()).toBe(false);

    // elementwise ops are one dispatch each (matmul may take more than one: a repack, a split-K, ...)
    const mm = keyOf(r, 'matmul');
    const add = keyOf(r, 'binary:add');
    const ex = keyOf(r, 'unary:exp');
    expect(mm.reduce((s, k) => s + k.count, 0)).toBeGreaterThanOrEqual(1);
    expect(add.reduce((s, k) => s + k.count, 0)).toBe(2);
    expect(ex.reduce((s, k) => s + k.count, 0)).toBe(3);
    for (const k of [...mm, ...add, ...ex]) {
      expect(k.gpuMs).toBeGreaterThan(0);
      expect(k.encodeMs).toBeGreaterThan(0);
    }
    // every dispatch the runtime made is in the table, and the shares add up to 100%
    expect(r.dispatches).toBe(rt().stats.dispatches - before.dispatches);
    expect(r.kernels.reduce((s, k) => s + k.count, 0)).toBe(r.dispatches);
    expect(r.kernels.reduce((s, k) => s + k.share, 0)).toBeCloseTo(100, 6);
    expect(r.submits).toBeGreaterThanOrEqual(1);
    // the span from first begin to last end holds every kernel
    expect(r.gpuSpanMs).toBeGreaterThanOrEqual(r.gpuMs * 0.999);
    expect(r.kernels[0]!.gpuMs).toBeGreaterThanOrEqual(r.kernels.at(-1)!.gpuMs);
    expect(formatProfile(r)).toContain('unary:exp');

    // profiled results are the same numbers as the float64 reference says
    const want = ref.matmul(ref.array(seeded(64 * 48, 1), [64, 48]), ref.array(seeded(48 * 40, 2), [48, 40]));
    const got = await outs[0]!.toArray();
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want.data[i]!)).toBeLessThan(1e-4);
    for (const t of [a, b, ...outs]) t.dispose();
  });

  it('puts the time on the kernel that spent it: a 1024³ matmul takes far longer than a 16-element add', async () => {
    // 2·1024³ = 2.1 GFLOP against 16 additions (measured on lavapipe: 588 ms against 1.8 ms, 335×; a GPU launches the
    // add in microseconds, so the bound is a loose 10×). A profiler that shifted timestamps by a dispatch, averaged them
    // or timed the encoder instead of the GPU would not keep this order.
    const n = 1024;
    const a = Tensor.fromArray(seeded(n * n, 9), [n, n]);
    const b = Tensor.fromArray(seeded(n * n, 10), [n, n]);
    const x = Tensor.fromArray(seeded(16, 11), [16]);
    await rt().sync();
    const { report: r } = await profile(() => {
      binary('add', x, x).dispose();
      matmul(a, b).dispose();
      binary('add', x, x).dispose();
    });
    const ms = (prefix: string) => keyOf(r, prefix).reduce((s, k) => s + k.gpuMs, 0);
    const [mm, add] = [ms('matmul'), ms('binary:add') / 2];
    expect(add).toBeGreaterThan(0);
    expect(mm / add, `matmul ${mm.toFixed(3)} ms, add ${add.toFixed(4)} ms`).toBeGreaterThan(10);
    for (const t of [a, b, x]) t.dispose();
  });

  it('keeps counting across the flush forced by a full query set (more than 2,048 dispatches)', async () => {
    const x = Tensor.fromArray(seeded(16, 3), [16]);
    const { result: n, report: r } = await profile(() => {
      let y = x;
      for (let i = 0; i < 2100; i++) {
        const z = binary('add', y, x);
        if (y !== x) y.dispose();
        y = z;
      }
      y.dispose();
      return 2100;
    });
    expect(keyOf(r, 'binary:add').reduce((s, k) => s + k.count, 0)).toBe(n);
    expect(r.submits).toBeGreaterThanOrEqual(2);
    x.dispose();
  });

  it('groups by grid size or by uniforms when asked', async () => {
    const a = Tensor.fromArray(seeded(4096, 4), [4096]);
    const b = Tensor.fromArray(seeded(16, 5), [16]);
    const { report: r } = await profile(() => [unary('exp', a), unary('exp', b)].forEach((t) => t.dispose()), { by: 'grid' });
    const ex = keyOf(r, 'unary:exp');
    expect(ex.length).toBe(2);
    expect(ex.every((k) => /\[\d+,\d+,\d+\]$/.test(k.key) && k.count === 1)).toBe(true);
    // by uniforms: the first three of unary's are (n, c) — n counts vec4s when the size allows, so use odd sizes
    const m = Tensor.fromArray(seeded(13, 7), [13]);
    const n = Tensor.fromArray(seeded(7, 8), [7]);
    const { report: q } = await profile(() => [unary('mulScalar', m, 2), unary('mulScalar', n, 3)].forEach((t) => t.dispose()), { by: 'params' });
    expect(keyOf(q, 'unary:mulScalar').map((k) => k.key.replace(/^.* /, '')).sort()).toEqual(['(13,2)', '(7,3)']);
    m.dispose();
    n.dispose();
    a.dispose();
    b.dispose();
  });

  it('off: no observer, no extra passes or submits, and misuse is a clear error', async () => {
    expect(rt().observer).toBeNull();
    await expect(stopProfile()).rejects.toThrow(/no profile is running/);
    startProfile();
    expect(() => startProfile()).toThrow(/already running/);
    await stopProfile();
    expect(rt().observer).toBeNull();
    // unprofiled: the same work is one submit at sync, however many dispatches it holds
    const a = Tensor.fromArray(seeded(256, 6), [256]);
    await rt().sync();
    const s0 = rt().stats.submits;
    const ys = [unary('exp', a), unary('exp', a), unary('exp', a)];
    await rt().sync();
    expect(rt().stats.submits - s0).toBe(1);
    for (const t of [a, ...ys]) t.dispose();
  });
});
