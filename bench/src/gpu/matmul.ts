// matmul on a GPU, in TFLOP/s: square sizes 256²–8192² and every matmul of one Lite-Oute-300M LoRA training step
// (B16 × T96: forward, backward, LoRA r 8, lm_head on 2 rows a sequence), ours and PyTorch on CUDA in the same run —
// cuBLAS in f32 with TF32 off (what we compute), and with f16 and bf16 inputs (its tensor cores). 'ours' is f32 with the
// tile tuneMatmul measured for the shape (every candidate's time is in the notes); 'ours-f16' is mixed precision (an
// f16 weight: subgroup matrices where the adapter has them), the peer of torch's half-precision matmul; 'subgroup' is
// the CPU-adapter kernel forced onto the GPU (small shapes only), the old baseline.
// --smoke: a tiny square and some of the tiny model's shapes at B2 × T8, for a run on lavapipe.
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, matmul, matmulPath, setMatmulPath, rt, mulberry32, ref, tuneMatmul, type MatmulPath } from '@dawngrad/tensor';
import type { Bench, BenchContext, Row } from '../lib/types.ts';
import { modelConfig } from './env.ts';
import { torchPeer, timeReps } from './peer.ts';
import { squares, stepMatmuls, type MatmulCase } from './shapes.ts';

/** Our other kernel families, forced in turn (the CPU adapters' kernels: the measured reason they are not the default). */
const VARIANTS: MatmulPath[] = ['subgroup'];
/** lavapipe's kernels are forced onto a GPU only up to this size (they are built for a CPU's loads) */
const UNIFORM_MAX_FLOPS = 2 * 1024 ** 3;
const OURS_F16 = 'ours-f16';
const TORCH = ['torch-f32', 'torch-f16', 'torch-bf16'];

interface TorchMatmul {
  gpu?: string;
  torch: string;
  device: string;
  results: { name: string; [dtype: string]: { ms?: number; tflops?: number; skipped?: string } | string }[];
}

function random(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n); // a plain loop: 8192² values through Float32Array.from's callback take seconds
  for (let i = 0; i < n; i++) out[i] = r() * 2 - 1;
  return out;
}

export function gpuMatmulCases(smoke: boolean): { cases: MatmulCase[]; step: string } {
  if (smoke) {
    const cfg = JSON.parse(readFileSync(modelConfig('tiny'), 'utf8'));
    // every 6th step shape (forward, backward, LoRA and transposed ones among them): the machinery, not the figures
    return { cases: [...squares([64]), ...stepMatmuls(cfg, 2, 8).filter((_, i) => i % 6 === 0)], step: 'tweet-mistral-tiny B2 × T8 (smoke)' };
  }
  const cfg = JSON.parse(readFileSync(modelConfig('lite-oute-300m'), 'utf8'));
  return { cases: [...squares([256, 512, 1024, 2048, 4096, 8192]), ...stepMatmuls(cfg, 16, 96)], step: 'Lite-Oute-300M B16 × T96' };
}

export const gpuMatmulBench: Bench = {
  name: 'gpu-matmul',
  title: 'matmul on a GPU (TFLOP/s, higher is better): our kernels vs PyTorch on CUDA (cuBLAS f32 TF32 off, f16, bf16)',
  peers: [OURS_F16, ...VARIANTS, ...TORCH],
  async run(ctx: BenchContext) {
    const smoke = !!ctx.smoke;
    const budget = smoke || ctx.quick ? 20 : 100;
    const { cases, step } = gpuMatmulCases(smoke);
    const path = matmulPath();
    ctx.log(`${cases.length} cases (squares and the ${step} step's matmuls); our default kernel here: ${path}`);

    // the peer first, in its own process: all cases, every dtype
    const dir = mkdtempSync(join(tmpdir(), 'dawngrad-gpu-matmul-'));
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(cases));
    const peer = torchPeer<TorchMatmul>(['matmul', '--cases', join(dir, 'cases.json'), '--budget-ms', String(budget)], ctx.log, 300_000);
    if (peer.skipped) ctx.log(`PyTorch peer skipped: ${peer.skipped}`);
    else ctx.log(`PyTorch ${peer.out!.torch} on ${peer.out!.gpu ?? peer.out!.device}`);

    const rows: Row[] = [];
    for (const [i, c] of cases.entries()) {
      const flops = 2 * c.M * c.N * c.K;
      const A = Tensor.fromArray(random(c.M * c.K, 2 * i + 1), c.transA ? [c.K, c.M] : [c.M, c.K]);
      const bValues = random(c.K * c.N, 2 * i + 2);
      const B = Tensor.fromArray(bValues, c.transB ? [c.N, c.K] : [c.K, c.N]);
      const run = () => matmul(A, B, { transA: !!c.transA, transB: !!c.transB }).dispose();
      const ms: Record<string, number | null> = {};
      const notes: Record<string, unknown> = { M: c.M, N: c.N, K: c.K, transA: !!c.transA, transB: !!c.transB, default: path };
      // ours: f32 with the measured tile, and mixed precision (the same values' f16 weight)
      const shape = { M: c.M, N: c.N, K: c.K, transA: !!c.transA, transB: !!c.transB };
      notes.tuned = await tuneMatmul([shape]);
      const base = await timeReps(run, () => rt().sync(), budget);
      ms[path] = base.ms;
      if (rt().ctx.hasF16 && !c.transA) {
        const B16 = Tensor.fromArray(ref.toF16Bits(bValues), B.shape, 'f16');
        notes.tunedF16 = await tuneMatmul([{ ...shape, f16B: true }]);
        ms[OURS_F16] = (await timeReps(() => matmul(A, B16, { transB: !!c.transB }).dispose(), () => rt().sync(), budget)).ms;
        B16.dispose();
      } else ms[OURS_F16] = null;
      for (const v of VARIANTS) {
        if (v === path) {
          // the default kernel, timed above: its figure again, not a second timing
          ms[v] = base.ms;
          notes[`${v}Reps`] = base.reps;
          continue;
        }
        if (flops > UNIFORM_MAX_FLOPS) {
          ms[v] = null;
          notes[v] = `not forced above ${UNIFORM_MAX_FLOPS / 1e9} GFLOP (lavapipe's kernel)`;
          continue;
        }
        try {
          setMatmulPath(v);
          const t = await timeReps(run, () => rt().sync(), budget);
          ms[v] = t.ms;
          notes[`${v}Reps`] = t.reps;
        } catch (e) {
          ms[v] = null;
          notes[v] = (e as Error).message.split('\n')[0]; // e.g. no fixed-size subgroups on this adapter
        } finally {
          setMatmulPath(null);
        }
      }
      A.dispose();
      B.dispose();
      const pr = peer.out?.results[i];
      for (const p of TORCH) {
        const r = pr?.[p.slice('torch-'.length)];
        ms[p] = typeof r === 'object' && r.ms !== undefined ? r.ms : null;
        if (typeof r === 'object' && r.skipped) notes[p] = r.skipped;
      }
      const tflops = (t: number | null | undefined) => (t ? flops / t / 1e9 : null);
      rows.push({
        case: c.name,
        unit: 'TFLOP/s',
        ours: tflops(ms[path]),
        peers: Object.fromEntries([OURS_F16, ...VARIANTS, ...TORCH].map((p) => [p, tflops(ms[p])])),
        notes: { ...notes, ms },
      });
      const f32 = ms['torch-f32'];
      ctx.log(`${c.name}: ` + [path, OURS_F16, ...VARIANTS, ...TORCH].map((p) => `${p} ${ms[p] ? `${ms[p]!.toFixed(3)} ms` : '—'}`).join(', ') +
        (f32 && ms[path] ? ` → ours (${path}) at ${((100 * f32) / ms[path]!).toFixed(0)}% of cuBLAS f32` : ''));
    }
    return { rows, info: { defaultKernel: path, variants: [OURS_F16, ...VARIANTS], step, smoke, torch: peer.out ? { torch: peer.out.torch, device: peer.out.device, gpu: peer.out.gpu ?? null } : { skipped: peer.skipped } } };
  },
};
