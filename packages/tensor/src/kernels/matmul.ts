// Batched matmul C = alpha·op(A)·op(B) (+ C0), transposes as flags (strides), never as copies.
// Baseline kernel: each invocation computes a 4×4 block of C in registers (no shared memory — what lavapipe likes).
import { rt } from '../runtime.ts';
import { Tensor } from '../tensor.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** out = accumulate + alpha·op(A)·op(B), written into (and returning) this tensor */
  accumulate?: Tensor;
  alpha?: number;
}

const TILE = 4;
const WG = 8;

const KERNEL = {
  key: 'matmul:basic4x4',
  wgsl: () => `
struct P { M: u32, N: u32, K: u32, sAm: u32, sAk: u32, sBk: u32, sBn: u32, bA: u32, bB: u32, acc: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${WG}, ${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * ${TILE}u;
  let n0 = gid.x * ${TILE}u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let batch = gid.z;
  let a0 = batch * p.bA;
  let b0 = batch * p.bB;
  var acc: array<vec4<f32>, ${TILE}>;
  for (var k = 0u; k < p.K; k++) {
    var b = vec4<f32>(0.0);
    for (var j = 0u; j < ${TILE}u; j++) {
      if (n0 + j < p.N) { b[j] = B[b0 + k * p.sBk + (n0 + j) * p.sBn]; }
    }
    for (var i = 0u; i < ${TILE}u; i++) {
      if (m0 + i < p.M) { acc[i] += A[a0 + (m0 + i) * p.sAm + k * p.sAk] * b; }
    }
  }
  let c0 = batch * p.M * p.N;
  for (var i = 0u; i < ${TILE}u; i++) {
    if (m0 + i >= p.M) { break; }
    for (var j = 0u; j < ${TILE}u; j++) {
      if (n0 + j < p.N) {
        let idx = c0 + (m0 + i) * p.N + n0 + j;
        var v = p.alpha * acc[i][j];
        if (p.acc != 0u) { v += C[idx]; }
        C[idx] = v;
      }
    }
  }
}`,
};

/** The output shape of op(a)·op(b), or a clear error. */
export function matmulShape(a: readonly number[], b: readonly number[], o: MatmulOptions = {}): { M: number; N: number; K: number; batch: number[] } {
  if (a.length < 2 || b.length < 2) throw new Error(`matmul: operands need rank ≥ 2, got [${a.join(', ')}] and [${b.join(', ')}]`);
  const [ar, ac] = [a[a.length - 2]!, a[a.length - 1]!];
  const [br, bc] = [b[b.length - 2]!, b[b.length - 1]!];
  const [M, K] = o.transA ? [ac, ar] : [ar, ac];
  const [K2, N] = o.transB ? [bc, br] : [br, bc];
  if (K !== K2) throw new Error(`matmul: inner dims differ: [${a.join(', ')}]${o.transA ? 'ᵀ' : ''} · [${b.join(', ')}]${o.transB ? 'ᵀ' : ''}`);
  const ba = a.slice(0, -2);
  const bb = b.slice(0, -2);
  if (ba.length && bb.length && (ba.length !== bb.length || ba.some((d, i) => d !== bb[i]))) {
    throw new Error(`matmul: batch dims differ: [${ba.join(', ')}] vs [${bb.join(', ')}]`);
  }
  return { M, N, K, batch: ba.length ? ba : bb };
}

export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error(`matmul: needs f32 operands, got ${a.dtype} and ${b.dtype}`);
  const { M, N, K, batch } = matmulShape(a.shape, b.shape, o);
  const nb = batch.reduce((x, y) => x * y, 1);
  const outShape = [...batch, M, N];
  let c = o.accumulate;
  if (c && (c.shape.length !== outShape.length || c.shape.some((d, i) => d !== outShape[i]))) {
    throw new Error(`matmul: accumulate has shape [${c.shape.join(', ')}], product is [${outShape.join(', ')}]`);
  }
  c ??= Tensor.empty(outShape, 'f32');
  if (nb > 65535) throw new Error(`matmul: ${nb} batches exceed the dispatch limit`);
  const [sAm, sAk] = o.transA ? [1, M] : [K, 1];
  const [sBk, sBn] = o.transB ? [1, K] : [N, 1];
  rt().dispatch({
    kernel: KERNEL,
    buffers: [a.buffer, b.buffer, c.buffer],
    params: [M, N, K, sAm, sAk, sBk, sBn, a.rank > 2 ? M * K : 0, b.rank > 2 ? K * N : 0, o.accumulate ? 1 : 0, o.alpha ?? 1],
    types: 'uuuuuuuuuuf',
    workgroups: [Math.ceil(N / (TILE * WG)), Math.ceil(M / (TILE * WG)), nb],
  });
  return c;
}
