// A/B of attention's two kernel families (4×4 blocks vs subgroup tiles) at one shape, forward + backward, on a
// loaded machine: interleaved calls, per-round CPU-time ratio, median over rounds.
//   B=16 T=77 H=4 KV=2 D=56 pnpm exec tsx bench/src/tune/attention-ab.ts
import { init, dispose, rt, Tensor } from '@dawngrad/tensor';
import { attention, setAttentionKernels, param, backward } from '@dawngrad/autograd';
await init();
const [B, T, H, KV, D] = ['B', 'T', 'H', 'KV', 'D'].map((k, i) => Number(process.env[k] ?? [16, 77, 4, 2, 56][i]));
const rand = (n: number) => new Float32Array(n).map(() => Math.random() - 0.5);
const q = param(Tensor.fromArray(rand(B * T * H * D), [B, T, H, D]));
const k = param(Tensor.fromArray(rand(B * T * KV * D), [B, T, KV, D]));
const v = param(Tensor.fromArray(rand(B * T * KV * D), [B, T, KV, D]));
const mask = Tensor.fromArray(Int32Array.from({ length: B * T }, (_, i) => +(i % T >= (i * 7) % 11)), [B, T]); // some left padding
const seed = Tensor.fromArray(rand(B * T * H * D), [B, T, H, D]);
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
async function cpuMs(kind: 'blocked' | 'subgroup'): Promise<number> {
  setAttentionKernels(kind);
  const c0 = process.cpuUsage();
  backward(attention(q, k, v, mask), { seed });
  await rt().sync();
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
}
await cpuMs('blocked');
await cpuMs('subgroup');
const ratio: number[] = [], a: number[] = [], b: number[] = [];
for (let r = 0; r < Number(process.env.ROUNDS ?? 8); r++) {
  const x = await cpuMs('blocked'), y = await cpuMs('subgroup'), x2 = await cpuMs('blocked');
  a.push(Math.min(x, x2)); b.push(y); ratio.push(y / Math.min(x, x2));
}
console.log(`attention [B ${B}, T ${T}, H ${H}, KV ${KV}, D ${D}] forward + backward, CPU ms: blocked ${med(a).toFixed(1)}, subgroup ${med(b).toFixed(1)}; subgroup/blocked ${med(ratio).toFixed(2)}`);
dispose();
