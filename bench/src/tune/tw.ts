// A/B of the uniform path's window width (MMTW env, read per call): interleaved, CPU-time ratio medians.
import { init, dispose, Tensor, matmul, rt } from '@dawngrad/tensor';
await init();
const tws = (process.env.TWS ?? '32,64').split(',');
const cases = (process.env.CASES ?? 'nt:1280:896:224').split(';');
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
for (const c of cases) {
  const [tr, m, n, k] = c.split(':');
  const [M, N, K] = [Number(m), Number(n), Number(k)];
  const tA = tr![0] === 't', tB = tr![1] === 't';
  const A = Tensor.fromArray(new Float32Array(M * K).map(() => Math.random() - 0.5), tA ? [K, M] : [M, K]);
  const B = Tensor.fromArray(new Float32Array(K * N).map(() => Math.random() - 0.5), tB ? [N, K] : [K, N]);
  const run = async (tw: string) => {
    process.env.MMTW = tw;
    const c0 = process.cpuUsage(), w0 = performance.now();
    matmul(A, B, { transA: tA, transB: tB }).dispose();
    await rt().sync();
    const d = process.cpuUsage(c0);
    return { cpu: (d.user + d.system) / 2000, wall: performance.now() - w0 };
  };
  for (const tw of tws) await run(tw);
  const res: Record<string, { cpu: number[]; wall: number[] }> = Object.fromEntries(tws.map((t) => [t, { cpu: [], wall: [] }]));
  for (let r = 0; r < Number(process.env.ROUNDS ?? 6); r++) for (const tw of tws) { const x = await run(tw); res[tw]!.cpu.push(x.cpu); res[tw]!.wall.push(x.wall); }
  const gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  console.log(`${c.padEnd(20)} ${tws.map((t) => `TW${t}: cpu ${gf(med(res[t]!.cpu))} wall ${gf(med(res[t]!.wall))} GF/s`).join(' | ')}`);
  A.dispose(); B.dispose();
}
dispose();
