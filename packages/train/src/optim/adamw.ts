// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction, eps outside the sqrt), preceded by
// clipping to a global L2 norm as torch.nn.utils.clip_grad_norm_ — all on the GPU, with no readback inside the step:
// the norm and the clip factor live in a 2-float GPU buffer that the AdamW kernel reads.
import { Tensor, grid, keep, fill, defineKernel, treeReduce, WG } from '@dawngrad/tensor';
import type { Var } from '@dawngrad/autograd';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** clip the global gradient norm to this (0 or Infinity: no clipping, the norm is still measured) */
  maxGradNorm?: number;
  /**
   * The parameters and their gradients as two packed buffers with the same layout (LoraModel.packed()): the whole step
   * is then three dispatches — Σg² in parts, the norm, one AdamW over every element — instead of 2 per parameter.
   */
  packed?: { params: Tensor; grads: Tensor };
}

// Σ g² of `n` values into S[slot + workgroup]: each workgroup a strided serial sum per invocation, then a tree in
// workgroup memory — deterministic. One workgroup per parameter, or `parts` of them over a packed buffer.
const SUMSQ = defineKernel({
  name: 'optim:sumsq',
  params: { n: 'u32', slot: 'u32' },
  bindings: { G: 'f32', S: 'rw f32' },
  decls: `var<workgroup> part: array<f32, ${WG}>;`,
  body: `
  var acc = 0.0;
  for (var i = wid.x * ${WG}u + lid.x; i < p.n; i += nwg.x * ${WG}u) { let g = G[i]; acc += g * g; }
  part[li] = acc;
  ${treeReduce(WG, 'li', (s) => `part[li] += part[li + ${s}];`)}
  if (li == 0u) { S[p.slot + wid.x] = part[0]; }`,
});

// total = √Σ partials; coef = min(1, max_norm / (total + 1e-6)) as clip_grad_norm_ computes it.
const NORM = defineKernel({
  name: 'optim:norm',
  params: { count: 'u32', maxNorm: 'f32' },
  bindings: { S: 'f32', N: 'rw f32' },
  workgroupSize: [1],
  body: `
  var t = 0.0;
  for (var i = 0u; i < p.count; i++) { t += S[i]; }
  let total = sqrt(t);
  N[0] = total;
  N[1] = select(1.0, min(1.0, p.maxNorm / (total + 1e-6)), p.maxNorm > 0.0);`,
});

// One fused update per element: clip, decay, moments, bias-corrected step.
const ADAMW = defineKernel({
  name: 'optim:adamw',
  params: { n: 'u32', lr: 'f32', b1: 'f32', b2: 'f32', eps: 'f32', wd: 'f32', bc1: 'f32', bc2sqrt: 'f32' },
  bindings: { W: 'rw f32', G: 'f32', M: 'rw f32', V: 'rw f32', N: 'f32' },
  body: `
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let g = G[i] * N[1];
  var w = W[i] * (1.0 - p.lr * p.wd);
  let m = p.b1 * M[i] + (1.0 - p.b1) * g;
  let v = p.b2 * V[i] + (1.0 - p.b2) * g * g;
  M[i] = m;
  V[i] = v;
  w -= (p.lr / p.bc1) * m / (sqrt(v) / p.bc2sqrt + p.eps);
  W[i] = w;`,
});

/** Workgroups of the packed Σg²: enough to spread a few million values over the GPU, few enough to sum serially. */
const SUMSQ_PARTS = 64;

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
  /** per-parameter moments; in packed mode views of one buffer each, laid out as the packed parameters */
  readonly m: Tensor[];
  readonly v: Tensor[];
  private mWhole: Tensor | null = null;
  private vWhole: Tensor | null = null;
  private readonly packed: { params: Tensor; grads: Tensor } | null;
  /** in packed mode, each parameter's gradient view of packed.grads (the update reads the buffer, not p.grad) */
  private gradViews: (Tensor | null)[] = [];
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
    this.packed = opts.packed ?? null;
    if (this.packed) {
      const shapes = params.map((p) => p.shape);
      const m = Tensor.packed(shapes);
      const v = Tensor.packed(shapes);
      if (m.whole.size !== this.packed.params.size || m.whole.size !== this.packed.grads.size) {
        throw new Error(`AdamW: packed parameters (${this.packed.params.size}) and gradients (${this.packed.grads.size}) do not match the ${params.length} parameters' layout (${m.whole.size})`);
      }
      [this.m, this.v] = [m.views.map(keep), v.views.map(keep)];
      [this.mWhole, this.vWhole] = [keep(m.whole), keep(v.whole)];
      this.gradViews = params.map((p) => p.grad);
    } else {
      this.m = params.map((p) => keep(fill(p.shape, 0)));
      this.v = params.map((p) => keep(fill(p.shape, 0)));
    }
    this.partials = keep(fill([Math.max(SUMSQ_PARTS, params.length)], 0));
    this.norm = keep(fill([2], 0));
  }

  /** Clip (when maxGradNorm > 0) and update every parameter that has a gradient. Encodes only; nothing is read back. */
  update(): void {
    this.step++;
    const [b1, b2] = this.betas;
    const maxNorm = Number.isFinite(this.maxGradNorm) ? this.maxGradNorm : 0;
    const step = { lr: this.lr, b1, b2, eps: this.eps, wd: this.weightDecay, bc1: 1 - b1 ** this.step, bc2sqrt: Math.sqrt(1 - b2 ** this.step) };
    if (this.packed) {
      // the kernel reads the packed buffer: a gradient that left it (p.zeroGrad() frees the view) would be ignored silently
      const moved = this.params.findIndex((p, i) => p.grad !== this.gradViews[i]);
      if (moved >= 0) throw new Error(`AdamW: ${this.params[moved]!.name ?? `parameter ${moved}`}'s gradient is no longer its view of the packed buffer: zero gradients with opt.zeroGrad(), not Var.zeroGrad()`);
      const { params: W, grads: G } = this.packed;
      SUMSQ.run({ G, S: this.partials }, { n: G.size, slot: 0 }, [SUMSQ_PARTS]);
      NORM.run({ S: this.partials, N: this.norm }, { count: SUMSQ_PARTS, maxNorm }, [1]);
      ADAMW.run({ W, G, M: this.mWhole!, V: this.vWhole!, N: this.norm }, { n: W.size, ...step }, grid(Math.ceil(W.size / WG)));
      return;
    }
    this.params.forEach((p, i) => {
      const g = p.grad;
      SUMSQ.run({ G: g ?? this.m[i]!, S: this.partials }, { n: g ? g.size : 0, slot: i }, [1]);
    });
    NORM.run({ S: this.partials, N: this.norm }, { count: this.params.length, maxNorm }, [1]);
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      ADAMW.run({ W: p.data, G: p.grad, M: this.m[i]!, V: this.v[i]!, N: this.norm }, { n: p.size, ...step }, grid(Math.ceil(p.size / WG)));
    });
  }

  /** Zero the gradients for the next step: one clear of the packed buffer, or free each one. */
  zeroGrad(): void {
    if (this.packed) this.packed.grads.clear();
    else for (const p of this.params) p.zeroGrad();
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
      t.write(a);
    }
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v, this.partials, this.norm]) t.dispose();
    this.mWhole?.dispose();
    this.vWhole?.dispose();
  }
}
