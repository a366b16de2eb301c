// SwiGLU, the gated MLP activation of Llama/Mistral: y = silu(gate) · up, fused so the MLP's [B*T, intermediate]
// activation is read and written once per pass (unfused it is silu, then mul: an extra round trip through memory).
// With s = sigmoid(gate):
//   dgate = g · up · s · (1 + gate·(1 − s))      (d silu(x)/dx = s + x·s·(1 − s))
//   dup   = g · silu(gate) = g · gate · s
// One backward kernel writes both (or only the one that is needed: a frozen up_proj under LoRA still needs dgate).
import { Tensor, grid, ref, WG, FLAT_INDEX, kernelFor } from '@dawngrad/tensor';
import { defineOp, apply, type F64, type CpuBackwardCtx } from '../op.ts';
import type { Var } from '../var.ts';

/**
 * Elementwise kernels over vectors of width 4 when the size allows it (lavapipe runs a vec4 as one SIMD op),
 * else scalars. `body` sees `gate`, `up`, `g` as needed and assigns the outputs. `name` (with vec4) holds everything
 * `parts` builds on: the inputs, outputs and body are built on the kernel's first use only.
 */
function kernel(name: string, vec4: boolean, parts: () => { inputs: string[]; outputs: string[]; body: string }) {
  return kernelFor(`swiglu.${name}:v${vec4 ? 4 : 1}`, () => {
    const { inputs, outputs, body } = parts();
    const bindings: Record<string, string> = {};
    for (const n of inputs) bindings[n.toUpperCase()] = 'V';
    for (const n of outputs) bindings[n.toUpperCase()] = 'rw V';
    return {
      params: { n: 'u32' },
      bindings,
      decls: `alias V = ${vec4 ? 'vec4<f32>' : 'f32'};`,
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  ${inputs.map((n) => `let ${n} = ${n.toUpperCase()}[i];`).join(' ')}
  let s = 1.0 / (1.0 + exp(-gate));
  ${body}`,
    };
  });
}

function run(k: (vec4: boolean) => ReturnType<typeof kernel>, buffers: Record<string, Tensor>, size: number): void {
  const vec4 = size % 4 === 0;
  const n = vec4 ? size / 4 : size;
  k(vec4).run(buffers, { n }, grid(Math.ceil(n / WG)));
}

// gate, up: [..., I] -> y: [..., I]
const fwdKernel = (vec4: boolean) => kernel('fwd', vec4, () => ({ inputs: ['gate', 'up'], outputs: ['y'], body: 'Y[i] = gate * s * up;' }));
// g, gate, up -> dgate and/or dup
const bwdKernel = (dgate: boolean, dup: boolean) => (vec4: boolean) =>
  kernel(`bwd:dg${+dgate}:du${+dup}`, vec4, () => ({
    inputs: dgate ? ['g', 'gate', 'up'] : ['g', 'gate'],
    outputs: [...(dgate ? ['dgate'] : []), ...(dup ? ['dup'] : [])],
    body: [dgate ? 'DGATE[i] = g * up * s * (1.0 + gate * (1.0 - s));' : '', dup ? 'DUP[i] = g * gate * s;' : ''].join('\n  '),
  }));

function checkInputs(gate: { shape: readonly number[] }, up: { shape: readonly number[] }): void {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new Error(`swiglu: gate [${gate.shape.join(', ')}] and up [${up.shape.join(', ')}] must have the same shape`);
  }
}

// ---- float64 CPU twin ---------------------------------------------------------------------------------------------------

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function cpuForward([gate, up]: F64[]): F64 {
  checkInputs(gate!, up!);
  const y = ref.empty(gate!.shape);
  y.data.forEach((_, i) => (y.data[i] = gate!.data[i]! * sigmoid(gate!.data[i]!) * up!.data[i]!));
  return y;
}

function cpuBackward(g: F64, { inputs: [gate, up] }: CpuBackwardCtx<null>): F64[] {
  const dgate = ref.empty(gate!.shape);
  const dup = ref.empty(up!.shape);
  for (let i = 0; i < g.data.length; i++) {
    const x = gate!.data[i]!;
    const s = sigmoid(x);
    dgate.data[i] = g.data[i]! * up!.data[i]! * s * (1 + x * (1 - s));
    dup.data[i] = g.data[i]! * x * s;
  }
  return [dgate, dup];
}

// ---- the op -----------------------------------------------------------------------------------------------------------

export const SWIGLU = defineOp<null>({
  name: 'swiglu',
  rule: 'y = silu(gate)·up, s = sigmoid(gate): dgate = g·up·s·(1 + gate·(1−s)), dup = g·gate·s',
  forward([gate, up]) {
    checkInputs(gate!, up!);
    if (gate!.dtype !== 'f32' || up!.dtype !== 'f32') throw new Error(`swiglu: needs f32, got gate ${gate!.dtype} and up ${up!.dtype}`);
    const y = Tensor.empty(gate!.shape, 'f32');
    run(fwdKernel, { GATE: gate!, UP: up!, Y: y }, y.size);
    return y;
  },
  backward(g, { inputs: [gate, up], needs }) {
    const [wantG, wantU] = [needs[0] === true, needs[1] === true];
    if (!wantG && !wantU) return [null, null];
    const dgate = wantG ? Tensor.empty(gate!.shape, 'f32') : null;
    const dup = wantU ? Tensor.empty(up!.shape, 'f32') : null;
    run(bwdKernel(wantG, wantU), { G: g, GATE: gate!, ...(wantG && { UP: up! }), ...(dgate && { DGATE: dgate }), ...(dup && { DUP: dup }) }, g.size);
    return [dgate, dup];
  },
  cpu: { forward: cpuForward, backward: cpuBackward },
});

/** silu(gate) · up, fused. gate, up: [..., I] -> [..., I] */
export const swiglu = (gate: Var, up: Var) => apply(SWIGLU, [gate, up], null);
