// Every differentiable op is an OpDef: its GPU forward and backward, and their float64 CPU twins, side by side.
// defineOp() puts it in the registry — the one table listing what autograd can differentiate, with each gradient rule
// written out as math. apply() runs the GPU forward and records the backward on the tape.
import { type Tensor } from '@dawngrad/tensor';
import { Var, isGradEnabled, type BackwardFn } from './var.ts';
import { anomalyDetection, checkFinite, checkLeaves, describeVar } from './anomaly.ts';

/** A float64 CPU tensor: the oracle representation. */
export interface F64 {
  shape: number[];
  data: Float64Array;
}

export interface OpDef<A> {
  name: string;
  /** the gradient rule in a line of math, for the registry and the docs */
  rule: string;
  /** out = f(inputs; attrs) on the GPU */
  forward(inputs: Tensor[], attrs: A): Tensor;
  /** dL/dinputs from g = dL/dout; `out` is the forward result. Return null where !needs[i]. */
  backward(g: Tensor, inputs: Tensor[], out: Tensor, attrs: A, needs: boolean[]): (Tensor | null)[];
  /** the same two in float64 on the CPU (the oracle of the gradient tests) */
  cpu: {
    forward(inputs: F64[], attrs: A): F64;
    backward(g: F64, inputs: F64[], out: F64, attrs: A): F64[];
  };
  /** which inputs can carry a gradient (default: all) — e.g. token ids cannot */
  differentiable?: boolean[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const registry = new Map<string, OpDef<any>>();

export function defineOp<A>(def: OpDef<A>): OpDef<A> {
  if (registry.has(def.name)) throw new Error(`op ${def.name} defined twice`);
  registry.set(def.name, def);
  return def;
}

/** Run an op on Vars: GPU forward now, backward recorded when any differentiable input requires grad. */
export function apply<A>(def: OpDef<A>, inputs: Var[], attrs: A, name?: string): Var {
  const xs = inputs.map((v) => v.data);
  const anomaly = anomalyDetection(); // debug mode (anomaly.ts): count NaN/Inf after every op
  if (anomaly) checkLeaves(def.name, inputs);
  const out = def.forward(xs, attrs);
  const what = anomaly ? `${def.name}(${inputs.map(describeVar).join(', ')})${name ? ` "${name}"` : ''}` : '';
  if (anomaly) checkFinite(`${what} forward -> [${out.shape.join(', ')}]`, out);
  const needs = inputs.map((v, i) => v.requiresGrad && def.differentiable?.[i] !== false);
  if (!isGradEnabled() || !needs.some(Boolean)) return new Var(out, false, def.name, [], null, name);
  const back: BackwardFn = anomaly
    ? (g, n) => {
        const gs = def.backward(g, xs, out, attrs, n);
        gs.forEach((t, i) => t && checkFinite(`${what} backward -> gradient of input ${i} (${describeVar(inputs[i]!)})`, t));
        return gs;
      }
    : (g, n) => def.backward(g, xs, out, attrs, n);
  return new Var(out, true, def.name, inputs, back, name);
}
