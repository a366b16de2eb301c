// softmax over the last axis and sum reductions, in GB/s of input read + output written (higher is better).
// Rows of 32768 are the lm_head logits; rows of 80 are attention scores (T = 80). Our kernels are looked up by name
// in @dawngrad/tensor, so this bench skips (with a note) whatever the package does not export yet.
import * as T from '@dawngrad/tensor';
import { Tensor, rt, mulberry32 } from '@dawngrad/tensor';
import type { Bench, BenchContext, Row } from '../lib/types.ts';
import os from 'node:os';
import { timeGpu, gbps, ms as toMs, rowsFor, type Ms } from '../lib/timing.ts';
import { tfjs } from '../peers/tfjs.ts';
import { webgpuTorch } from '../peers/webgpu-torch.ts';
import { runNumpy, type NumpyCase } from '../peers/numpy.ts';

interface Case {
  name: string;
  op: 'softmax' | 'sum_rows' | 'sum_all';
  rows: number;
  cols: number;
}

const CASES: Case[] = [
  { name: 'softmax [48×32768] (lm_head rows)', op: 'softmax', rows: 48, cols: 32768 },
  { name: 'softmax [1280×80] (attention rows)', op: 'softmax', rows: 1280, cols: 80 },
  { name: 'softmax [5120×80] (B·H·T rows)', op: 'softmax', rows: 5120, cols: 80 },
  { name: 'sum over last axis [1280×896]', op: 'sum_rows', rows: 1280, cols: 896 },
  { name: 'sum of all [256×256]', op: 'sum_all', rows: 256, cols: 256 },
  { name: 'sum of all [1024×1024]', op: 'sum_all', rows: 1024, cols: 1024 },
];
const PEERS = ['tfjs-webgpu', 'webgpu-torch', 'numpy'];
const TORCH_SUM_MAX = 1 << 16; // webgpu-torch's whole-tensor sum is serial: minutes at 1M elements

type Op = (x: Tensor) => Tensor;
const lookup = (name: string): Op | null => {
  const f = (T as Record<string, unknown>)[name];
  return typeof f === 'function' ? (f as Op) : null;
};
const OURS: Record<Case['op'], { name: string; fn: Op | null }> = {
  softmax: { name: 'softmax', fn: lookup('softmax') },
  sum_rows: { name: 'sum', fn: lookup('sum') ? (x) => (lookup('sum') as (x: Tensor, axes: number) => Tensor)(x, -1) : null },
  sum_all: { name: 'sumAll', fn: lookup('sumAll') },
};

const outSize = (c: Case) => (c.op === 'softmax' ? c.rows * c.cols : c.op === 'sum_rows' ? c.rows : 1);

export const softmaxBench: Bench = {
  name: 'softmax',
  title: 'softmax and sums (GB/s read + written, higher is better)',
  peers: PEERS,
  async run(ctx: BenchContext) {
    const budget = ctx.quick ? 250 : 800;
    const tf = await tfjs(ctx.log);
    const torch = await webgpuTorch(ctx.log);
    const npCases: NumpyCase[] = CASES.map((c) => (c.op === 'sum_all' ? { op: 'sum_all', n: c.rows * c.cols } : { op: c.op, rows: c.rows, cols: c.cols }));
    const np = runNumpy(npCases, budget, ctx.log);
    const rows: Row[] = [];
    const rowsCpu: Row[] = [];
    const cores = os.cpus().length;
    for (const [i, c] of CASES.entries()) {
      const bytes = 4 * (c.rows * c.cols + outSize(c));
      const r = mulberry32(100 + i);
      const xv = Float32Array.from({ length: c.rows * c.cols }, () => r() * 8 - 4);
      const ms: Record<string, Ms | null> = {};
      const notes: Record<string, unknown> = {};
      const ours = OURS[c.op];
      if (ours.fn) {
        const x = Tensor.fromArray(xv, [c.rows, c.cols]);
        ms.ours = toMs(
          await timeGpu(async () => {
            const y = ours.fn!(x);
            await rt().sync();
            y.dispose();
          }, budget),
        );
        x.dispose();
      } else {
        notes.ours = `@dawngrad/tensor exports no ${ours.name}() yet: skipped`;
        ctx.log(`${c.name}: ${notes.ours}`);
      }
      if (tf) {
        const x = tf.tf.tensor2d(xv, [c.rows, c.cols]);
        const f = c.op === 'softmax' ? () => tf.tf.softmax(x) : c.op === 'sum_rows' ? () => tf.tf.sum(x, -1) : () => tf.tf.sum(x);
        ms['tfjs-webgpu'] = toMs(
          await timeGpu(async () => {
            const y = f();
            await tf.sync();
            y.dispose();
          }, budget),
        );
        x.dispose();
      }
      if (torch && c.op === 'sum_all' && c.rows * c.cols > TORCH_SUM_MAX) {
        notes['webgpu-torch'] = `skipped: its sum took 202 s per call at 1M elements on lavapipe (2026-11-27); see the 64K case`;
      } else if (torch && c.op === 'sum_all') {
        const x = torch.tensor(xv, [c.rows * c.cols]);
        ms['webgpu-torch'] = toMs(
          await timeGpu(async () => {
            const y = torch.torch.sum(x);
            await torch.sync();
            y.storage.destroy();
          }, budget),
        );
        x.storage.destroy();
      } else if (torch) notes['webgpu-torch'] = 'no such op (webgpu-torch 0.3.5 has only a whole-tensor sum)';
      const npr = np?.results[i];
      ms.numpy = npr ? { wall: npr.p50_ms, cpu: npr.cpu_ms } : null;
      const both = rowsFor(c.name, 'GB/s', PEERS, ms, (t) => gbps(bytes, t), cores, notes);
      rows.push(both.wall);
      rowsCpu.push(both.cpu);
      ctx.log(`${c.name}: ${Object.entries(ms).map(([k, v]) => `${k} ${v === null ? '—' : `${v.wall.toFixed(2)} ms (cpu ${v.cpu.toFixed(2)})`}`).join(', ')}`);
    }
    return { rows, rowsCpu, info: { numpy: np ? { numpy: np.numpy, blas: np.blas } : null } };
  },
};
