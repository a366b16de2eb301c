// Matmul kernels for CPU adapters (lavapipe/llvmpipe), where a subgroup runs as SIMD lanes of one CPU thread and a
// storage-buffer load is the costliest op (every lane checks bounds and loads on its own: ~25× an FMA per lane-value,
// measured in bench/src/tune/).
// - 'subgroup': each value is loaded once per subgroup: lane l loads row m0+l of A and subgroupBroadcast hands that row
//   to every lane (a register shuffle, about an FMA); each lane loads only its own 4 columns of B. Shared memory is
//   slower there (barriers switch coroutines); so are bigger register tiles (they spill). One workgroup = one subgroup.
// - 'uniform' (lavapipe's default): the same kernel, but the per-lane operand is read from 64 KiB uniform-buffer windows,
//   which lavapipe reads with vector gathers (no per-lane branches): 1.3-1.6× the 'subgroup' kernel. The operand is first
//   repacked into a scratch buffer, one window per (column panel, K chunk), one dispatch per window.
import { rt, grid } from '../runtime.ts';
import type { Tensor } from '../tensor.ts';
import { FLAT_INDEX, WG, ROUND_F16, defineKernel, kernelFor, range, storeC, type KernelBody } from '../kernel.ts';
import type { MatmulOptions } from './matmul.ts';

// Sizes, strides, alpha and the accumulate flag travel as uniforms: a kernel specialises only where the layout changes
// its loads (the vec4 subgroup kernels). Fewer pipelines matter on a CPU adapter, where each compile takes seconds.
export const SUBGROUP_PARAMS = {
  M: 'u32', N: 'u32', K: 'u32', bA: 'u32', bB: 'u32', alpha: 'f32', acc: 'u32', sAm: 'u32', sAk: 'u32', sBk: 'u32', sBn: 'u32', tA: 'u32', tB: 'u32',
} as const;

// ---------------------------------------------------------------------------------------------------------------
// The subgroup kernel. Workgroup (x, y, z) = one subgroup of SG lanes computing rows m0..m0+SG-1 and columns
// n0..n0+4·SG-1 of batch z; lane l holds columns n0+4l..n0+4l+3 of every row (acc_r: vec4). Each step of 4 k:
//   lane l loads a = A[m0+l, k..k+3] (one vec4); b_j = B[k+j, its 4 columns] for j < 4;
//   acc_r += broadcast(a.j from lane r) · b_j, for every row r and j.
// Indices are clamped, so the loop has no branches: a lane past the M or N edge reads the last row or column, and its
// results are not stored. tA/tB given: the vec4 kernel for that layout (K % 4 == 0 and N % 4 == 0); null: the kernel
// for any other shape, one k per step, scalar loads through the strides in the uniforms. f16B: B is stored f16 and A
// is rounded through f16 as it is read (mixed precision's f16·f16 products summed in f32).
export function subgroupKernel(SG: number, tA: boolean | null, tB: boolean | null, f16B = false, tC = false) {
  const vec = tA !== null;
  const key = `matmul:sg${SG}:${vec ? `${tA ? 't' : 'n'}${tB ? 't' : 'n'}:vec4` : 'strided'}${f16B ? ':f16' : ''}${tC ? ':tc' : ''}`;
  return kernelFor(key, () => subgroupSpec(SG, tA, tB, f16B, tC));
}

/** subgroupKernel's declaration, built once per key. */
function subgroupSpec(SG: number, tA: boolean | null, tB: boolean | null, f16B: boolean, tC: boolean) {
  const rows = range(SG);
  const xyzw = (i: number) => 'xyzw'[i]!;
  const vec = tA !== null;
  const cols = range(4).map((c) => `nc.${xyzw(c)}`);
  let loadA: string; // a: A(ma, k..k+3)
  let loadB: string; // b0..b3: rows k..k+3 of op(B) over this lane's 4 columns
  if (!vec) {
    // one k per step: this kernel is for rare odd shapes, and a smaller loop compiles faster
    loadA = `let a = A[aBase + ma * p.sAm + k * p.sAk];`;
    loadB = `let b = vec4<f32>(${cols.map((c) => `B[bBase + k * p.sBk + ${c} * p.sBn]`).join(', ')});`;
  } else {
    loadA = tA ? `let a = vec4<f32>(${range(4).map((j) => `A[aBase + (k + ${j}u) * M + ma]`).join(', ')});` : `let a = A[(aBase + ma * K) / 4u + q];`;
    if (!tB) loadB = range(4).map((j) => `let b${j} = B[(bBase + (k + ${j}u) * N) / 4u + nq];`).join('\n    ');
    else {
      // each of the lane's columns is a stored row of B: load 4 k's of each, then regroup (free: SoA registers)
      loadB = `${cols.map((c, i) => `let c${i} = B[(bBase + ${c} * K) / 4u + q];`).join(' ')}
    ${range(4).map((j) => `let b${j} = vec4<f32>(${range(4).map((i) => `c${i}.${xyzw(j)}`).join(', ')});`).join('\n    ')}`;
    }
  }
  if (f16B) {
    // widen every B read; round A's values through f16
    loadB = loadB.replace(/B\[[^\]]*\]/g, (r) => (vec ? `vec4<f32>(${r})` : `f32(${r})`));
    loadA = loadA.replace(/^let a = (.*);$/, (_, e: string) => `let a = ${vec ? `round16(${e})` : `round16s(${e})`};`);
  }
  const vecA = vec && !tA;
  const vecC = vec && !tC; // N % 4 == 0: this lane's 4 columns are one aligned vec4 of C
  const fma = (r: number, j: number) =>
    vec ? `acc${r} = fma(vec4<f32>(subgroupBroadcast(a.${xyzw(j)}, ${r}u)), b${j}, acc${r});` : j ? '' : `acc${r} = fma(vec4<f32>(subgroupBroadcast(a, ${r}u)), b, acc${r});`;
  // tC: C is stored transposed, [N, M] (the caller computes Cᵀ = op(B)ᵀ·op(A)ᵀ so that a thin side is the rows)
  const at = (r: number) => (tC ? `cBase + (n + j) * M + m0 + ${r}u` : `cBase + (m0 + ${r}u) * N + n + j`);
  const stores = vecC
    ? `if (n < N) {
    ${rows.map((r) => `if (m0 + ${r}u < M) { let i = (cBase + (m0 + ${r}u) * N + n) / 4u; ${storeC('i', `acc${r}`)} }`).join('\n    ')}
  }`
    : rows.map((r) => `if (m0 + ${r}u < M) { for (var j = 0u; j < 4u; j++) { if (n + j < N) { let i = ${at(r)}; ${storeC('i', `acc${r}[j]`)} } } }`).join('\n  ');
  return {
    params: SUBGROUP_PARAMS,
    bindings: {
      A: vecA ? 'vec4<f32>' : 'f32',
      B: vec ? `vec4<${f16B ? 'f16' : 'f32'}>` : f16B ? 'f16' : 'f32',
      C: vecC ? 'rw vec4<f32>' : 'rw f32',
    },
    workgroupSize: [SG],
    enable: f16B ? ['subgroups', 'f16'] : ['subgroups'],
    decls: f16B ? ROUND_F16 : '',
    body: `
  let M = p.M; let N = p.N; let K = p.K;
  let m0 = wid.y * ${SG}u;
  let n = wid.x * ${4 * SG}u + 4u * lane; // this lane's first column
  let ma = min(m0 + lane, M - 1u); // the row of A this lane loads for the whole subgroup
  let nc = min(vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(N - 1u));
  let nq = min(n, N - 1u) / 4u;
  let aBase = wid.z * p.bA; let bBase = wid.z * p.bB; let cBase = wid.z * M * N;
  ${rows.map((r) => `var acc${r} = vec4<f32>();`).join(' ')}
  for (var q = 0u; q < ${vec ? 'K / 4u' : 'K'}; q++) {
    let k = ${vec ? '4u * q' : 'q'};
    ${loadA}
    ${loadB}
    ${rows.map((r) => range(4).map((j) => fma(r, j)).join(' ')).join('\n    ')}
  }
  ${stores}`,
  } satisfies KernelBody;
}

// ---------------------------------------------------------------------------------------------------------------
// The 'uniform' path. The "lane" operand L (each lane reads its own columns of it) is copied into windows of a scratch
// buffer, each window one uniform binding of 64 KiB = KC rows (k) × TW columns; the "broadcast" operand R is read
// cooperatively as in the subgroup kernel. Which operand is L: op(B) [K × N] (C = R·L with R = op(A), batch folded
// into its rows), or op(A)ᵀ [K × M] (Cᵀ = op(B)ᵀ·op(A)ᵀ) when that is estimated faster (lm_head: x is 48 × 224).
const WINDOW = 16384; // floats in 64 KiB
const UNIFORM_PARAMS = {
  M: 'u32', W: 'u32', K: 'u32', kc0: 'u32', kcn: 'u32', n0: 'u32', tw: 'u32', alpha: 'f32', acc: 'u32', sRm: 'u32', sRk: 'u32', sCm: 'u32', sCn: 'u32',
} as const;
let scratch: { device: GPUDevice; buffer: GPUBuffer } | null = null;

/** Window width and K chunk for an L of K × W: 32 columns (one subgroup's width: measured faster than wider windows)
 * and up to 512 rows of K, in balanced chunks. */
function windows(K: number, W: number) {
  const TW = Math.min(4 * Math.ceil(W / 4), 32);
  const KC = 4 * Math.ceil(Math.ceil(K / Math.ceil(K / (WINDOW / TW))) / 4);
  const panels = Math.ceil(W / TW);
  return { KC, TW, panels, count: panels * Math.ceil(K / KC) };
}

// Which operand goes into the windows: the one with the smaller estimate. Each dispatch costs lavapipe ~0.2 ms, and
// the kernel reads R ~1.25× slower when its rows are strided (scalar loads: 1.24 vs 1.01 ms a window, measured in the
// tiny model's step), at ~21 MFLOP/ms either way.
function estimateMs(w: ReturnType<typeof windows>, Rrows: number, sR: number[], K: number): number {
  const flops = 2 * Rrows * w.panels * w.TW * K;
  return w.count * 0.2 + (flops / 21e6) * (sR[1] === 1 && K % 4 === 0 ? 1 : 1.25);
}

/** The uniform-window path, when it pays (false: take another kernel); 'fused': o.lowRank's term is in C too. */
export function viaUniformWindows(a: Tensor, b: Tensor, c: Tensor, o: MatmulOptions, rows: number, N: number, K: number, forced: boolean, sg: number): boolean | 'fused' {
  if (b.rank !== 2 || (a.rank > 2 && o.transA) || K === 0) return false; // a batched B needs one window set per batch
  const sA = o.transA ? [1, rows] : [K, 1]; // op(A)(m, k) = A[m·sA0 + k·sA1], batch folded into m
  const sB = o.transB ? [1, K] : [N, 1]; // op(B)(k, n) = B[k·sB0 + n·sB1]
  const wB = windows(K, N);
  const wA = windows(K, rows);
  const lIsA = a.rank === 2 && estimateMs(wA, N, [sB[1]!, sB[0]!], K) < estimateMs(wB, rows, sA, K);
  const w = lIsA ? wA : wB;
  const [L, sL, R, sR, Rrows, W] = lIsA ? [a, [sA[1]!, sA[0]!], b, [sB[1]!, sB[0]!], N, rows] : [b, sB, a, sA, rows, N];
  // each dispatch costs lavapipe ~0.2 ms: a window must carry ≥ 8 MFLOP, or one storage-buffer dispatch is faster
  // (unless the path is forced: the tests run this kernel at small sizes)
  if (!forced && 2 * Rrows * w.TW * Math.min(w.KC, K) < 8e6) return false;
  const bytes = w.count * 4 * WINDOW;
  if (!scratch || scratch.device !== rt().device || scratch.buffer.size < bytes) {
    if (scratch?.device === rt().device) {
      rt().flush(); // encoded work may still read the old windows
      scratch.buffer.destroy();
    }
    const size = Math.max(bytes, 1 << 20);
    scratch = { device: rt().device, buffer: rt().device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE }) };
  }
  const total = (w.count * w.KC * w.TW) / 4;
  REPACK.run({ L, S: scratch.buffer }, { K, W, KC: w.KC, TW: w.TW, panels: w.panels, sLk: sL[0]!, sLw: sL[1]!, total }, grid(Math.ceil(total / WG)));
  const alpha = o.alpha ?? 1;
  const lr = o.lowRank && alpha !== 0 ? lowRankOperands(o.lowRank, lIsA, N) : null;
  const kernel = uniformKernel(sg, sR[1] === 1 && K % 4 === 0, !!lr);
  const sC = lIsA ? [1, N] : [N, 1];
  for (let i = 0; i < w.count; i++) {
    const panel = i % w.panels;
    const kc0 = Math.floor(i / w.panels) * w.KC;
    const n0 = panel * w.TW;
    const params = { M: Rrows, W, K, kc0, kcn: Math.min(w.KC, K - kc0), n0, tw: w.TW, alpha, acc: kc0 > 0 || o.accumulate ? 1 : 0, sRm: sR[0]!, sRk: sR[1]!, sCm: sC[0]!, sCn: sC[1]! };
    const U = { buffer: scratch.buffer, offset: i * 4 * WINDOW, size: 4 * WINDOW };
    const workgroups: [number, number] = [Math.ceil(Math.min(w.TW, W - n0) / (4 * sg)), Math.ceil(Rrows / sg)];
    if (lr) kernel.run({ R, U, C: c, P: lr.P, Q: lr.Q }, { ...params, ...lr.params, lr: kc0 + w.KC >= K ? 1 : 0 }, workgroups);
    else kernel.run({ R, U, C: c }, params, workgroups);
  }
  return lr ? 'fused' : true;
}

/** LoRA's s·h·op(e) (h [M, r], op(e) [r, N]) as P [rows × r]·Q [r × cols] in the kernel's order: rows are C's rows
 * (P = h, Q = op(e)), or its columns when the kernel computes Cᵀ (P = op(e)ᵀ, Q = hᵀ). */
function lowRankOperands(lr: NonNullable<MatmulOptions['lowRank']>, cT: boolean, N: number) {
  const r = lr.h.shape[1]!;
  const [eN, eJ] = lr.transE ? [r, 1] : [1, N]; // op(e)(j, n) = e[n·eN + j·eJ]
  const [sPr, sPj, sQj, sQc] = cT ? [eN, eJ, 1, r] : [r, 1, eJ, eN];
  return { P: cT ? lr.e : lr.h, Q: cT ? lr.h : lr.e, params: { r, s: lr.scale, sPr, sPj, sQj, sQc } };
}

// Window i = (chunk, panel) holds L(chunk·KC + kk, panel·TW + j) at [i·WINDOW + kk·TW + j]; zero past K and W.
const REPACK = defineKernel({
  name: 'matmul:repack',
  params: { K: 'u32', W: 'u32', KC: 'u32', TW: 'u32', panels: 'u32', sLk: 'u32', sLw: 'u32', total: 'u32' },
  bindings: { L: 'f32', S: 'rw vec4<f32>' },
  body: `
  ${FLAT_INDEX}
  if (i >= p.total) { return; }
  let perWindow = p.KC * p.TW / 4u;
  let win = i / perWindow; let kk = (i % perWindow) / (p.TW / 4u); let j = 4u * (i % (p.TW / 4u));
  let k = (win / p.panels) * p.KC + kk;
  let w0 = (win % p.panels) * p.TW + j;
  var v = vec4<f32>();
  for (var c = 0u; c < 4u; c++) { if (k < p.K && w0 + c < p.W) { v[c] = L[k * p.sLk + (w0 + c) * p.sLw]; } }
  S[win * ${WINDOW / 4}u + kk * (p.TW / 4u) + j / 4u] = v;`,
});

// C rows = rows of R (SG per workgroup, lane l loads row m0+l), C columns = a 4·SG-wide slice of the window's TW.
// lowRank: in the dispatches with p.lr set (each panel's last K chunk), also add (s/alpha)·Σ_j P(row, j)·Q(j, col)
// before the store — LoRA's s·h·op(e) in the kernel's own row/column order — instead of one more pass over C.
function uniformKernel(SG: number, vecR: boolean, lowRank = false) {
  return kernelFor(`matmul:uniform${SG}:${vecR ? 'R4' : 'R1'}${lowRank ? ':lr' : ''}`, () => uniformSpec(SG, vecR, lowRank));
}

/** uniformKernel's declaration, built once per key. */
function uniformSpec(SG: number, vecR: boolean, lowRank: boolean) {
  const rows = range(SG);
  const xyzw = (i: number) => 'xyzw'[i]!;
  const loadA = vecR
    ? `let a = R[(ma * p.sRm) / 4u + k / 4u];`
    : `let a = vec4<f32>(${range(4).map((j) => `R[ma * p.sRm + min(k + ${j}u, p.K - 1u) * p.sRk]`).join(', ')});`; // rows past K meet zeros
  const epilogue = lowRank
    ? `if (p.lr != 0u) {
    let pr = min(m0 + lane, p.M - 1u) * p.sPr; // this lane's row of P, broadcast to every lane
    let nq = min(vec4<u32>(p.n0 + j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.W - 1u)) * p.sQc; // its 4 columns of Q
    for (var t = 0u; t < p.r; t++) {
      let h = p.s / p.alpha * P[pr + t * p.sPj];
      let e = vec4<f32>(Q[t * p.sQj + nq.x], Q[t * p.sQj + nq.y], Q[t * p.sQj + nq.z], Q[t * p.sQj + nq.w]);
      ${rows.map((r) => `acc${r} = fma(vec4<f32>(subgroupBroadcast(h, ${r}u)), e, acc${r});`).join(' ')}
    }
  }`
    : '';
  return {
    params: lowRank ? { ...UNIFORM_PARAMS, lr: 'u32', r: 'u32', s: 'f32', sPr: 'u32', sPj: 'u32', sQj: 'u32', sQc: 'u32' } : UNIFORM_PARAMS,
    bindings: { R: vecR ? 'vec4<f32>' : 'f32', U: `uniform array<vec4<f32>, ${WINDOW / 4}>`, C: 'rw f32', ...(lowRank ? { P: 'f32', Q: 'f32' } : {}) },
    workgroupSize: [SG],
    enable: ['subgroups'],
    body: `
  let m0 = wid.y * ${SG}u;
  let j = wid.x * ${4 * SG}u + 4u * lane; // this lane's first column within the window
  let jq = min(j, p.tw - 4u) / 4u;
  let ma = min(m0 + lane, p.M - 1u);
  ${rows.map((r) => `var acc${r} = vec4<f32>();`).join(' ')}
  for (var q = 0u; q < (p.kcn + 3u) / 4u; q++) {
    let k = p.kc0 + 4u * q;
    ${loadA}
    ${range(4).map((i) => `let b${i} = U[(4u * q + ${i}u) * (p.tw / 4u) + jq];`).join(' ')}
    ${rows.map((r) => range(4).map((i) => `acc${r} = fma(vec4<f32>(subgroupBroadcast(a.${xyzw(i)}, ${r}u)), b${i}, acc${r});`).join(' ')).join('\n    ')}
  }
  ${epilogue}
  ${rows.map((r) => `if (m0 + ${r}u < p.M) { for (var c = 0u; c < 4u; c++) { let n = p.n0 + j + c; if (j + c < p.tw && n < p.W) { let i = (m0 + ${r}u) * p.sCm + n * p.sCn; ${storeC('i', `acc${r}[c]`)} } } }`).join('\n  ')}`,
  } satisfies KernelBody;
}

