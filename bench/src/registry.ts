// Every bench `pnpm bench` knows, in run order. A new bench (autograd backward, a training step, a PyTorch peer) is a
// file under bench/src/benches/ exporting a Bench (lib/types.ts), added to this list.
import type { Bench } from './lib/types.ts';
import { matmulBench } from './benches/matmul.ts';
import { softmaxBench } from './benches/softmax.ts';
import { stepBench } from './step.ts';
import { autogradBench } from './benches/autograd.ts';
import { evalBench } from './benches/eval.ts';

export const BENCHES: Bench[] = [matmulBench, softmaxBench, autogradBench, stepBench, evalBench];
