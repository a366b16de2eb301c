// Example 1 — autograd alone: a two-layer MLP learns XOR on the GPU.
//
//   pnpm exec tsx examples/01-xor.ts                       (from the repository root)
//   pnpm exec tsx examples/01-xor.ts --steps 300 --lr 0.05 --hidden 8 --seed 0
//
// No model, no tokenizer: parameters are Vars holding GPU tensors, every op records its backward on the tape, and
// backward() fills each parameter's .grad. AdamW from @dawngrad/train updates them in place on the GPU.
import { parseArgs } from 'node:util';
import { init, dispose, Tensor, scope, keep, mulberry32 } from '@dawngrad/tensor';
import { Var, param, constant, matmul, add, sub, mul, mean, silu, sigmoid, backward, noGrad } from '@dawngrad/autograd';
import { AdamW } from '@dawngrad/train';

const { values: flags } = parseArgs({
  options: { steps: { type: 'string', default: '300' }, lr: { type: 'string', default: '0.05' }, hidden: { type: 'string', default: '8' }, seed: { type: 'string', default: '0' } },
});
const steps = Number(flags.steps);
const lr = Number(flags.lr);
const H = Number(flags.hidden);
if (!(Number.isInteger(steps) && steps > 0 && lr > 0 && Number.isInteger(H) && H > 0)) throw new Error('--steps and --hidden must be positive integers, --lr a positive number');

await init(); // acquire the WebGPU device once; after this every op is synchronous and only encodes GPU work

// the four XOR cases: x: [4, 2], y: [4, 1]
const X = [[0, 0], [0, 1], [1, 0], [1, 1]];
const Y = [0, 1, 1, 0];
const x = constant(Tensor.fromArray(X.flat(), [4, 2]));
const y = constant(Tensor.fromArray(Y, [4, 1]));

// weights in the layout of a PyTorch/HF linear layer, W: [out, in]; uniform(-1/√in, 1/√in) like nn.Linear
const rng = mulberry32(Number(flags.seed));
const uniform = (shape: number[], fanIn: number) =>
  Tensor.fromArray(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (2 * rng() - 1) / Math.sqrt(fanIn)), shape);
const W1 = param(uniform([H, 2], 2), 'W1'); // [H, 2]
const b1 = param(uniform([H], 2), 'b1'); // [H]
const W2 = param(uniform([1, H], H), 'W2'); // [1, H]
const b2 = param(uniform([1], H), 'b2'); // [1]
const params = [W1, b1, W2, b2];

// x: [4, 2] -> hidden [4, H] -> probability [4, 1]
function forward(): Var {
  const h = silu(add(matmul(x, W1, { transB: true }), b1)); // b1 broadcasts over the 4 rows
  return sigmoid(add(matmul(h, W2, { transB: true }), b2));
}

const opt = new AdamW(params, { lr, weightDecay: 0 });
const losses: number[] = [];
for (let step = 0; step < steps; step++) {
  // scope() frees every intermediate tensor of the step when it returns, except the loss we keep
  const loss = scope(() => {
    const d = sub(forward(), y);
    const l = mean(mul(d, d)); // mean squared error, a single value
    backward(l); // dL/dW for every parameter, accumulated into .grad
    return keep(l.data);
  });
  opt.update(); // one fused AdamW kernel per parameter
  for (const p of params) p.zeroGrad();
  // reading a value back waits for the GPU: do it only when printing
  if (step % Math.max(1, Math.floor(steps / 10)) === 0 || step === steps - 1) {
    const v = await loss.item();
    losses.push(v);
    console.log(`step ${String(step).padStart(4)}  loss ${v.toFixed(5)}`);
  }
  loss.dispose();
}

const p = noGrad(() => forward()); // no tape needed for inference
const probs = await p.data.toArray();
console.log('predictions:');
X.forEach(([a, b], i) => console.log(`  ${a} xor ${b} -> ${probs[i]!.toFixed(3)}  (target ${Y[i]})`));
console.log(`loss ${losses[0]!.toFixed(5)} -> ${losses[losses.length - 1]!.toFixed(5)}`);
dispose(); // release the device so node can exit
