// Cross-entropy of logits against integer targets, fused, as torch.nn.functional.cross_entropy(reduction='mean',
// ignore_index=-100, label_smoothing=ε) computes it — the loss Hugging Face's causal-LM models use (the one-token label
// shift lives in the model, not here). Label smoothing makes the target (1 − ε)·onehot(t) + ε/V, so a row's loss is
// lse − (1 − ε)·x_t − ε·mean_v x_v. Three kernels, no readback inside the step:
//   1. rows:  per row r, lse[r] = log Σ_v exp(x[r,v]) and loss[r] = lse[r] − (1 − ε)·x[r, t[r]] − ε·mean_v x[r, v]
//             (0 for ignored rows)
//   2. mean:  one workgroup: count = #rows with t ≠ ignoreIndex, loss = Σ loss[r] / count, both on the GPU
//             (all rows ignored → loss 0, where PyTorch gives 0/0 = NaN: an all-padding batch should not poison training)
//   3. back:  dlogits[r, v] = (exp(x[r,v] − lse[r]) − (1 − ε)·[v = t[r]] − ε/V)·g/count, zero rows where t[r] = ignoreIndex
// lse and count are saved by the forward for the backward. A target outside [0, V) that is not
// ignoreIndex cannot throw on the GPU: it makes its row's loss, the mean and the gradient NaN (PyTorch raises).
import { ref, grid, kernelPolicy, Tensor, WG, NEG_INF, defineKernel, kernelFor, treeReduce, flatIndex } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

export interface CrossEntropyAttrs {
  /** targets equal to this are skipped (default -100, as in PyTorch) */
  ignoreIndex?: number;
  /** ε in [0, 1): the target puts ε/V on every class and 1 − ε on top at t (PyTorch's label_smoothing; default 0) */
  labelSmoothing?: number;
  /** how kernel 1 reduces a row: 'tree' — one workgroup per row, tree in workgroup memory; 'serial' — one
   *  invocation per row, a serial loop. Default: rowVariant() — serial on a software adapter, else tree. */
  variant?: 'tree' | 'serial';
  /** rows per workgroup of the serial variant (default 8) */
  serialRows?: number;
}

// a quiet NaN; `& 0u` on a uniform keeps it out of constant evaluation, which rejects NaN
const NAN = 'bitcast<f32>(0x7fc00000u | (p.V & 0u))';
const W = 256;

// The online log-sum-exp step: fold value v into (m, s) with s = Σ exp(x − m); guards keep −∞ rows finite-safe.
const LSE_FNS = `
fn lseAdd(m: f32, s: f32, v: f32) -> vec2<f32> {
  if (v <= m) { return vec2<f32>(m, s + exp(v - m)); }
  return vec2<f32>(v, s * exp(m - v) + 1.0);
}
fn lseMerge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  if (b.y == 0.0) { return a; }
  if (a.y == 0.0) { return b; }
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
fn rowLoss(lse: f32, t: i32, xt: f32, sum: f32) -> f32 {
  if (t == p.ignore) { return 0.0; }
  if (t < 0 || t >= i32(p.V)) { return ${NAN}; }
  if (p.eps == 0.0) { return lse - xt; }
  return lse - (1.0 - p.eps) * xt - p.eps * sum / f32(p.V);
}`;

// kernel 1's declaration, shared by its two variants: x: [N, V], t: [N] -> lse: [N], loss: [N]. `variant` holds
// everything `body` and `shared` build on (the workgroup size included): both are built on the kernel's first use only.
function rowsKernel(variant: string, workgroup: number, body: () => string, shared: () => string = () => '') {
  return kernelFor(`crossEntropyRows:${variant}`, () => ({
    workgroupSize: [workgroup],
    params: { N: 'u32', V: 'u32', ignore: 'i32', eps: 'f32' },
    bindings: { X: 'f32', Tg: 'i32', Lse: 'rw f32', Loss: 'rw f32' },
    decls: `${LSE_FNS}
fn targetLogit(r: u32) -> f32 { let t = Tg[r]; if (t < 0 || t >= i32(p.V)) { return 0.0; } return X[r * p.V + u32(t)]; }
${shared()}`,
    body: body(),
  }));
}

// one workgroup of W per row: strided online log-sum-exp (and Σ x, label smoothing's mean), then a tree of lseMerge
const treeKernel = rowsKernel(`tree:w${W}`, W, () => `  let r = wid.y * nwg.x + wid.x;
  if (r >= p.N) { return; } // uniform per workgroup, so the barriers stay legal
  let base = r * p.V;
  var acc = vec2<f32>(${NEG_INF}, 0.0); // (running max, Σ exp(x − max)); s = 0 marks "no element yet"
  var sum = 0.0;
  for (var k = lid.x; k < p.V; k += ${W}u) { let v = X[base + k]; acc = lseAdd(acc.x, acc.y, v); sum += v; }
  sh[lid.x] = acc;
  shSum[lid.x] = sum;
  ${treeReduce(W, 'lid.x', (h) => `sh[lid.x] = lseMerge(sh[lid.x], sh[lid.x + ${h}]); shSum[lid.x] += shSum[lid.x + ${h}];`)}
  if (lid.x == 0u) {
    let lse = sh[0].x + log(sh[0].y);
    Lse[r] = lse;
    Loss[r] = rowLoss(lse, Tg[r], targetLogit(r), shSum[0]);
  }`, () => `var<workgroup> sh: array<vec2<f32>, ${W}>;
var<workgroup> shSum: array<f32, ${W}>;`);

// the same, one invocation per row; S rows per workgroup (small S spreads few rows over more CPU threads)
const serialKernel = (S: number) =>
  rowsKernel(`serial:s${S}`, S, () => `${flatIndex(S)}
  if (i >= p.N) { return; }
  let base = i * p.V;
  var acc = vec2<f32>(${NEG_INF}, 0.0);
  var sum = 0.0;
  for (var k = 0u; k < p.V; k++) { let v = X[base + k]; acc = lseAdd(acc.x, acc.y, v); sum += v; }
  let lse = acc.x + log(acc.y);
  Lse[i] = lse;
  Loss[i] = rowLoss(lse, Tg[i], targetLogit(i), sum);`);

// loss: [N], t: [N] -> out: [] (the mean), count: [1]; a single workgroup, fixed reduction order
const meanKernel = defineKernel({
  name: `crossEntropyMean:w${W}`,
  workgroupSize: [W],
  params: { N: 'u32', ignore: 'i32' },
  bindings: { Loss: 'f32', Tg: 'i32', Out: 'rw f32', Count: 'rw f32' },
  decls: `var<workgroup> sh: array<vec2<f32>, ${W}>;`,
  body: `  var acc = vec2<f32>(0.0, 0.0); // (Σ loss, count)
  for (var r = lid.x; r < p.N; r += ${W}u) {
    if (Tg[r] != p.ignore) { acc += vec2<f32>(Loss[r], 1.0); }
  }
  sh[lid.x] = acc;
  ${treeReduce(W, 'lid.x', (h) => `sh[lid.x] += sh[lid.x + ${h}];`)}
  if (lid.x == 0u) {
    let c = sh[0].y;
    Out[0] = select(0.0, sh[0].x / c, c > 0.0);
    Count[0] = c;
  }`,
});

// x: [N, V], t: [N], lse: [N], count: [1], g: [] -> dx: [N, V]; one workgroup per row, each invocation a strided
// loop over the row (a CPU adapter pays per workgroup: one invocation per logit was slower; bench/README.md)
const backwardKernel = defineKernel({
  name: 'crossEntropyBackward',
  params: { N: 'u32', V: 'u32', ignore: 'i32', eps: 'f32' },
  bindings: { X: 'f32', Tg: 'i32', Lse: 'f32', Count: 'f32', G: 'f32', DX: 'rw f32' },
  body: `  let r = wid.y * nwg.x + wid.x;
  if (r >= p.N) { return; }
  let base = r * p.V;
  let t = Tg[r];
  let lse = Lse[r];
  // an ignored row is exp(·)·0 = 0 (exp(x − lse) ≤ 1, so never ∞·0); an out-of-range target poisons its row with NaN
  var scale = select(G[0] / Count[0], 0.0, t == p.ignore);
  let hit = t != p.ignore && t >= 0 && t < i32(p.V);
  if (t != p.ignore && !hit) { scale = ${NAN}; }
  let off = p.eps / f32(p.V); // label smoothing's ε/V on every class (0 without it)
  for (var v = lid.x; v < p.V; v += ${WG}u) { DX[base + v] = (exp(X[base + v] - lse) - off) * scale; }
  // the one-hot term: the invocation whose stride owns column t rewrites it (no other invocation touches it)
  if (hit && u32(t) % ${WG}u == lid.x) { DX[base + u32(t)] = (exp(X[base + u32(t)] - lse) - (1.0 - p.eps) - off) * scale; }`,
});

/**
 * Kernel 1's variant when not given: a CPU pays for each workgroup and each barrier (serial measured ~1.5× faster on
 * lavapipe, bench/README.md); a real GPU wants a workgroup per row (coalesced loads).
 */
export function rowVariant(): 'tree' | 'serial' {
  return kernelPolicy().adapterClass === 'cpu' ? 'serial' : 'tree';
}

/** What the forward keeps for the backward: each row's logsumexp and the number of rows not ignored. */
interface Saved {
  lse: Tensor; // [N]
  count: Tensor; // [1]
}

function check(x: Tensor, t: Tensor): void {
  if (x.rank !== 2 || x.dtype !== 'f32') throw new Error(`crossEntropy: logits must be f32 [N, V], got ${x.dtype} [${x.shape.join(', ')}]`);
  if (t.dtype !== 'i32') throw new Error(`crossEntropy: targets must be i32, got ${t.dtype}`);
  if (t.rank !== 1 || t.shape[0] !== x.shape[0]) {
    throw new Error(`crossEntropy: targets [${t.shape.join(', ')}] do not match logits [${x.shape.join(', ')}] (want [${x.shape[0]}])`);
  }
}

// logits: [N, V], targets: [N] i32 -> loss: [] (and saves lse: [N], count: [1])
function forward(x: Tensor, t: Tensor, a: CrossEntropyAttrs): { out: Tensor; saved: Saved } {
  check(x, t);
  const [N, V] = x.shape as [number, number];
  const ignore = a.ignoreIndex ?? -100;
  const lse = Tensor.empty([N], 'f32');
  const rowLoss = Tensor.empty([N], 'f32');
  const out = Tensor.empty([], 'f32');
  const count = Tensor.empty([1], 'f32');
  if (N > 0 && V === 0) throw new Error('crossEntropy: logits have V = 0 classes');
  if (N > 0) {
    const serial = (a.variant ?? rowVariant()) === 'serial';
    const S = a.serialRows ?? 8;
    const buffers = { X: x, Tg: t, Lse: lse, Loss: rowLoss };
    const eps = a.labelSmoothing ?? 0;
    if (serial) serialKernel(S).run(buffers, { N, V, ignore, eps }, grid(Math.ceil(N / S)));
    else treeKernel.run(buffers, { N, V, ignore, eps }, grid(N));
  }
  meanKernel.run({ Loss: rowLoss, Tg: t, Out: out, Count: count }, { N, ignore }, [1]);
  rowLoss.dispose(); // stream-ordered pool: safe once the mean kernel is encoded
  return { out, saved: { lse, count } };
}

function backward(g: Tensor, x: Tensor, t: Tensor, s: Saved, a: CrossEntropyAttrs): Tensor {
  if (s.lse.disposed || s.count.disposed) throw new Error('crossEntropy: the saved lse was freed before backward()');
  const [N, V] = x.shape as [number, number];
  const dx = Tensor.empty(x.shape, 'f32');
  backwardKernel.run({ X: x, Tg: t, Lse: s.lse, Count: s.count, G: g, DX: dx }, { N, V, ignore: a.ignoreIndex ?? -100, eps: a.labelSmoothing ?? 0 }, grid(N));
  return dx;
}

// ---- the float64 twin ------------------------------------------------------------------------------------------------

function cpuRows(x: F64, t: F64, ignore: number, eps = 0): { lse: number[]; loss: number[]; count: number } {
  const [N, V] = x.shape as [number, number];
  const lse: number[] = [];
  const loss: number[] = [];
  let count = 0;
  for (let r = 0; r < N; r++) {
    const row = x.data.subarray(r * V, r * V + V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    let sum = 0;
    for (const v of row) {
      s += Math.exp(v - m);
      sum += v;
    }
    lse.push(m + Math.log(s));
    const tr = t.data[r]!;
    if (tr === ignore) loss.push(0);
    else {
      count++;
      loss.push(tr >= 0 && tr < V ? lse[r]! - (1 - eps) * row[tr]! - (eps * sum) / V : NaN);
    }
  }
  return { lse, loss, count };
}

export const CROSS_ENTROPY = defineOp<CrossEntropyAttrs, Saved>({
  name: 'crossEntropy',
  rule: 'L = mean over kept rows of lse(x_r) − (1−ε)·x_r[t_r] − ε·mean(x_r): dx_r = (softmax(x_r) − (1−ε)·onehot(t_r) − ε/V)·g/count, 0 for ignored rows',
  differentiable: [true, false],
  forward: ([x, t], a) => forward(x!, t!, a),
  backward: (g, { inputs: [x, t], saved, attrs, needs }) => [needs[0] ? backward(g, x!, t!, saved, attrs) : null, null],
  cpu: {
    forward([x, t], a) {
      const { loss, count } = cpuRows(x!, t!, a.ignoreIndex ?? -100, a.labelSmoothing ?? 0);
      return { shape: [], data: Float64Array.of(count > 0 ? loss.reduce((p, q) => p + q, 0) / count : 0) };
    },
    backward(g, { inputs: [x, t], attrs: a }) {
      const ignore = a.ignoreIndex ?? -100;
      const [N, V] = x!.shape as [number, number];
      const eps = a.labelSmoothing ?? 0;
      const { lse, count } = cpuRows(x!, t!, ignore, eps);
      const dx = ref.empty(x!.shape);
      for (let r = 0; r < N; r++) {
        const tr = t!.data[r]!;
        if (tr === ignore) continue;
        for (let v = 0; v < V; v++) {
          const d = Math.exp(x!.data[r * V + v]! - lse[r]!) - (v === tr ? 1 - eps : 0) - eps / V;
          dx.data[r * V + v] = tr >= 0 && tr < V ? (d * g.data[0]!) / count : NaN;
        }
      }
      return [dx, ref.empty(t!.shape)];
    },
  },
});

/** Mean cross-entropy over the rows whose target is not ignoreIndex (0 when all are ignored), optionally label-smoothed.
 *  logits: [N, V] f32, targets: [N] i32 -> [] */
export const crossEntropy = (logits: Var, targets: Var, opts: { ignoreIndex?: number; labelSmoothing?: number } = {}) => {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1), got ${eps}`);
  return apply(CROSS_ENTROPY, [logits, targets], { ignoreIndex: opts.ignoreIndex ?? -100, ...(eps > 0 && { labelSmoothing: eps }) });
};
