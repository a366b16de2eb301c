// Forward+backward of the ops a LoRA training step spends its time in, at the tiny model's training shapes: the frozen
// linear layer's backward (dx = dy·W only), fused attention, RMSNorm and cross-entropy over the vocabulary.
// Unit: fwd+bwd per second (higher is better). Peer: PyTorch on the CPU, 1 thread (bench/peers/torch_ops.py), when
// Debian's python3-torch is installed (bench/peers/install.sh).
import { spawnSync } from 'node:child_process';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, scope, rt, mulberry32 } from '@dawngrad/tensor';
import { param, constant, matmul, attention, rmsNorm, crossEntropy, backward, type Var } from '@dawngrad/autograd';
import type { Bench, BenchContext, Row } from '../lib/types.ts';
import { timeGpu } from '../lib/timing.ts';

const PEER = resolve(dirname(fileURLToPath(import.meta.url)), '../../peers/torch_ops.py');
const PYTHON = '/usr/bin/python3'; // Debian's torch lives there, not in a pyenv interpreter

interface Case {
  name: string;
  peer: Record<string, unknown>;
  /** builds the inputs and returns one forward+backward */
  make: () => () => void;
}

function randn(shape: number[], seed: number): Tensor {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.fromArray(Float32Array.from({ length: n }, () => r() * 2 - 1), shape);
}

/** Run f (forward) then backward with seed gradient g, inside a scope so nothing outlives the call. */
function fwdBwd(f: () => Var, params: Var[]): void {
  scope(() => {
    const y = f();
    backward(y, y.size === 1 ? {} : { seed: randn([...y.shape], 9) });
    for (const p of params) p.zeroGrad();
  });
}

const CASES: Case[] = [
  {
    name: 'linear backward dx = dy·W [1280×896]·[896×224] (frozen W)',
    peer: { op: 'matmul_dx', M: 1280, N: 896, K: 224 },
    make() {
      const x = param(randn([1280, 224], 1));
      const w = constant(randn([896, 224], 2));
      return () => fwdBwd(() => matmul(x, w, { transB: true }), [x]);
    },
  },
  {
    name: 'attention B16 T80 H4 KV2 D56',
    peer: { op: 'attention', B: 16, T: 80, H: 4, KV: 2, D: 56 },
    make() {
      const q = param(randn([16, 80, 4, 56], 3));
      const k = param(randn([16, 80, 2, 56], 4));
      const v = param(randn([16, 80, 2, 56], 5));
      const mask = constant(Tensor.fromArray(new Int32Array(16 * 80).fill(1), [16, 80], 'i32'));
      return () => fwdBwd(() => attention(q, k, v, mask), [q, k, v]);
    },
  },
  {
    name: 'RMSNorm [1280×224]',
    peer: { op: 'rmsnorm', rows: 1280, cols: 224 },
    make() {
      const x = param(randn([1280, 224], 6));
      const w = param(randn([224], 7));
      return () => fwdBwd(() => rmsNorm(x, w, 1e-6), [x, w]);
    },
  },
  {
    name: 'cross-entropy [48×32768]',
    peer: { op: 'cross_entropy', rows: 48, cols: 32768 },
    make() {
      const x = param(randn([48, 32768], 8));
      const t = constant(Tensor.fromArray(Int32Array.from({ length: 48 }, (_, i) => (i * 977) % 32768), [48], 'i32'));
      return () => fwdBwd(() => crossEntropy(x, t), [x]);
    },
  },
];

function torchPeer(budgetMs: number, log: (l: string) => void): { p50_ms: number }[] | null {
  const r = spawnSync(PYTHON, [PEER], { input: JSON.stringify({ budget_ms: budgetMs, cases: CASES.map((c) => c.peer) }), encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    log(`pytorch peer skipped: ${r.error?.message ?? r.stderr.trim().split('\n').pop()} (bench/peers/install.sh installs it)`);
    return null;
  }
  const out = JSON.parse(r.stdout) as { torch: string; blas: string; results: { p50_ms: number }[] };
  log(`pytorch ${out.torch} (1 thread), BLAS ${out.blas}`);
  return out.results;
}

export const autogradBench: Bench = {
  name: 'autograd',
  title: 'forward+backward (calls/s, higher is better)',
  peers: ['pytorch-cpu'],
  async run(ctx: BenchContext) {
    const budget = ctx.quick ? 300 : 1500;
    const peer = torchPeer(budget, ctx.log);
    const rows: Row[] = [];
    for (const [i, c] of CASES.entries()) {
      const run = c.make();
      const t = await timeGpu(async () => {
        run();
        await rt().sync();
      }, budget);
      ctx.log(`${c.name}: ${t.p50.toFixed(1)} ms`);
      const p = peer?.[i]?.p50_ms;
      rows.push({ case: c.name, unit: 'calls/s', ours: 1000 / t.p50, peers: { 'pytorch-cpu': p ? 1000 / p : null }, notes: { oursMs: t.p50, torchMs: p ?? null } });
    }
    return { rows };
  },
};
