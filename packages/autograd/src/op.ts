// Every differentiable op is an OpDef: its GPU forward and backward, and their float64 CPU twins, side by side.
// defineOp() puts it in the registry — the one table listing what autograd can differentiate, with each gradient rule
// written out as math. apply() runs the GPU forward and records the backward on the tape.
import { Tensor } from '@dawngrad/tensor';
import { Var, isGradEnabled, type BackwardFn } from './var.ts';
import { anomalyDetection, checkFinite, checkLeaves, describeVar } from './anomaly.ts';

/** A float64 CPU tensor: the oracle representation. */
export interface F64 {
  shape: number[];
  data: Float64Array;
}

/** What an op's backward is handed besides g = dL/dout. */
export interface BackwardCtx<A, S = undefined> {
  /** the forward's inputs and output */
  inputs: Tensor[];
  out: Tensor;
  attrs: A;
  /** which inputs want a gradient: return null for the others (no work for frozen inputs) */
  needs: boolean[];
  /** what the forward kept for the backward (its `{ out, saved }`); freed with the graph after backward() */
  saved: S;
  /**
   * Per input: that input's `.grad` accumulator when it is a leaf that already holds one, else null. An op may add
   * its gradient into it in place (e.g. a matmul with `accumulate`) and return that same tensor: backward() then
   * knows the addition is done. Returning a fresh tensor is always allowed; backward() adds it in.
   */
  into: (Tensor | null)[];
}

/** The float64 twin's backward gets the same context, minus what only the GPU path has. */
export interface CpuBackwardCtx<A> {
  inputs: F64[];
  out: F64;
  attrs: A;
}

/** A forward returns its output, or its output and what its backward needs from it (e.g. attention's logsumexp). */
export type ForwardResult<S> = Tensor | { out: Tensor; saved: S };

export interface OpDef<A, S = undefined> {
  name: string;
  /** the gradient rule in a line of math, for the registry and the docs */
  rule: string;
  /** out = f(inputs; attrs) on the GPU, optionally with tensors saved for the backward */
  forward(inputs: Tensor[], attrs: A): ForwardResult<S>;
  /** dL/dinputs from g = dL/dout. Return null where !ctx.needs[i]. */
  backward(g: Tensor, ctx: BackwardCtx<A, S>): (Tensor | null)[];
  /** the same two in float64 on the CPU (the oracle of the gradient tests) */
  cpu: {
    forward(inputs: F64[], attrs: A): F64;
    backward(g: F64, ctx: CpuBackwardCtx<A>): F64[];
  };
  /** which inputs can carry a gradient (default: all) — e.g. token ids cannot */
  differentiable?: boolean[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const registry = new Map<string, OpDef<any, any>>();

export function defineOp<A, S = undefined>(def: OpDef<A, S>): OpDef<A, S> {
  if (registry.has(def.name)) throw new Error(`op ${def.name} defined twice`);
  registry.set(def.name, def);
  return def;
}

/** Run an op on Vars: GPU forward now, backward recorded when any differentiable input requires grad. */
export function apply<A, S>(def: OpDef<A, S>, inputs: Var[], attrs: A, name?: string): Var {
  const xs = inputs.map((v) => v.data);
  const anomaly = anomalyDetection(); // debug mode (anomaly.ts): count NaN/Inf after every op
  if (anomaly) checkLeaves(def.name, inputs);
  const result = def.forward(xs, attrs);
  const [out, saved] = result instanceof Tensor ? [result, undefined as S] : [result.out, result.saved];
  const what = anomaly ? `${def.name}(${inputs.map(describeVar).join(', ')})${name ? ` "${name}"` : ''}` : '';
  if (anomaly) checkFinite(`${what} forward -> [${out.shape.join(', ')}]`, out);
  const needs = inputs.map((v, i) => v.requiresGrad && def.differentiable?.[i] !== false);
  const savedTensors = tensorsIn(saved);
  if (!isGradEnabled() || !needs.some(Boolean)) {
    for (const t of savedTensors) t.dispose(); // no backward will read them
    return new Var(out, false, def.name, [], null, name);
  }
  const run: BackwardFn = (g, n, into) => def.backward(g, { inputs: xs, out, attrs, needs: n, saved, into });
  const back: BackwardFn = anomaly
    ? (g, n, into) => {
        const gs = run(g, n, into);
        gs.forEach((t, i) => t && checkFinite(`${what} backward -> gradient of input ${i} (${describeVar(inputs[i]!)})`, t));
        return gs;
      }
    : run;
  const v = new Var(out, true, def.name, inputs, back, name);
  v.saved = savedTensors;
  return v;
}

/** The tensors inside a forward's `saved` (a tensor, an array or a plain object of them). */
function tensorsIn(saved: unknown): Tensor[] {
  if (saved instanceof Tensor) return [saved];
  if (Array.isArray(saved)) return saved.flatMap(tensorsIn);
  if (saved && typeof saved === 'object') return Object.values(saved).flatMap(tensorsIn);
  return [];
}
