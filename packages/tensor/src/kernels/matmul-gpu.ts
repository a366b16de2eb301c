// Matmul kernels for discrete GPUs: C = alpha·op(A)·op(B) (+ C) (+ s·H·op(E), a low-rank term), f32 accumulation.
//
// - gemm: the register-blocked tile. A workgroup of (BM/TM)·(BN/TN) threads owns a BM×BN tile of C; each thread owns
//   TM×TN outputs in registers (rows in TM/4 groups of 4 strided by BM/(TM/4), columns likewise, so neighbouring
//   threads read neighbouring vec4s of workgroup memory: no bank conflicts). Each K-step of BK stages op(A)[BM×BK] and
//   op(B)[BK×BN] in workgroup memory as [k][m] and [k][n] vec4 rows, loaded with vec4 global reads along whichever
//   dimension is contiguous in memory. Per k the thread does TM·TN FMAs for TM/4 + TN/4 vec4 reads of shared memory —
//   that ratio, not the global loads, bounds an f32 GEMM on a GPU.
//   Optional: split-K (wid.z = a K slice writing partial sums that `splitReduce` adds up) for grids too small to fill the
//   GPU, and the low-rank epilogue C += s·H·op(E) with H: [M, r], E: [r, N] or [N, r] — LoRA's B·(A·x) folded into the
//   base weight's product, saving a dispatch, a read and a write of C.
// - thinN: N ≤ 16 (x·Aᵀ and g·B of LoRA, r columns). 32 threads share a row's K, each summing a strided quarter-vec4
//   walk, then one tree reduction over the 32 partial sums of every column at once.
// - thinM: M ≤ 16 with op(A) = Hᵀ (LoRA's weight gradients: Hᵀ·x sums over the batch's rows). 16 k-slices × 16
//   column-quads per workgroup; each thread keeps M vec4 partial sums, reduced over the k-slices at the end. `tC`
//   writes the transpose, which turns the same kernel into op(A)·H for N ≤ 16.
import { defineKernel, kernelFor, treeReduce, range, storeC, FLAT_INDEX, ROUND_F16, type KernelBody } from '../kernel.ts';

export interface GemmTile {
  BM: number;
  BN: number;
  BK: number;
  /** outputs per thread along M and N: 4 or 8 */
  TM: number;
  TN: number;
}

/** The layout of one gemm dispatch: what the WGSL specialises on. */
export interface GemmLayout {
  tA: boolean;
  tB: boolean;
  /** vec4 global loads of A (its contiguous dim % 4 == 0), of B, vec4 stores of C (N % 4 == 0) */
  vA: boolean;
  vB: boolean;
  vC: boolean;
  /** partial sums of a K slice into scratch (no alpha, no accumulate) */
  split: boolean;
  /** the low-rank epilogue with E stored [N, r] (true) or [r, N] (false); null: none */
  lowRank: null | { tE: boolean };
  /**
   * B stored as f16 (mixed precision: frozen weights in half the bytes). A is then rounded to f16 as it is staged, so
   * the product is f16·f16 summed in f32 — what a tensor core computes, and what PyTorch's autocast computes.
   */
  f16B?: boolean;
}

const XYZW = 'xyzw';

const GEMM_PARAMS = {
  M: 'u32', N: 'u32', K: 'u32', bA: 'u32', bB: 'u32', alpha: 'f32', acc: 'u32', kSlice: 'u32', r: 'u32', s: 'f32',
} as const;

/** The gemm kernel for a tile and layout (built once per key). */
export function gemmKernel(t: GemmTile, l: GemmLayout) {
  const key = `matmul:gemm:${t.BM}x${t.BN}x${t.BK}:${t.TM}x${t.TN}:${+l.tA}${+l.tB}${+l.vA}${+l.vB}${+l.vC}${+l.split}:${l.lowRank ? `lr${+l.lowRank.tE}` : ''}${l.f16B ? ':f16' : ''}`;
  return kernelFor(key, () => gemmSpec(t, l));
}

export function gemmThreads(t: GemmTile): number {
  return (t.BM / t.TM) * (t.BN / t.TN);
}

function gemmSpec({ BM, BN, BK, TM, TN }: GemmTile, l: GemmLayout): KernelBody {
  const TX = BN / TN;
  const TY = BM / TM;
  const NT = TX * TY;
  const [GM, GN] = [TM / 4, TN / 4]; // vec4 groups per thread along M and N
  // Stage op(A) into As[k][m/4] and op(B) into Bs[k][n/4]: each returns WGSL for one pass of all threads over a slab.
  // operand reads as f32: a stored f16 B widened, and A rounded through f16 when B is f16 (see GemmLayout.f16B)
  const ldA4 = (e: string) => (l.f16B ? `round16(${e})` : e);
  const ldA1 = (e: string) => (l.f16B ? `round16s(${e})` : e);
  const ldB4 = (e: string) => (l.f16B ? `vec4<f32>(${e})` : e);
  const ldB1 = (e: string) => (l.f16B ? `f32(${e})` : e);
  const stageA = l.vA
    ? l.tA
      ? // A stored [K, M]: vec4 along m
        slab(BM * BK / 4, NT, (e) => `let kk = ${e} / ${BM / 4}u; let mq = ${e} % ${BM / 4}u; let m = m0 + 4u * mq; let k = k0 + kk;
      As[kk * ${BM / 4}u + mq] = select(vec4<f32>(), ${ldA4(`A[(aBase + min(k, K - 1u) * M + min(m, M - 4u)) / 4u]`)}, k < kEnd && m < M);`)
      : // A stored [M, K]: vec4 along k, scattered into 4 rows of As
        slab(BM * BK / 4, NT, (e) => `let row = ${e} / ${BK / 4}u; let kq = ${e} % ${BK / 4}u; let m = m0 + row; let k = k0 + 4u * kq;
      let v = select(vec4<f32>(), ${ldA4(`A[(aBase + min(m, M - 1u) * K + min(k, K - 4u)) / 4u]`)}, k < kEnd && m < M);
      ${range(4).map((c) => `As[(4u * kq + ${c}u) * ${BM / 4}u + row / 4u][row % 4u] = v.${XYZW[c]};`).join(' ')}`)
    : slab(BM * BK, NT, (e) =>
        l.tA
          ? `let kk = ${e} / ${BM}u; let row = ${e} % ${BM}u; let m = m0 + row; let k = k0 + kk;
      As[kk * ${BM / 4}u + row / 4u][row % 4u] = select(0.0, ${ldA1(`A[aBase + min(k, K - 1u) * M + min(m, M - 1u)]`)}, k < kEnd && m < M);`
          : `let row = ${e} / ${BK}u; let kk = ${e} % ${BK}u; let m = m0 + row; let k = k0 + kk;
      As[kk * ${BM / 4}u + row / 4u][row % 4u] = select(0.0, ${ldA1(`A[aBase + min(m, M - 1u) * K + min(k, K - 1u)]`)}, k < kEnd && m < M);`,
      );
  const stageB = l.vB
    ? l.tB
      ? // B stored [N, K]: vec4 along k
        slab(BN * BK / 4, NT, (e) => `let col = ${e} / ${BK / 4}u; let kq = ${e} % ${BK / 4}u; let n = n0 + col; let k = k0 + 4u * kq;
      let v = select(vec4<f32>(), ${ldB4(`B[(bBase + min(n, N - 1u) * K + min(k, K - 4u)) / 4u]`)}, k < kEnd && n < N);
      ${range(4).map((c) => `Bs[(4u * kq + ${c}u) * ${BN / 4}u + col / 4u][col % 4u] = v.${XYZW[c]};`).join(' ')}`)
      : // B stored [K, N]: vec4 along n
        slab(BN * BK / 4, NT, (e) => `let kk = ${e} / ${BN / 4}u; let nq = ${e} % ${BN / 4}u; let n = n0 + 4u * nq; let k = k0 + kk;
      Bs[kk * ${BN / 4}u + nq] = select(vec4<f32>(), ${ldB4(`B[(bBase + min(k, K - 1u) * N + min(n, N - 4u)) / 4u]`)}, k < kEnd && n < N);`)
    : slab(BN * BK, NT, (e) =>
        l.tB
          ? `let col = ${e} / ${BK}u; let kk = ${e} % ${BK}u; let n = n0 + col; let k = k0 + kk;
      Bs[kk * ${BN / 4}u + col / 4u][col % 4u] = select(0.0, ${ldB1(`B[bBase + min(n, N - 1u) * K + min(k, K - 1u)]`)}, k < kEnd && n < N);`
          : `let kk = ${e} / ${BN}u; let col = ${e} % ${BN}u; let n = n0 + col; let k = k0 + kk;
      Bs[kk * ${BN / 4}u + col / 4u][col % 4u] = select(0.0, ${ldB1(`B[bBase + min(k, K - 1u) * N + min(n, N - 1u)]`)}, k < kEnd && n < N);`,
      );
  const acc = (g: number, c: number, h: number) => `acc${g * 4 + c}_${h}`;
  const fmas = range(GM)
    .map((g) => range(4).map((c) => range(GN).map((h) => `${acc(g, c, h)} = fma(vec4<f32>(a${g}.${XYZW[c]}), b${h}, ${acc(g, c, h)});`).join(' ')).join('\n      '))
    .join('\n      ');
  // the low-rank term of one output vec4: s·Σ_j H[m, j]·E(j, n..n+3)
  const lowRank = l.lowRank
    ? `var t = vec4<f32>();
        for (var j = 0u; j < p.r; j++) {
          let e = ${l.lowRank.tE ? 'vec4<f32>(E[min(n, N - 1u) * p.r + j], E[min(n + 1u, N - 1u) * p.r + j], E[min(n + 2u, N - 1u) * p.r + j], E[min(n + 3u, N - 1u) * p.r + j])' : 'vec4<f32>(E[j * N + min(n, N - 1u)], E[j * N + min(n + 1u, N - 1u)], E[j * N + min(n + 2u, N - 1u)], E[j * N + min(n + 3u, N - 1u)])'};
          t = fma(vec4<f32>(H[m * p.r + j]), e, t);
        }
        v += p.s * t;`
    : '';
  // v already holds alpha·acc (+ the low-rank term); split-K partial sums are stored raw and scaled by the reduce pass
  const store = (i: string, v: string) => (l.split ? `C[${i}] = ${v};` : `if (p.acc != 0u) { C[${i}] += ${v}; } else { C[${i}] = ${v}; }`);
  const stores = range(GM)
    .flatMap((g) =>
      range(4).flatMap((c) =>
        range(GN).map(
          (h) => `{
      let m = m0 + ${4 * g * TY}u + 4u * ty + ${c}u; let n = n0 + ${4 * h * TX}u + 4u * tx;
      if (m < M && n < N) {
        var v = ${l.split ? '' : 'p.alpha * '}${acc(g, c, h)};
        ${lowRank}
        ${l.vC ? store(`(cBase + m * N + n) / 4u`, 'v') : range(4).map((q) => `if (n + ${q}u < N) { ${store(`cBase + m * N + n + ${q}u`, `v.${XYZW[q]}`)} }`).join(' ')}
      }
    }`,
        ),
      ),
    )
    .join('\n    ');
  const bindings: Record<string, string> = {
    A: l.vA ? 'vec4<f32>' : 'f32',
    B: l.f16B ? (l.vB ? 'vec4<f16>' : 'f16') : l.vB ? 'vec4<f32>' : 'f32',
    C: l.vC ? 'rw vec4<f32>' : 'rw f32',
  };
  if (l.lowRank) Object.assign(bindings, { H: 'f32', E: 'f32' });
  return {
    params: GEMM_PARAMS,
    bindings,
    workgroupSize: [NT],
    enable: l.f16B ? ['f16'] : [],
    decls: `${l.f16B ? ROUND_F16 : ''}
var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>; // op(A) slab, [k][m / 4]
var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>; // op(B) slab, [k][n / 4]`,
    body: `
  let M = p.M; let N = p.N; let K = p.K;
  let tx = li % ${TX}u; let ty = li / ${TX}u;
  let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;
  // split-K: wid.z is the K slice and there is one batch; else wid.z is the batch
  let kBegin = ${l.split ? 'wid.z * p.kSlice' : '0u'}; let kEnd = ${l.split ? 'min(K, kBegin + p.kSlice)' : 'K'};
  let z = ${l.split ? '0u' : 'wid.z'};
  let aBase = z * p.bA; let bBase = z * p.bB; let cBase = ${l.split ? 'wid.z * M * N' : 'z * M * N'};
  ${range(GM * 4).flatMap((r) => range(GN).map((h) => `var acc${r}_${h} = vec4<f32>();`)).join(' ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    ${stageA}
    ${stageB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${range(GM).map((g) => `let a${g} = As[kk * ${BM / 4}u + ${g * TY}u + ty];`).join(' ')}
      ${range(GN).map((h) => `let b${h} = Bs[kk * ${BN / 4}u + ${h * TX}u + tx];`).join(' ')}
      ${fmas}
    }
    workgroupBarrier();
  }
  ${stores}`,
  };
}

/**
 * WGSL for `count` items spread over `threads` invocations (local index `li`), unrolled and bounds-guarded: `item(e)`
 * gets the WGSL name of the item's index (e0, e1, …: one per unrolled step, each in its own block).
 */
export function slab(count: number, threads: number, item: (e: string) => string): string {
  return range(Math.ceil(count / threads))
    .map((j) => {
      const e = `e${j}`;
      const guard = (j + 1) * threads > count ? `if (${e} < ${count}u) ` : '';
      return `{ let ${e} = li + ${j * threads}u; ${guard}{ ${item(e)} } }`;
    })
    .join('\n    ');
}

/** Sum the split-K partial sums: C = alpha·Σ_z P[z] (+ C). */
export const SPLIT_REDUCE = defineKernel({
  name: 'matmul:splitReduce',
  params: { n: 'u32', splits: 'u32', alpha: 'f32', acc: 'u32' },
  bindings: { P: 'f32', C: 'rw f32' },
  body: `
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  var t = 0.0;
  for (var z = 0u; z < p.splits; z++) { t += P[z * p.n + i]; }
  ${storeC('i', 't')}`,
});

// ---------------------------------------------------------------------------------------------------------------
// thinN: C[M, N] = alpha·A·op(B) for N ≤ 16, A stored [M, K] with K % 4 == 0. 8 rows per workgroup, 32 lanes a row.
export function thinNKernel(N: number, tB: boolean) {
  const key = `matmul:thinN:${N}:${+tB}`;
  return kernelFor(key, () => thinNSpec(N, tB));
}

function thinNSpec(N: number, tB: boolean): KernelBody {
  const cols = range(N);
  // op(B)(k + c, n): B stored [N, K] (tB) gives one vec4 per column; stored [K, N], four scalars
  const dots = tB
    ? cols.map((n) => `acc${n} += dot(x, B4[(${n}u * K + k) / 4u]);`).join(' ')
    : cols.map((n) => `acc${n} += dot(x, vec4<f32>(${range(4).map((c) => `B[(k + ${c}u) * ${N}u + ${n}u]`).join(', ')}));`).join(' ');
  return {
    params: { M: 'u32', K: 'u32', alpha: 'f32', acc: 'u32' },
    bindings: tB ? { A: 'vec4<f32>', B4: 'vec4<f32>', C: 'rw f32' } : { A: 'vec4<f32>', B: 'f32', C: 'rw f32' },
    decls: `var<workgroup> part: array<f32, ${256 * N}>; // [column][lane of 256]`,
    body: `
  let K = p.K;
  let lane = li % 32u; let m = wid.x * 8u + li / 32u;
  let row = min(m, p.M - 1u) * K;
  ${cols.map((n) => `var acc${n} = 0.0;`).join(' ')}
  for (var k = 4u * lane; k < K; k += 128u) {
    let x = A[(row + k) / 4u];
    ${dots}
  }
  ${cols.map((n) => `part[${n * 256}u + li] = acc${n};`).join(' ')}
  ${treeReduce(32, 'lane', (s) => `for (var c = 0u; c < ${N}u; c++) { part[c * 256u + li] += part[c * 256u + li + ${s}]; }`)}
  if (lane == 0u && m < p.M) {
    for (var c = 0u; c < ${N}u; c++) { ${storeC(`m * ${N}u + c`, 'part[c * 256u + li]')} }
  }`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// thinM: C[M, N] = alpha·Hᵀ·X for M ≤ 16, H stored [K, M], X stored [K, N] with N % 4 == 0 (tC: C stored [N, M]).
export function thinMKernel(M: number, tC: boolean) {
  const key = `matmul:thinM:${M}:${+tC}`;
  return kernelFor(key, () => thinMSpec(M, tC));
}

function thinMSpec(M: number, tC: boolean): KernelBody {
  return {
    params: { N: 'u32', K: 'u32', alpha: 'f32', acc: 'u32' },
    bindings: { H: 'f32', X: 'vec4<f32>', C: 'rw f32' },
    decls: 'var<workgroup> part: array<vec4<f32>, 256>; // [k-slice][column quad]',
    body: `
  let N = p.N; let K = p.K;
  let q = li % 16u; let ks = li / 16u;
  let n = wid.x * 64u + 4u * q;
  let nq = min(n, N - 4u) / 4u;
  var acc: array<vec4<f32>, ${M}>;
  for (var k = ks; k < K; k += 16u) {
    let x = X[k * (N / 4u) + nq];
    for (var i = 0u; i < ${M}u; i++) { acc[i] = fma(vec4<f32>(H[k * ${M}u + i]), x, acc[i]); }
  }
  for (var i = 0u; i < ${M}u; i++) {
    part[li] = acc[i];
    ${treeReduce(16, 'ks', (s) => `part[li] += part[li + 16u * ${s}];`)}
    if (ks == 0u && n < N) {
      let v = part[q];
      ${range(4).map((c) => `if (n + ${c}u < N) { ${storeC(tC ? `(n + ${c}u) * ${M}u + i` : `i * N + n + ${c}u`, `v.${XYZW[c]}`)} }`).join(' ')}
    }
    workgroupBarrier();
  }`,
  };
}
