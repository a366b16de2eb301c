// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction, eps outside the sqrt), preceded by
// clipping to a global L2 norm as torch.nn.utils.clip_grad_norm_ — all on the GPU, with no readback inside the step:
// the norm and the clip factor live in a 2-float GPU buffer that the AdamW kernel reads.
import { Tensor, rt, grid, keep, fill } from '@dawngrad/tensor';
import type { Var } from '@dawngrad/autograd';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** clip the global gradient norm to this (0 or Infinity: no clipping, the norm is still measured) */
  maxGradNorm?: number;
}

const WG = 256;

// Σ g² of one parameter into slot `slot` of the partial-sums buffer. One workgroup: a strided serial sum per
// invocation, then a tree in workgroup memory — deterministic, and a parameter is small (LoRA) or read once.
const SUMSQ = {
  key: 'optim:sumsq',
  wgsl: () => `
struct P { n: u32, slot: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<f32>;
var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = lid.x; i < p.n; i += ${WG}u) { let g = G[i]; acc += g * g; }
  part[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] += part[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { S[p.slot] = part[0]; }
}`,
};

// total = √Σ partials; coef = min(1, max_norm / (total + 1e-6)) as clip_grad_norm_ computes it.
const NORM = {
  key: 'optim:norm',
  wgsl: () => `
struct P { count: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> N: array<f32>;
@compute @workgroup_size(1) fn main() {
  var t = 0.0;
  for (var i = 0u; i < p.count; i++) { t += S[i]; }
  let total = sqrt(t);
  N[0] = total;
  N[1] = select(1.0, min(1.0, p.maxNorm / (total + 1e-6)), p.maxNorm > 0.0);
}`,
};

// One fused update per parameter: clip, decay, moments, bias-corrected step.
const ADAMW = {
  key: 'optim:adamw',
  wgsl: () => `
struct P { n: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2sqrt: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read> N: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let g = G[i] * N[1];
  var w = W[i] * (1.0 - p.lr * p.wd);
  let m = p.b1 * M[i] + (1.0 - p.b1) * g;
  let v = p.b2 * V[i] + (1.0 - p.b2) * g * g;
  M[i] = m;
  V[i] = v;
  w -= (p.lr / p.bc1) * m / (sqrt(v) / p.bc2sqrt + p.eps);
  W[i] = w;
}`,
};

export interface AdamWState {
  step: number;
  m: Tensor[];
  v: Tensor[];
}

export class AdamW {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  lr: number;
  /** optimizer steps taken (torch's `state['step']`) */
  step = 0;
  readonly m: Tensor[];
  readonly v: Tensor[];
  private partials: Tensor;
  /** [global grad norm before clipping, clip factor] of the last step, on the GPU */
  readonly norm: Tensor;

  constructor(
    readonly params: Var[],
    opts: AdamWOptions,
  ) {
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.maxGradNorm = opts.maxGradNorm ?? 0;
    if (!(this.lr >= 0)) throw new Error(`AdamW: lr must be ≥ 0, got ${this.lr}`);
    this.m = params.map((p) => keep(fill(p.shape, 0)));
    this.v = params.map((p) => keep(fill(p.shape, 0)));
    this.partials = keep(fill([Math.max(1, params.length)], 0));
    this.norm = keep(fill([2], 0));
  }

  /** Clip (when maxGradNorm > 0) and update every parameter that has a gradient. Encodes only; nothing is read back. */
  update(): void {
    const r = rt();
    this.step++;
    const [b1, b2] = this.betas;
    this.params.forEach((p, i) => {
      const g = p.grad;
      r.dispatch({ kernel: SUMSQ, buffers: [g ? g.buffer : this.m[i]!.buffer, this.partials.buffer], params: [g ? g.size : 0, i], workgroups: [1] });
    });
    r.dispatch({
      kernel: NORM,
      buffers: [this.partials.buffer, this.norm.buffer],
      params: [this.params.length, Number.isFinite(this.maxGradNorm) ? this.maxGradNorm : 0],
      types: 'uf',
      workgroups: [1],
    });
    const bc1 = 1 - b1 ** this.step;
    const bc2sqrt = Math.sqrt(1 - b2 ** this.step);
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      r.dispatch({
        kernel: ADAMW,
        buffers: [p.data.buffer, p.grad.buffer, this.m[i]!.buffer, this.v[i]!.buffer, this.norm.buffer],
        params: [p.size, this.lr, b1, b2, this.eps, this.weightDecay, bc1, bc2sqrt],
        types: 'ufffffff',
        workgroups: grid(Math.ceil(p.size / WG)),
      });
    });
  }

  /** The global gradient norm of the last update (a readback: call it outside the hot loop, or lagged). */
  async lastGradNorm(): Promise<number> {
    return (await this.norm.toArray())[0]!;
  }

  async state(): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const m = await Promise.all(this.m.map(async (t) => (await t.toArray()) as Float32Array));
    const v = await Promise.all(this.v.map(async (t) => (await t.toArray()) as Float32Array));
    return { step: this.step, m, v };
  }

  loadState(s: { step: number; m: Float32Array[]; v: Float32Array[] }): void {
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new Error(`optimizer state holds ${s.m.length} parameters, the model has ${this.params.length}`);
    }
    this.step = s.step;
    s.m.forEach((a, i) => r(this.m[i]!, a));
    s.v.forEach((a, i) => r(this.v[i]!, a));
    function r(t: Tensor, a: Float32Array) {
      if (a.length !== t.size) throw new Error(`optimizer state: moment of ${a.length} values for a parameter of ${t.size}`);
      rt().write(t.buffer, a);
    }
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v, this.partials, this.norm]) t.dispose();
  }
}
