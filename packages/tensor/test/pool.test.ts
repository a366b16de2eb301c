// The buffer pool in steady state: a loop of ops inside scope() allocates no GPU buffers after its first iteration,
// and every byte it took goes back (bytesLive returns to its baseline). Batches whose length T changes every step
// (length bucketing) are served from the buffers of a longer one: a free buffer of a larger class, within
// LARGER_CLASS_LIMIT, stands in for an empty exact class — never one still live, never past the binding limit.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import {
  init, dispose, rt, Tensor, scope, BufferPool, sizeClass, LARGER_CLASS_LIMIT,
  add, unary, binary, sum, mean, max, argmax, sumTo, sumAll, softmax, logSoftmax,
  gatherRows, take, scatterAddRows, slice, concat, permute, transpose, broadcastTo, copy,
  where, maskedFill, cast, fill, zeros, arange,
} from '../src/index.ts';
import { uniform, ints } from './helpers.ts';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

/** A pool of its own on the real device that remembers every buffer it created (to check the stats against). */
function testPool(maxBufferSize = 1 << 30, maxBindingSize = Infinity) {
  const created: GPUBuffer[] = [];
  const device = {
    createBuffer: (d: GPUBufferDescriptor) => {
      const b = rt().device.createBuffer(d);
      created.push(b);
      return b;
    },
  } as unknown as GPUDevice;
  const pool = new BufferPool(device, maxBufferSize, maxBindingSize);
  const destroy = () => {
    pool.trim();
    for (const b of created) b.destroy();
  };
  return { pool, created, destroy };
}

describe('buffer pool', () => {
  it('a steady-state loop of every op family allocates nothing after the first iteration', async () => {
    const pool = rt().pool;
    // inputs live outside the loop: x: [B*T, C] activations, table: [V, C], ids: [B*T]
    const x = Tensor.fromArray(uniform(57 * 224, 1), [57, 224]);
    const table = Tensor.fromArray(uniform(100 * 224, 2), [100, 224]);
    const ids = Tensor.fromArray(ints(57, 3, 0, 99), [57]);
    const bias = Tensor.fromArray(uniform(224, 4), [224]);
    const long = Tensor.fromArray(uniform(100_000, 5), [100_000]); // takes the split-K path
    await rt().sync();
    const baseline = pool.stats.bytesLive;
    const allocations: number[] = [];
    for (let it = 0; it < 4; it++) {
      scope(() => {
        const h = add(gatherRows(table, ids), bias); // [57, 224]
        const p = softmax(binary('mul', h, x));
        const lp = logSoftmax(unary('silu', p));
        const m = mean(lp, [0, 1]);
        const s = sumTo(add(lp, bias), [224]);
        const g = scatterAddRows(lp, ids, 100);
        const picked = take(h, arange(7));
        const parts = concat([slice(h, [0, 0], [7, 224]), picked], 0);
        const t = transpose(permute(parts.reshape([14, 4, 56]), [2, 0, 1]), 0, 1);
        const masked = maskedFill(x, binary('gt', x, zeros([1])), -Infinity);
        const w = where(cast(argmax(x, 1, true), 'f32'), x, broadcastTo(bias, [57, 224]));
        const half = rt().ctx.hasF16 ? cast(cast(w, 'f16'), 'f32') : copy(w);
        return [m, s, g, t, masked, half, max(long), sum(long), sumAll(fill([3, 3], 2)), sum(x, 0)];
      }).forEach((t) => t.dispose());
      await rt().sync();
      allocations.push(pool.stats.allocations);
      expect(pool.stats.bytesLive, `bytesLive after iteration ${it}`).toBe(baseline);
    }
    // the first iteration may allocate; the later ones must reuse
    expect(allocations.slice(1)).toEqual([allocations[0], allocations[0], allocations[0]]);
    expect(pool.stats.reuses).toBeGreaterThan(0);
    for (const t of [x, table, ids, bias, long]) t.dispose();
  });

  it('ops that make temporaries give them back (no leak without a scope)', async () => {
    const pool = rt().pool;
    const long = Tensor.fromArray(uniform(100_000, 6), [4, 25_000]);
    const ids = Tensor.fromArray(ints(300, 7, 0, 9), [300]);
    const g = Tensor.fromArray(uniform(300 * 3, 8), [300, 3]);
    const before = pool.stats.bytesLive;
    const outs = [sum(long, 1), mean(long, [0, 1]), scatterAddRows(g, ids, 10), sum(long.reshape([4, 5, 5000]), [0, 2])];
    const outBytes = outs.reduce((a, t) => a + t.buffer.size, 0);
    expect(pool.stats.bytesLive - before).toBe(outBytes);
    outs.forEach((t) => t.dispose());
    expect(pool.stats.bytesLive).toBe(before);
  });

  it('steps whose length T changes every step allocate nothing after the longest one', () => {
    // one step's tensors at batch 16: x [B*T, 224] f32, the MLP's [B*T, 896] f32, attention scores [B, 4, T, T] f32,
    // ids [B*T] i32; the longest batch first, then shorter ones in mixed order
    const stepBytes = (T: number) => [16 * T * 224 * 4, 16 * T * 896 * 4, 16 * 4 * T * T * 4, 16 * T * 4];
    const Ts = [96, 90, 84, 79, 87, 77, 70];
    // every later step asks for a size class no earlier step asked for: exact-class free lists would miss each time
    const seen = new Set<number>();
    const newClasses = Ts.map((T) => {
      const classes = stepBytes(T).map(sizeClass);
      const n = classes.filter((c) => !seen.has(c)).length;
      classes.forEach((c) => seen.add(c));
      return n;
    });
    expect(newClasses.slice(1).every((n) => n > 0), `new classes per step: ${newClasses}`).toBe(true);

    const { pool, created, destroy } = testPool();
    const allocationsAfter: number[] = [];
    for (const T of Ts) {
      const bytes = stepBytes(T);
      const bufs = bytes.map((b) => pool.acquire(b)); // all live at once, as in a step
      bufs.forEach((buf, i) => expect(buf.size).toBeGreaterThanOrEqual(bytes[i]!));
      expect(pool.stats.bytesLive).toBe(bufs.reduce((a, b) => a + b.size, 0)); // real sizes, not the bytes asked for
      bufs.forEach((b) => pool.release(b));
      allocationsAfter.push(pool.stats.allocations);
    }
    expect(allocationsAfter[0]).toBe(stepBytes(96).length);
    expect(allocationsAfter, 'allocations after each step').toEqual(Ts.map(() => allocationsAfter[0]));
    expect(pool.stats.largerReuses).toBeGreaterThan(0);
    expect(pool.stats.bytesLive).toBe(0);
    expect(pool.stats.bytesPooled).toBe(created.reduce((a, b) => a + b.size, 0));
    destroy();
  });

  it('a larger buffer stands in only within LARGER_CLASS_LIMIT × the class, and goes back to its own class', () => {
    const { pool, destroy } = testPool();
    const big = pool.acquire(1 << 20); // 1 MiB
    pool.release(big);
    // a request whose class is half of 1 MiB may take it ...
    const half = pool.acquire((1 << 20) / LARGER_CLASS_LIMIT - 1000);
    expect(half).toBe(big);
    expect(pool.stats.bytesLive).toBe(1 << 20);
    expect(pool.stats.largerReuses).toBe(1);
    pool.release(half);
    // ... one whose class is smaller than that may not: it gets a buffer of its own class
    const small = pool.acquire((1 << 20) / LARGER_CLASS_LIMIT / 2);
    expect(small).not.toBe(big);
    expect(small.size).toBe(sizeClass((1 << 20) / LARGER_CLASS_LIMIT / 2));
    expect(pool.stats.allocations).toBe(2);
    // the 1 MiB buffer went back to the 1 MiB list: an exact request gets it, counted as a plain reuse
    const again = pool.acquire(1 << 20);
    expect(again).toBe(big);
    expect(pool.stats.largerReuses).toBe(1);
    expect(pool.stats.reuses).toBe(2);
    pool.release(small);
    pool.release(again);
    destroy();
  });

  it('a bindable request never gets a buffer past the binding limit', () => {
    const binding = 1 << 16; // 64 KiB: a pretend maxStorageBufferBindingSize
    const { pool, destroy } = testPool(1 << 30, binding);
    const unbindable = pool.acquire(100_000); // over the binding limit: only internal scratch asks for such sizes
    expect(unbindable.size).toBe(sizeClass(100_000));
    pool.release(unbindable);
    // 40,000 bytes: class 64 KiB; 2× would reach the free 128 KiB buffer, but it could not be bound
    const b = pool.acquire(40_000);
    expect(b).not.toBe(unbindable);
    expect(b.size).toBeLessThanOrEqual(binding);
    // a smaller request may take that 64 KiB buffer: larger, still bindable
    pool.release(b);
    const c = pool.acquire(20_000);
    expect(c).toBe(b);
    pool.release(c);
    destroy();
  });

  it('property: a buffer is never handed out twice while live, and the stats add up', () => {
    const binding = 1 << 18;
    // sizes from two narrow bands (small, and around the binding limit) so classes collide and larger reuses happen
    const bytes = fc.oneof(fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 100_000, max: 300_000 }));
    let largerReuses = 0;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), bytes }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 20, maxLength: 80 }), (ops) => {
        const { pool, created, destroy } = testPool(1 << 30, binding);
        const live: { buf: GPUBuffer; bytes: number }[] = [];
        try {
          for (const o of ops) {
            if (o.kind === 'acquire') {
              const buf = pool.acquire(o.bytes);
              expect(live.some((l) => l.buf === buf), `buffer of ${buf.size} bytes handed out twice`).toBe(false);
              expect(buf.size).toBeGreaterThanOrEqual(o.bytes);
              expect(buf.size).toBeLessThanOrEqual(LARGER_CLASS_LIMIT * sizeClass(o.bytes));
              if (o.bytes <= binding) expect(buf.size).toBeLessThanOrEqual(binding);
              live.push({ buf, bytes: o.bytes });
            } else if (live.length > 0) {
              pool.release(live.splice(o.pick % live.length, 1)[0]!.buf);
            }
            const liveBytes = live.reduce((a, l) => a + l.buf.size, 0);
            expect(pool.stats.bytesLive).toBe(liveBytes);
            expect(pool.stats.bytesPooled).toBe(created.reduce((a, b) => a + b.size, 0) - liveBytes);
            expect(pool.stats.allocations).toBe(created.length);
          }
          largerReuses += pool.stats.largerReuses;
        } finally {
          destroy();
        }
      }),
      { numRuns: 60 },
    );
    expect(largerReuses, 'the draws exercised the larger-class path').toBeGreaterThan(0);
  });
});
