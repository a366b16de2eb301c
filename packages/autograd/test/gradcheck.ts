// The gradient oracle shared by every op's property test:
//  (1) the op's float64 CPU backward against central finite differences of its float64 CPU forward, and
//  (2) the GPU forward and backward against the CPU twins, in float32 tolerance.
// The loss is L = Σ out · w for a fixed random w, so every output element carries a distinct upstream gradient.
import { expect } from 'vitest';
import { ref, mulberry32, type DType, type Tensor } from '@dawngrad/tensor';
import { type OpDef, type F64, apply, backward, param, constant } from '../src/index.ts';

export interface CheckOptions {
  /** finite-difference step (float64) */
  h?: number;
  /** tolerance of (1): |analytic - fd| ≤ tol·(1 + |fd|) */
  fdTol?: number;
  /** tolerance of (2), relative to the scale of the reference: |gpu - cpu| ≤ tol·(max|cpu| + 1e-6) */
  gpuTol?: number;
  /** absolute floor added to (2)'s bound, for outputs formed by cancellation (their f32 error scales with the terms, not the sum) */
  gpuAtol?: number;
  /** check at most this many coordinates per input with finite differences (random ones beyond that) */
  maxFdPoints?: number;
  /** inputs that are data, not differentiable (ids, masks); by default from the op's `differentiable` */
  frozen?: boolean[];
  seed?: number;
  /** dtype of each frozen input on the GPU (default i32) */
  dtypes?: DType[];
}

/** A deterministic PRNG so failures reproduce. */
export const rng = mulberry32;

export function randomF64(shape: number[], rand: () => number, lo = -1, hi = 1): F64 {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape: [...shape], data: Float64Array.from({ length: n }, () => lo + (hi - lo) * rand()) };
}

function dot(a: F64, w: F64): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += a.data[i]! * w.data[i]!;
  return s;
}

/** Run both checks for one op at one point. Inputs are float64; the GPU gets them rounded to f32. */
export async function checkOp<A, S>(def: OpDef<A, S>, inputs: F64[], attrs: A, opts: CheckOptions = {}): Promise<void> {
  const { h = 1e-6, fdTol = 1e-5, gpuTol = 1e-4, gpuAtol = 0, maxFdPoints = 48, seed = 1 } = opts;
  const rand = rng(seed);
  const frozen = opts.frozen ?? inputs.map((_, i) => def.differentiable?.[i] === false);
  // Round float inputs to f32 first, so CPU and GPU see the same numbers.
  const xs = inputs.map((x, i) => (frozen[i] ? x : { shape: x.shape, data: Float64Array.from(Float32Array.from(x.data)) }));
  const out = def.cpu.forward(xs, attrs);
  const w = randomF64(out.shape, rand);
  const cpuGrads = def.cpu.backward(w, { inputs: xs, out, attrs });

  // (1) analytic (CPU, float64) vs central differences
  for (let i = 0; i < xs.length; i++) {
    if (frozen[i]) continue;
    const x = xs[i]!;
    const n = x.data.length;
    const points = n <= maxFdPoints ? [...Array(n).keys()] : Array.from({ length: maxFdPoints }, () => Math.floor(rand() * n));
    for (const j of points) {
      const orig = x.data[j]!;
      const step = h * Math.max(1, Math.abs(orig));
      x.data[j] = orig + step;
      const lp = dot(def.cpu.forward(xs, attrs), w);
      x.data[j] = orig - step;
      const lm = dot(def.cpu.forward(xs, attrs), w);
      x.data[j] = orig;
      const fd = (lp - lm) / (2 * step);
      const an = cpuGrads[i]!.data[j]!;
      if (Math.abs(an - fd) > fdTol * (1 + Math.abs(fd))) {
        throw new Error(`${def.name}: input ${i} [${j}] analytic ${an} vs finite difference ${fd}`);
      }
    }
  }

  // (2) GPU vs CPU, forward and backward
  {
    const vars = xs.map((x, i) => {
      const t = ref.toTensor(x, frozen[i] ? (opts.dtypes?.[i] ?? 'i32') : 'f32');
      return frozen[i] ? constant(t) : param(t);
    });
    const y = apply(def, vars, attrs);
    const gpuOut = await ref.fromTensor(y.data);
    expectClose(def.name + ' forward', gpuOut, out, gpuTol, gpuAtol);
    backward(y, { seed: ref.toTensor(w) });
    for (let i = 0; i < xs.length; i++) {
      if (frozen[i]) continue;
      const g = vars[i]!.grad;
      expect(g, `${def.name}: input ${i} got no gradient`).toBeTruthy();
      expectClose(`${def.name} grad ${i}`, await ref.fromTensor(g as Tensor), cpuGrads[i]!, gpuTol, gpuAtol);
    }
    for (const v of vars) {
      v.zeroGrad();
      v.data.dispose();
    }
    y.data.dispose();
  }
}

export function expectClose(what: string, got: F64, want: F64, tol: number, atol = 0): void {
  expect(got.shape, `${what}: shape`).toEqual(want.shape);
  let scale = 1e-6;
  for (const v of want.data) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.data.length; i++) {
    const d = Math.abs(got.data[i]! - want.data[i]!);
    if (!(d <= tol * scale + atol)) throw new Error(`${what}: [${i}] got ${got.data[i]} want ${want.data[i]} (|diff| ${d} > ${tol}·${scale} + ${atol})`);
  }
}
