// matmul GFLOP/s: square sizes and the products of one training step of the tiny model (T·B = 1280 rows, hidden 224,
// MLP 896, vocab 32768, LoRA r = 8), forward and backward forms, transposes as the model passes them.
// Peers on the same adapter: tfjs-webgpu (transposes as flags too) and webgpu-torch (contiguous operands: a
// transposed case gets op(A), op(B) materialised beforehand); on the CPU: numpy/OpenBLAS and a plain JS loop.
// Also our other kernels forced onto this adapter ('subgroup': storage-buffer loads; 'tiled': the discrete-GPU kernel):
// the measured reason for the adapter's choice (columns named after them; 'ours' is the adapter's default).
import { Tensor, matmul, matmulPath, setMatmulPath, rt, type MatmulPath } from '@dawngrad/tensor';
import type { Bench, BenchContext, MatmulCase, Row } from '../lib/types.ts';
import os from 'node:os';
import { timeGpu, gflops, ms as toMs, rowsFor, type Ms } from '../lib/timing.ts';
import { tfjs } from '../peers/tfjs.ts';
import { webgpuTorch } from '../peers/webgpu-torch.ts';
import { runNumpy } from '../peers/numpy.ts';
import { matmulJs } from '../peers/plain-js.ts';
import { mulberry32 } from '@dawngrad/tensor';

type Case = MatmulCase;

const CASES: Case[] = [
  { name: '256² A·B', M: 256, N: 256, K: 256 },
  { name: '512² A·B', M: 512, N: 512, K: 512 },
  { name: '1024² A·B', M: 1024, N: 1024, K: 1024 },
  { name: 'up/gate x·Wᵀ [1280×224]·[896×224]ᵀ', M: 1280, N: 896, K: 224, transB: true },
  { name: 'down x·Wᵀ [1280×896]·[224×896]ᵀ', M: 1280, N: 224, K: 896, transB: true },
  { name: 'q/o x·Wᵀ [1280×224]·[224×224]ᵀ', M: 1280, N: 224, K: 224, transB: true },
  { name: 'lm_head [48×224]·[32768×224]ᵀ', M: 48, N: 32768, K: 224, transB: true },
  { name: 'dx = dy·W [1280×896]·[896×224]', M: 1280, N: 224, K: 896 },
  { name: 'dW = dyᵀ·x [1280×896]ᵀ·[1280×224]', M: 896, N: 224, K: 1280, transA: true },
  { name: 'LoRA x·Aᵀ [1280×224]·[8×224]ᵀ', M: 1280, N: 8, K: 224, transB: true },
  { name: 'LoRA h·Bᵀ [1280×8]·[896×8]ᵀ', M: 1280, N: 896, K: 8, transB: true },
];

const JS_MAX_FLOPS = 40e6; // the plain JS loop runs at ~1 GFLOP/s: small cases only
const TILED_MAX_FLOPS = 300e6; // the discrete-GPU kernel crawls on lavapipe: forced there on the smaller cases only
const OTHER_KERNELS: MatmulPath[] = ['uniform', 'subgroup', 'tiled'];
const PEERS = ['subgroup', 'tiled', 'tfjs-webgpu', 'webgpu-torch', 'numpy', 'plain-js'];

function random(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** op(X) as a contiguous row-major [rows, cols] array, from X stored [cols, rows] when transposed. */
function materialise(x: Float32Array, rows: number, cols: number, transposed: boolean): Float32Array {
  if (!transposed) return x;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = x[c * rows + r]!;
  return out;
}

export const matmulBench: Bench = {
  name: 'matmul',
  title: 'matmul (GFLOP/s, higher is better)',
  peers: PEERS,
  async run(ctx: BenchContext) {
    const budget = ctx.quick ? 250 : 1000;
    const rows: Row[] = [];
    const rowsCpu: Row[] = [];
    const cores = os.cpus().length;
    const tf = await tfjs(ctx.log);
    const torch = await webgpuTorch(ctx.log);
    const np = runNumpy(
      CASES.map((c) => ({ op: 'matmul' as const, M: c.M, N: c.N, K: c.K, transA: !!c.transA, transB: !!c.transB })),
      budget,
      ctx.log,
    );
    const path = matmulPath();
    for (const [i, c] of CASES.entries()) {
      const flops = 2 * c.M * c.N * c.K;
      const av = random(c.M * c.K, 2 * i + 1);
      const bv = random(c.K * c.N, 2 * i + 2);
      const aShape = c.transA ? [c.K, c.M] : [c.M, c.K];
      const bShape = c.transB ? [c.N, c.K] : [c.K, c.N];
      const opts = { transA: !!c.transA, transB: !!c.transB };
      const ms: Record<string, Ms | null> = {};
      const notes: Record<string, unknown> = { kernel: path };

      // ours, on the kernel this adapter gets, then our other kernels forced (the measured reason for the choice)
      const A = Tensor.fromArray(av, aShape);
      const B = Tensor.fromArray(bv, bShape);
      const ours = async () => {
        const C = matmul(A, B, opts);
        await rt().sync();
        C.dispose();
      };
      ms.ours = toMs(await timeGpu(ours, budget));
      for (const other of OTHER_KERNELS) {
        if (other === path || (other === 'tiled' && flops > TILED_MAX_FLOPS && path !== 'tiled')) continue;
        try {
          setMatmulPath(other);
          ms[other] = toMs(await timeGpu(ours, budget));
        } catch (e) {
          notes[other] = (e as Error).message; // e.g. no fixed-size subgroups on this adapter
        } finally {
          setMatmulPath(null);
        }
      }
      A.dispose();
      B.dispose();

      if (tf) {
        const ta = tf.tf.tensor2d(av, aShape as [number, number]);
        const tb = tf.tf.tensor2d(bv, bShape as [number, number]);
        ms['tfjs-webgpu'] = toMs(
          await timeGpu(async () => {
            const tc = tf.tf.matMul(ta, tb, c.transA, c.transB);
            await tf.sync();
            tc.dispose();
          }, budget),
        );
        ta.dispose();
        tb.dispose();
      }
      // op(A), op(B) contiguous for the peers without transpose flags
      const a2 = materialise(av, c.M, c.K, !!c.transA);
      const b2 = materialise(bv, c.K, c.N, !!c.transB);
      if (torch) {
        const ta = torch.tensor(a2, [c.M, c.K]);
        const tb = torch.tensor(b2, [c.K, c.N]);
        ms['webgpu-torch'] = toMs(
          await timeGpu(async () => {
            const tc = torch.torch.mm(ta, tb);
            await torch.sync();
            tc.storage.destroy(); // webgpu-torch frees nothing by itself
          }, budget),
        );
        ta.storage.destroy();
        tb.storage.destroy();
      }
      const npr = np?.results[i];
      ms.numpy = npr ? { wall: npr.p50_ms, cpu: npr.cpu_ms } : null;
      if (flops <= JS_MAX_FLOPS) {
        const out = new Float32Array(c.M * c.N);
        ms['plain-js'] = toMs(await timeGpu(async () => void matmulJs(a2, b2, c.M, c.N, c.K, out), budget));
      }

      const r = rowsFor(c.name, 'GFLOP/s', PEERS, ms, (t) => gflops(flops, t), cores, notes);
      rows.push(r.wall);
      rowsCpu.push(r.cpu);
      ctx.log(`${c.name}: ${Object.entries(ms).map(([k, v]) => `${k} ${v === null ? '—' : `${v.wall.toFixed(1)} ms (cpu ${v.cpu.toFixed(1)})`}`).join(', ')}`);
    }
    return { rows, rowsCpu, info: { kernel: path, numpy: np ? { numpy: np.numpy, blas: np.blas, threads: np.threads } : null, tfjs: tf?.version ?? null } };
  },
};
