// Fused causal self-attention with grouped KV heads and a key padding mask: forward, backward and the float64 twin.
//
//   q: [B, T, H, D]   k, v: [B, T, KV, D]   mask: i32 [B, T] (1 = real token, 0 = padding)   ->   out: [B, T, H, D]
//
// The semantics are Hugging Face's eager attention with a causal and a padding mask: query i of head h attends to the
// keys j ≤ i with mask[b, j] = 1 of KV head h / (H / KV) (repeat_kv), with a float32 softmax of scale·q·k over them.
// With Mistral's sliding window W (attrs.window) the keys are further limited to i − W < j ≤ i, as transformers'
// sliding-window causal mask does: by index in the sequence, so a query sees itself and the W − 1 keys before it.
// Right and left padding are both exact for the real positions. A query row with no allowed key at all (a position
// before the first real token under left padding) gets out = 0 and zero gradients; HF produces an arbitrary row there
// (a softmax over all −∞ / min-float scores), and those positions are never read by the loss or by generation.
//
// Per (batch, head), over the allowed keys:  S = scale·Q·Kᵀ,  P = softmax(S) by row,  O = P·V.  Backward:
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − Δ) with Δ_i = Σ_j P_ij·dP_ij = dO_i·O_i,  dQ = scale·dS·K,  dK = scale·dSᵀ·Q,
// with dK and dV summed over the query heads that share a KV head. The forward saves only each row's logsumexp
// L: [B, H, T]; the backward recomputes P = e^{S − L} from it rather than storing the T×T probabilities.
//
// The layouts are what the q/k/v projections produce and what o_proj consumes (reshape the output to [B*T, H*D]), so
// there is no permute and no repeat_kv copy anywhere. The T×T scores are materialised per (batch, head); the three
// products over them (rowdot: Q·Kᵀ, dO·Vᵀ; rowmix: P·V, dS·K; colmix: dSᵀ·Q, Pᵀ·dO) come in two kernel families,
// picked by the kernel policy: 4×4 register blocks (attention-kernels.ts) or subgroup-broadcast tiles on CPU
// adapters (attention-subgroup.ts), where loads, not multiply-adds, are the cost (bench/README.md).
import { kernelPolicy, type Tensor, type AttentionKernels } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import { Var, constant } from '../var.ts';
import { rowdot, rowmix, colmix, softmaxRows, rowDelta, type AttnDims, type RowdotMode } from './attention-kernels.ts';
import { subgroupRowdot, subgroupRowmix, subgroupColmix } from './attention-subgroup.ts';

export interface AttentionAttrs {
  /** multiplies q·k before the softmax; default 1/√D */
  scale?: number;
  /** Mistral's sliding window W: query i sees keys i − W < j ≤ i only; null/undefined = full causal attention */
  window?: number | null;
}

/** Check the four shapes against each other; one clear line on failure. */
function attnDims(q: readonly number[], k: readonly number[], v: readonly number[], mask: readonly number[], attrs: AttentionAttrs): AttnDims {
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (q.length !== 4) throw new Error(`attention: q must be [B, T, H, D], got ${fmt(q)}`);
  const [B, T, H, D] = q as [number, number, number, number];
  if (k.length !== 4 || k[0] !== B || k[1] !== T || k[3] !== D) {
    throw new Error(`attention: k must be [B, T, KV, D] = [${B}, ${T}, KV, ${D}] to match q ${fmt(q)}, got ${fmt(k)}`);
  }
  if (fmt(v) !== fmt(k)) throw new Error(`attention: v ${fmt(v)} must have the shape of k ${fmt(k)}`);
  const KV = k[2]!;
  if (KV < 1 || H % KV !== 0) throw new Error(`attention: query heads (${H}) must be a multiple of KV heads (${KV})`);
  if (mask.length !== 2 || mask[0] !== B || mask[1] !== T) throw new Error(`attention: mask must be [B, T] = [${B}, ${T}], got ${fmt(mask)}`);
  if (D < 1) throw new Error(`attention: head dim must be at least 1, got ${D}`);
  const scale = attrs.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale must be a finite number, got ${attrs.scale}`);
  const w = attrs.window ?? null;
  if (w !== null && (!Number.isSafeInteger(w) || w < 1)) throw new Error(`attention: window must be a positive integer or null, got ${w}`);
  // a window that covers the whole sequence changes nothing: 0 tells the kernels "no window"
  return { B, T, H, KV, D, scale, window: w !== null && w < T ? w : 0 };
}

// ---- float64 twin: plain loops over the textbook formulas ---------------------------------------------------------

/** For each (b, h, i): the allowed keys, their probabilities P_ij and the KV head; skipped when the row is empty. */
function eachRow(
  [q, k, , mask]: F64[],
  d: AttnDims,
  f: (b: number, h: number, i: number, g: number, keys: number[], p: number[]) => void,
): void {
  const { B, T, H, KV, D, scale, window } = d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (let i = 0; i < T; i++) {
        const keys: number[] = [];
        const first = window > 0 ? Math.max(0, i - window + 1) : 0; // the sliding window: i − W < j
        for (let j = first; j <= i; j++) if (mask!.data[b * T + j] !== 0) keys.push(j);
        if (keys.length === 0) continue; // no allowed key: out = 0, gradients 0
        const s = keys.map((j) => {
          let dot = 0;
          for (let c = 0; c < D; c++) dot += q!.data[((b * T + i) * H + h) * D + c]! * k!.data[((b * T + j) * KV + g) * D + c]!;
          return scale * dot;
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        f(b, h, i, g, keys, e.map((x) => x / z));
      }
    }
  }
}

function cpuForward(xs: F64[], attrs: AttentionAttrs): F64 {
  const d = attnDims(xs[0]!.shape, xs[1]!.shape, xs[2]!.shape, xs[3]!.shape, attrs);
  const { T, H, KV, D } = d;
  const v = xs[2]!;
  const out = { shape: [...xs[0]!.shape], data: new Float64Array(xs[0]!.data.length) };
  eachRow(xs, d, (b, h, i, g, keys, p) => {
    const o = ((b * T + i) * H + h) * D;
    keys.forEach((j, n) => {
      for (let c = 0; c < D; c++) out.data[o + c] += p[n]! * v.data[((b * T + j) * KV + g) * D + c]!;
    });
  });
  return out;
}

function cpuBackward(gOut: F64, xs: F64[], attrs: AttentionAttrs): F64[] {
  const [q, k, v, mask] = xs as [F64, F64, F64, F64];
  const d = attnDims(q.shape, k.shape, v.shape, mask.shape, attrs);
  const { T, H, KV, D, scale } = d;
  const zerosLike = (x: F64) => ({ shape: [...x.shape], data: new Float64Array(x.data.length) });
  const [dq, dk, dv] = [zerosLike(q), zerosLike(k), zerosLike(v)];
  eachRow(xs, d, (b, h, i, g, keys, p) => {
    const qi = ((b * T + i) * H + h) * D;
    // dP_ij = dO_i·V_j;  dS_ij = P_ij (dP_ij − Σ_j' P_ij' dP_ij')
    const dp = keys.map((j) => {
      let s = 0;
      for (let c = 0; c < D; c++) s += gOut.data[qi + c]! * v.data[((b * T + j) * KV + g) * D + c]!;
      return s;
    });
    const rowDot = keys.reduce((a, _, n) => a + p[n]! * dp[n]!, 0);
    keys.forEach((j, n) => {
      const kj = ((b * T + j) * KV + g) * D;
      const ds = p[n]! * (dp[n]! - rowDot);
      for (let c = 0; c < D; c++) {
        dq.data[qi + c] += scale * ds * k.data[kj + c]!;
        dk.data[kj + c] += scale * ds * q.data[qi + c]!;
        dv.data[kj + c] += p[n]! * gOut.data[qi + c]!;
      }
    });
  });
  return [dq, dk, dv, zerosLike(mask)];
}

// ---- the two passes on the GPU ----------------------------------------------------------------------------------------

let forcedKernels: AttentionKernels | null = null;

/** Force attention's kernel family (tests run both on one adapter), or null to follow the kernel policy again. */
export function setAttentionKernels(kind: AttentionKernels | null): void {
  forcedKernels = kind;
}

/** The three products for these shapes: subgroup tiles need fixed-size subgroups and vec4 rows (D % 4 == 0). */
function products(d: AttnDims) {
  const pol = kernelPolicy();
  const kind = forcedKernels ?? pol.attention;
  if (kind === 'subgroup' && !pol.subgroupSize) throw new Error('attention: the subgroup kernels need a device with fixed-size subgroups');
  if (kind === 'subgroup' && d.D % 4 === 0) {
    const SG = pol.subgroupSize;
    return {
      rowdot: (mode: RowdotMode, x: Tensor, y: Tensor, mask: Tensor, rows: Tensor[]) => subgroupRowdot(SG, mode, x, y, mask, rows, d),
      rowmix: (a: Tensor, y: Tensor, _mask: Tensor, alpha: number) => subgroupRowmix(SG, a, y, d, alpha),
      colmix: (a: Tensor, x: Tensor, _mask: Tensor, alpha: number) => subgroupColmix(SG, a, x, d, alpha),
    };
  }
  return {
    rowdot: (mode: RowdotMode, x: Tensor, y: Tensor, mask: Tensor, rows: Tensor[]) => rowdot(mode, x, y, mask, rows, d),
    rowmix: (a: Tensor, y: Tensor, mask: Tensor, alpha: number) => rowmix(a, y, mask, d, alpha),
    colmix: (a: Tensor, x: Tensor, mask: Tensor, alpha: number) => colmix(a, x, mask, d, alpha),
  };
}

// q: [B, T, H, D], k, v: [B, T, KV, D] -> O: [B, T, H, D] and the logsumexp L: [B, H, T] of each query row
function attentionForward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, d: AttnDims): { o: Tensor; lse: Tensor } {
  const f = products(d);
  const probs = f.rowdot('logits', q, k, mask, []); // scores now, probabilities after the softmax
  const lse = softmaxRows(probs, d);
  const o = f.rowmix(probs, v, mask, 1);
  probs.dispose(); // stream-ordered: the kernels above run first
  return { o, lse };
}

// dO: [B, T, H, D] -> dQ: [B, T, H, D], dK, dV: [B, T, KV, D], each null where not asked for (P recomputed from L)
function attentionBackward(dO: Tensor, [q, k, v, mask]: Tensor[], o: Tensor, lse: Tensor, d: AttnDims, want: { q: boolean; k: boolean; v: boolean }) {
  const f = products(d);
  const probs = f.rowdot('probs', q!, k!, mask!, [lse]);
  let dq: Tensor | null = null;
  let dk: Tensor | null = null;
  if (want.q || want.k) {
    const delta = rowDelta(o, dO, d);
    const dscores = f.rowdot('dscores', dO, v!, mask!, [probs, delta]);
    if (want.q) dq = f.rowmix(dscores, k!, mask!, d.scale);
    if (want.k) dk = f.colmix(dscores, q!, mask!, d.scale);
    delta.dispose();
    dscores.dispose();
  }
  const dv = want.v ? f.colmix(probs, dO, mask!, 1) : null;
  probs.dispose();
  return { dq, dk, dv };
}

// ---- the op ---------------------------------------------------------------------------------------------------------

function gpuDims([q, k, v, mask]: Tensor[], attrs: AttentionAttrs): AttnDims {
  const d = attnDims(q!.shape, k!.shape, v!.shape, mask!.shape, attrs);
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t!.dtype !== 'f32') throw new Error(`attention: ${n} must be f32, got ${t!.dtype}`);
  }
  if (mask!.dtype !== 'i32') throw new Error(`attention: mask must be i32 (1 = token, 0 = padding), got ${mask!.dtype}`);
  return d;
}

// saves the forward's logsumexp L: [B, H, T], from which the backward recomputes P = e^{S − L}
export const ATTENTION = defineOp<AttentionAttrs, Tensor>({
  name: 'attention',
  rule:
    'O = P·V, P = softmax(scale·Q·Kᵀ over keys j ≤ i (and i − W < j with a window W) with mask 1): dV = Pᵀ·dO, dS = P∘(dO·Vᵀ − rowsum(dO∘O)), ' +
    'dQ = scale·dS·K, dK = scale·dSᵀ·Q (dK, dV summed over the query heads sharing a KV head)',
  differentiable: [true, true, true, false],
  forward(inputs, attrs) {
    const d = gpuDims(inputs, attrs);
    const [q, k, v, mask] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const { o, lse } = attentionForward(q, k, v, mask, d);
    return { out: o, saved: lse };
  },
  backward(g, { inputs, out, attrs, needs, saved: lse }) {
    const d = gpuDims(inputs, attrs);
    const r = attentionBackward(g, inputs, out, lse, d, { q: !!needs[0], k: !!needs[1], v: !!needs[2] });
    return [r.dq, r.dk, r.dv, null];
  },
  cpu: {
    forward: cpuForward,
    backward: (g, { inputs, attrs }) => cpuBackward(g, inputs, attrs),
  },
});

/**
 * Causal self-attention over grouped KV heads with a padding mask (and optionally Mistral's sliding window).
 * q: [B, T, H, D], k and v: [B, T, KV, D], mask: i32 [B, T] (1 = token, 0 = padding) -> [B, T, H, D].
 */
export function attention(q: Var, k: Var, v: Var, mask: Var | Tensor, attrs: AttentionAttrs = {}): Var {
  return apply(ATTENTION, [q, k, v, mask instanceof Var ? mask : constant(mask)], attrs);
}
