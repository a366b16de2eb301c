// Compile time of each matmul pipeline (run with MESA_SHADER_CACHE_DISABLE=true for cold numbers).
import { init, dispose, Tensor, matmul, setMatmulPath, rt } from '@dawngrad/tensor';
await init();
const cases = (process.env.CASES ?? 'subgroup:nn:8:8:8;subgroup:tt:8:8:8;subgroup:nn:7:7:7;tiled:nn:8:8:8').split(';');
for (const c of cases) {
  const [path, tr, m, n, k] = c.split(':');
  const [M, N, K] = [Number(m), Number(n), Number(k)];
  setMatmulPath(path as 'subgroup' | 'tiled');
  const tA = tr![0] === 't', tB = tr![1] === 't';
  const A = Tensor.fromArray(new Float32Array(M * K).fill(1), tA ? [K, M] : [M, K]);
  const B = Tensor.fromArray(new Float32Array(K * N).fill(1), tB ? [N, K] : [K, N]);
  await rt().sync();
  const t0 = performance.now();
  const C = matmul(A, B, { transA: tA, transB: tB });
  await C.toArray();
  console.log(`${c.padEnd(24)} ${(performance.now() - t0).toFixed(0)} ms`);
}
dispose();
