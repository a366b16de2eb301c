// Every bench `pnpm bench` knows, in run order. A new bench (autograd backward, a training step, a PyTorch peer) is a
// file under bench/src/benches/ exporting a Bench (lib/types.ts), added to this list.
import type { Bench } from './lib/types.ts';
import { matmulBench } from './benches/matmul.ts';
import { softmaxBench } from './benches/softmax.ts';
import { stepBench } from './step.ts';
import { autogradBench } from './benches/autograd.ts';
import { evalBench } from './benches/eval.ts';
import { gpuMatmulBench } from './gpu/matmul.ts';
import { gpuStepBench } from './gpu/step.ts';

/** What `pnpm bench` runs on a software adapter (lavapipe): sized for a 2-core CPU. */
export const BENCHES: Bench[] = [matmulBench, softmaxBench, autogradBench, stepBench, evalBench];

/** What it runs on a GPU (or with --gpu / --smoke): GPU-sized cases against PyTorch on CUDA. Results: results/gpu-*.json. */
export const GPU_BENCHES: Bench[] = [gpuMatmulBench, gpuStepBench];
