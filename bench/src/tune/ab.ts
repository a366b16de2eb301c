// A/B of two matmul paths on a loaded machine: interleaved calls, per-round CPU-time ratio, median over rounds.
//   AB=uniform,subgroup CASES='nn:1024:1024:1024;nt:48:32768:224' pnpm exec tsx bench/src/tune/ab.ts
import { init, dispose, Tensor, matmul, setMatmulPath, rt, type MatmulPath } from '@dawngrad/tensor';
await init();
const [pa, pb] = (process.env.AB ?? 'uniform,subgroup').split(',') as [MatmulPath, MatmulPath];
const cases = (process.env.CASES ?? 'nn:512:512:512').split(';');
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
for (const c of cases) {
  const [tr, m, n, k] = c.split(':');
  const [M, N, K] = [Number(m), Number(n), Number(k)];
  const tA = tr![0] === 't', tB = tr![1] === 't';
  const A = Tensor.fromArray(new Float32Array(M * K).map(() => Math.random() - 0.5), tA ? [K, M] : [M, K]);
  const B = Tensor.fromArray(new Float32Array(K * N).map(() => Math.random() - 0.5), tB ? [N, K] : [K, N]);
  const cpu = async (p: MatmulPath) => {
    setMatmulPath(p);
    const c0 = process.cpuUsage();
    matmul(A, B, { transA: tA, transB: tB }).dispose();
    await rt().sync();
    const d = process.cpuUsage(c0);
    return (d.user + d.system) / 2000;
  };
  await cpu(pa); await cpu(pb);
  const ra: number[] = [], rb: number[] = [], ratio: number[] = [];
  for (let r = 0; r < Number(process.env.ROUNDS ?? 8); r++) {
    const x = await cpu(pa), y = await cpu(pb), x2 = await cpu(pa);
    ra.push(Math.min(x, x2)); rb.push(y); ratio.push(y / Math.min(x, x2));
  }
  const gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  console.log(`${c.padEnd(20)} ${pa} ${gf(med(ra))} GF/s  ${pb} ${gf(med(rb))} GF/s   ${pb}/${pa} time ratio median ${med(ratio).toFixed(2)}`);
  A.dispose(); B.dispose();
}
setMatmulPath(null);
dispose();
