// Rotary position embedding, Hugging Face's rotate-half convention (Llama/Mistral `apply_rotary_pos_emb`):
//   inv_freq[i] = 1 / θ^(2i/D)  (i < D/2, float32, computed on the host exactly as HF does)
//   a = p · inv_freq[i] (float32), cos = concat(cos a, cos a), sin likewise
//   out = x·cos + rotate_half(x)·sin,   rotate_half(x) = concat(−x[D/2:], x[:D/2])
// Pairing x1 = x[i] with x2 = x[i + D/2], that is a plane rotation by a:
//   o1 = x1·c − x2·s,   o2 = x2·c + x1·s          (o = R(a)·x, R(a) = [[c, −s], [s, c]])
// Backward: R is orthogonal, so dx = R(a)ᵀ·g = R(−a)·g:
//   dx1 = g1·c + g2·s,  dx2 = g2·c − g1·s,  i.e.  dx = g·cos + rotate_half⁻¹(g·sin),  rotate_half⁻¹(v) = concat(v[D/2:], −v[:D/2])
// — the forward kernel with sin negated. Positions are data (ids), not differentiable.
//
// Layout: x [B, T, nHeads, D] is a projection's output [B*T, nHeads*D] reshaped for free (no permute); positions [B, T] i32
// are explicit so left-padded generation can pass its own.
// Kernel: one invocation per (row, i) loops over the heads, computing cos/sin once per pair of lanes instead of reading a
// cos/sin table — as fast, with no table and no maximum position (measurements: bench/README.md).
import { Tensor, rt, grid, ref, defineKernel, flatIndex, type Runtime } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

export interface RopeAttrs {
  /** the rotary base (HF's rope_theta / rope_parameters.rope_theta), e.g. 10000 or 1e6 */
  theta: number;
}

/** inv_freq as HF computes it in float32: `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))` -> [D/2] */
export function ropeInvFreq(theta: number, D: number): Float32Array {
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) {
    const e = Math.fround((2 * i) / D); // arange(0, dim, 2).float() / dim, a float32 division
    out[i] = Math.fround(1 / Math.fround(Math.fround(theta) ** e)); // f32 pow, then f32 reciprocal
  }
  return out;
}

// ---- WGSL ---------------------------------------------------------------------------------------------------------

const WG = 64;

// cos and sin of a float32 angle to ~1 ulp, the same on every adapter. WGSL's built-ins only promise 2^-11 absolute on
// [-π, π]: lavapipe is exact to 7e-8, but SwiftShader (Chrome's CPU adapter) is off by 1.9e-4, which moved the fixture's
// logits by 1.3e-4, past the HF parity bound. Cephes' sinf/cosf: reduce by π/4 in three exact parts (valid to |a| ~ 8192,
// four times the longest context here), then the minimax polynomials on [-π/4, π/4].
const COS_SIN = `
fn cosSin(a: f32) -> vec2<f32> {
  let j = floor(abs(a) * 1.2732395447351628); // 4/π
  let q = u32(j) + (u32(j) & 1u); // even octant: the polynomial's centre
  let y = f32(q);
  let x = ((abs(a) - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
  let z = x * x;
  let sp = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * x + x;
  let cp = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
  let oct = (q / 2u) & 3u; // quarter turns
  var c = cp;
  var s = sp;
  if (oct == 1u) { c = -sp; s = cp; }
  if (oct == 2u) { c = -cp; s = -sp; }
  if (oct == 3u) { c = sp; s = -cp; }
  return vec2<f32>(c, select(s, -s, a < 0.0));
}`;

// x: [rows, H, D], positions: [rows] i32, inv_freq: [D/2] -> y: [rows, H, D]; one invocation per (row, i < D/2).
// sign = +1 rotates by +a (forward), −1 by −a (backward).
const ROPE_KERNEL = defineKernel({
  name: 'rope',
  workgroupSize: [WG],
  params: { n: 'u32', H: 'u32', half: 'u32', sign: 'f32' },
  bindings: { X: 'f32', POS: 'i32', INV: 'f32', Y: 'rw f32' },
  decls: COS_SIN,
  body: `${flatIndex(WG, 'k')}
  if (k >= p.n) { return; }
  let i = k % p.half;
  let row = k / p.half;
  let a = f32(POS[row]) * INV[i];  // float32 product, as HF's inv_freq @ position_ids
  let cs = cosSin(a);
  let c = cs.x;
  let s = p.sign * cs.y;
  for (var h = 0u; h < p.H; h++) {
    let j = (row * p.H + h) * 2u * p.half + i;
    let x1 = X[j];
    let x2 = X[j + p.half];
    Y[j] = x1 * c - x2 * s;
    Y[j + p.half] = x2 * c + x1 * s;
  }`,
});

// inv_freq lives in a small buffer per (runtime, θ, D), outside the tensor pool: uploaded once, like a pipeline. An upload
// through Tensor.fromArray would flush the step's command encoder on every call.
const invFreqBuffers = new WeakMap<Runtime, Map<string, GPUBuffer>>();

function invFreqBuffer(theta: number, D: number): GPUBuffer {
  const r = rt();
  let byKey = invFreqBuffers.get(r);
  if (!byKey) invFreqBuffers.set(r, (byKey = new Map()));
  const key = `${theta}:${D}`;
  let buf = byKey.get(key);
  if (!buf) {
    const data = ropeInvFreq(theta, D);
    // GPUBufferUsage.STORAGE | COPY_DST; a fresh buffer no queued command reads yet, so writeBuffer needs no flush
    buf = r.device.createBuffer({ size: data.byteLength, usage: 0x80 | 0x08, label: `rope.inv_freq:${key}` });
    r.device.queue.writeBuffer(buf, 0, data as Float32Array<ArrayBuffer>); // the DOM's BufferSource wants a plain ArrayBuffer
    byKey.set(key, buf);
  }
  return buf;
}

function checkInputs(x: { shape: readonly number[] }, pos: { shape: readonly number[] }, theta: number): void {
  const r = x.shape.length;
  if (r < 3) throw new Error(`rope: x must be [..., nHeads, D] with positions [...] (e.g. [B, T, nHeads, D]), got [${x.shape.join(', ')}]`);
  const D = x.shape[r - 1]!;
  if (D % 2 !== 0 || D === 0) throw new Error(`rope: head dim D must be even and positive, got ${D}`);
  const lead = x.shape.slice(0, r - 2);
  if (pos.shape.length !== lead.length || pos.shape.some((d, i) => d !== lead[i])) {
    throw new Error(`rope: positions shape [${pos.shape.join(', ')}] must be [${lead.join(', ')}] for x [${x.shape.join(', ')}]`);
  }
  if (!(theta > 0) || !Number.isFinite(theta)) throw new Error(`rope: theta must be a positive number, got ${theta}`);
}

function ropeGpu(x: Tensor, pos: Tensor, theta: number, sign: 1 | -1): Tensor {
  const [H, D] = x.shape.slice(-2) as [number, number];
  const half = D / 2;
  const rows = x.size / (H * D);
  const y = Tensor.empty(x.shape, 'f32');
  ROPE_KERNEL.run({ X: x, POS: pos, INV: invFreqBuffer(theta, D), Y: y }, { n: rows * half, H, half, sign }, grid(Math.ceil((rows * half) / WG)));
  return y;
}

// ---- float64 CPU twin: the same float32 angles, everything after them in float64 ------------------------------------------

function cpuRope(x: F64, pos: F64, theta: number, sign: 1 | -1): F64 {
  const [H, D] = x.shape.slice(-2) as [number, number];
  const half = D / 2;
  const inv = ropeInvFreq(theta, D);
  const y = ref.empty(x.shape);
  for (let row = 0; row < pos.data.length; row++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(pos.data[row]! * inv[i]!);
      const c = Math.cos(a);
      const s = sign * Math.sin(a);
      for (let h = 0; h < H; h++) {
        const j = (row * H + h) * D + i;
        const x1 = x.data[j]!;
        const x2 = x.data[j + half]!;
        y.data[j] = x1 * c - x2 * s;
        y.data[j + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

// ---- the op -----------------------------------------------------------------------------------------------------------

export const ROPE = defineOp<RopeAttrs>({
  name: 'rope',
  rule: 'y = x·cos + rotate_half(x)·sin (a rotation by p·inv_freq): dx = g·cos + rotate_half⁻¹(g·sin), rotate_half⁻¹(v) = concat(v[D/2:], −v[:D/2])',
  forward([x, pos], { theta }) {
    checkInputs(x!, pos!, theta);
    if (x!.dtype !== 'f32' || pos!.dtype !== 'i32') throw new Error(`rope: needs x f32 and positions i32, got ${x!.dtype} and ${pos!.dtype}`);
    return ropeGpu(x!, pos!, theta, 1);
  },
  backward: (g, { inputs: [, pos], attrs: { theta }, needs }) => [needs[0] ? ropeGpu(g, pos!, theta, -1) : null, null],
  cpu: {
    forward([x, pos], { theta }) {
      checkInputs(x!, pos!, theta);
      return cpuRope(x!, pos!, theta, 1);
    },
    backward: (g, { inputs: [, pos], attrs: { theta } }) => [cpuRope(g, pos!, theta, -1), ref.empty(pos!.shape)],
  },
  differentiable: [true, false],
});

/** Rotary embedding. x: [B, T, nHeads, D] (D even), positions: [B, T] i32 -> [B, T, nHeads, D] */
export const rope = (x: Var, positions: Var, theta: number) => apply(ROPE, [x, positions], { theta });
