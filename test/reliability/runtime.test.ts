// Runtime failures through the API: a tensor too big for the adapter says which limit and by how much, and a lost
// device makes the next op throw Dawn's reason instead of turning every later op into a silent no-op.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { init, dispose, rt, Tensor, BufferPool, add, countNonFinite, countNonFiniteRef, fill } from '@dawngrad/tensor';

beforeAll(async () => {
  await init();
});
afterAll(() => dispose());

describe('device limits', () => {
  it('a tensor over maxStorageBufferBindingSize names the limit and the overshoot, and allocates nothing', () => {
    // the adapter's own limit (128 MiB on lavapipe, 2 GiB on an H200), whatever it is, even one that is not a multiple of 4
    const limit = rt().ctx.limits.maxStorageBufferBindingSize;
    const before = { ...rt().pool.stats };
    const n = Math.floor(limit / 4) + 3; // three f32 too many
    expect(() => Tensor.empty([n], 'f32')).toThrow(
      new RegExp(`tensor \\[${n}\\] f32 needs ${n * 4} bytes, over the adapter's maxStorageBufferBindingSize \\(${limit} bytes\\) by ${n * 4 - limit} bytes`),
    );
    expect(rt().pool.stats.allocations).toBe(before.allocations);
    expect(rt().pool.stats.bytesLive).toBe(before.bytesLive);
  });

  it('a buffer over maxBufferSize names the limit and a positive overshoot', () => {
    // a pool with a small pretend limit: the real one (4 GiB on lavapipe, 1 TiB on an H200) is too big to approach in a test
    const max = 1_000_000;
    const pool = new BufferPool(rt().device, max, 1 << 16);
    expect(() => pool.acquire(max + 100)).toThrow(/tensor of 1000100 bytes exceeds the adapter's maxBufferSize \(1000000 bytes\) by 100 bytes/);
    // just under the limit: its size class (1 MiB) would round past it, so it gets its exact size instead of an error
    const buf = pool.acquire(max - 992);
    expect(buf.size).toBe(max - 992);
    pool.release(buf);
    pool.trim();
  });
});

describe('non-finite counting (what --detect-anomaly runs after every op)', () => {
  it('counts NaN and ±Infinity by bit pattern, as the CPU twin does', async () => {
    const values = [1, NaN, -0, Infinity, 3.4e38, -Infinity, 1e-45, NaN, -2]; // all exact or finite in f32
    const x = Tensor.fromArray(values);
    const counts = fill([3], 0, 'u32');
    countNonFinite(x, counts, 1);
    countNonFinite(x, counts, 1); // counts accumulate
    const got = (await counts.toArray()) as Uint32Array;
    expect([...got]).toEqual([0, 2 * countNonFiniteRef(values), 0]);
    expect(countNonFiniteRef(values)).toBe(4);
    x.dispose();
    counts.dispose();
  });
});

describe('device lost', () => {
  it("the next op after a loss throws Dawn's reason; dispose() + init() recovers", async () => {
    const a = Tensor.fromArray([1, 2, 3]);
    const device = rt().ctx.device;
    device.destroy(); // what a driver reset or an external destroy() does
    const info = await device.lost;
    await Promise.resolve(); // the runtime's handler runs on the same resolution, just after ours
    const lost = /WebGPU device lost \(destroyed\): .*dispose\(\) and init\(\) again/;
    expect(() => Tensor.fromArray([1])).toThrow(lost);
    expect(() => add(a, a)).toThrow(lost);
    await expect(a.toArray()).rejects.toThrow(lost);
    expect(info.reason).toBe('destroyed');
    expect(() => Tensor.fromArray([1])).toThrow(new RegExp(info.message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    dispose();
    await init();
    const b = Tensor.fromArray([4, 5]);
    expect([...((await add(b, b).toArray()) as Float32Array)]).toEqual([8, 10]);
  });
});
