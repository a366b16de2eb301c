// Time the real matmul at given shapes: min over rounds of CPU time/2 (robust to other load) and wall time.
//   MPATH=uniform|subgroup|tiled CASES='nt:1280:896:224;nn:1024:1024:1024' pnpm exec tsx bench/src/tune/shapes.ts
import { init, dispose, Tensor, matmul, setMatmulPath, rt, type MatmulPath } from '@dawngrad/tensor';
await init();
if (process.env.MPATH) setMatmulPath(process.env.MPATH as MatmulPath);
const cases = (process.env.CASES ?? 'nn:1024:1024:1024').split(';');
const prepared = cases.map((c) => {
  const [tr, m, n, k] = c.split(':');
  const [M, N, K] = [Number(m), Number(n), Number(k)];
  const tA = tr![0] === 't', tB = tr![1] === 't';
  const A = Tensor.fromArray(new Float32Array(M * K).map(() => Math.random() - 0.5), tA ? [K, M] : [M, K]);
  const B = Tensor.fromArray(new Float32Array(K * N).map(() => Math.random() - 0.5), tB ? [N, K] : [K, N]);
  const run = () => matmul(A, B, { transA: tA, transB: tB }).dispose();
  return { c, flops: 2 * M * N * K, run, cpu: Infinity, wall: Infinity };
});
for (const p of prepared) { p.run(); await rt().sync(); }
for (let r = 0; r < Number(process.env.ROUNDS ?? 5); r++) {
  for (const p of prepared) {
    const c0 = process.cpuUsage(), w0 = performance.now();
    p.run(); await rt().sync();
    const c = process.cpuUsage(c0);
    p.cpu = Math.min(p.cpu, (c.user + c.system) / 2000); p.wall = Math.min(p.wall, performance.now() - w0);
  }
}
for (const p of prepared) console.log(`${p.c.padEnd(22)} cpu/2 ${p.cpu.toFixed(1).padStart(7)} ms ${(p.flops / p.cpu / 1e6).toFixed(2).padStart(6)} GF/s | wall ${p.wall.toFixed(1).padStart(7)} ms ${(p.flops / p.wall / 1e6).toFixed(2).padStart(6)} GF/s`);
dispose();
