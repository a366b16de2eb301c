// Mixed-precision matmul on matrix units: C = alpha·f16(op(A))·op(B) (+ C) (+ s·H·op(E)), B stored f16, sums in f32,
// through WGSL subgroup matrices (Dawn's chromium_experimental_subgroup_matrix: Vulkan cooperative matrices, i.e. tensor
// cores on NVIDIA). A subgroup matrix is a small tile (e.g. 16×16) spread over a subgroup's invocations; one
// subgroupMatrixMultiplyAccumulate is one matrix-unit instruction sequence.
//
// A workgroup of SGM×SGN subgroups owns a BM×BN tile of C; each subgroup FM×FN result fragments of SM×SN. Per K-step of
// BK, op(A) [BM×BK] is staged in workgroup memory as f16 (rounded from f32 — what autocast's cast would do) and op(B)
// [BK×BN] as it is stored (already f16), each in its own memory order: the fragment loads take row- or column-major
// layouts, so no operand is ever transposed. The f32 results go through workgroup memory for the epilogue (bounds,
// alpha, accumulate, the low-rank term), which a fragment store cannot do itself.
import { kernelFor, range, type KernelBody } from '../kernel.ts';
import { slab } from './matmul-gpu.ts';

/** One subgroup-matrix shape of the adapter (f16 inputs, f32 results) and how a workgroup tiles C with it. */
export interface TcTile {
  /** fragment shape: M×K left, K×N right (the adapter's config) */
  SM: number;
  SN: number;
  SK: number;
  /** subgroups per workgroup along M and N, fragments per subgroup along M and N */
  SGM: number;
  SGN: number;
  FM: number;
  FN: number;
  /** K per staged step (a multiple of SK) */
  BK: number;
}

export interface TcLayout {
  tA: boolean;
  tB: boolean;
  lowRank: null | { tE: boolean };
}

/** The kernel for a tile, layout and subgroup size (built once per key). */
export function tcKernel(t: TcTile, l: TcLayout, subgroupSize: number) {
  const key = `matmul:tc:${t.SM}x${t.SN}x${t.SK}:${t.SGM}x${t.SGN}:${t.FM}x${t.FN}:${t.BK}:${+l.tA}${+l.tB}:${l.lowRank ? `lr${+l.lowRank.tE}` : ''}:sg${subgroupSize}`;
  return kernelFor(key, () => tcSpec(t, l, subgroupSize));
}

export function tcTileShape(t: TcTile): { BM: number; BN: number; threads: (sg: number) => number } {
  return { BM: t.SGM * t.FM * t.SM, BN: t.SGN * t.FN * t.SN, threads: (sg) => t.SGM * t.SGN * sg };
}

function tcSpec(t: TcTile, l: TcLayout, SG: number): KernelBody {
  const { SM, SN, SK, SGM, SGN, FM, FN, BK } = t;
  const { BM, BN } = tcTileShape(t);
  const NT = SGM * SGN * SG;
  const left = `subgroup_matrix_left<f16, ${SK}, ${SM}>`;
  const right = `subgroup_matrix_right<f16, ${SN}, ${SK}>`;
  const result = `subgroup_matrix_result<f32, ${SN}, ${SM}>`;
  // Staging. As holds op(A) as A is stored: [m][k] (stride BK) or, transposed, [k][m] (stride BM); Bs likewise
  // [k][n] (stride BN) or [n][k] (stride BK). Loads are vec4 along the stored contiguous dim (its length % 4 == 0).
  const stageA = l.tA
    ? slab((BM * BK) / 4, NT, (e) => `let kk = ${e} / ${BM / 4}u; let mq = ${e} % ${BM / 4}u; let k = k0 + kk; let m = m0 + 4u * mq;
      let v = vec4<f16>(select(vec4<f32>(), A[(min(k, K - 1u) * M + min(m, M - 4u)) / 4u], k < K && m < M));
      ${range(4).map((c) => `As[kk * ${BM}u + 4u * mq + ${c}u] = v[${c}];`).join(' ')}`)
    : slab((BM * BK) / 4, NT, (e) => `let row = ${e} / ${BK / 4}u; let kq = ${e} % ${BK / 4}u; let m = m0 + row; let k = k0 + 4u * kq;
      let v = vec4<f16>(select(vec4<f32>(), A[(min(m, M - 1u) * K + min(k, K - 4u)) / 4u], k < K && m < M));
      ${range(4).map((c) => `As[row * ${BK}u + 4u * kq + ${c}u] = v[${c}];`).join(' ')}`);
  const stageB = l.tB
    ? slab((BN * BK) / 4, NT, (e) => `let col = ${e} / ${BK / 4}u; let kq = ${e} % ${BK / 4}u; let n = n0 + col; let k = k0 + 4u * kq;
      let v = select(vec4<f16>(), B[(min(n, N - 1u) * K + min(k, K - 4u)) / 4u], k < K && n < N);
      ${range(4).map((c) => `Bs[col * ${BK}u + 4u * kq + ${c}u] = v[${c}];`).join(' ')}`)
    : slab((BN * BK) / 4, NT, (e) => `let kk = ${e} / ${BN / 4}u; let nq = ${e} % ${BN / 4}u; let k = k0 + kk; let n = n0 + 4u * nq;
      let v = select(vec4<f16>(), B[(min(k, K - 1u) * N + min(n, N - 4u)) / 4u], k < K && n < N);
      ${range(4).map((c) => `Bs[kk * ${BN}u + 4u * nq + ${c}u] = v[${c}];`).join(' ')}`);
  // fragment (i, j) of this subgroup: rows r0 + i·SM, columns c0 + j·SN of the workgroup's tile
  const loadL = (i: number, kk: number) =>
    l.tA
      ? `subgroupMatrixLoad<${left}>(&As, ${kk * BM}u + r0 + ${i * SM}u, true, ${BM}u)`
      : `subgroupMatrixLoad<${left}>(&As, (r0 + ${i * SM}u) * ${BK}u + ${kk}u, false, ${BK}u)`;
  const loadR = (j: number, kk: number) =>
    l.tB
      ? `subgroupMatrixLoad<${right}>(&Bs, (c0 + ${j * SN}u) * ${BK}u + ${kk}u, true, ${BK}u)`
      : `subgroupMatrixLoad<${right}>(&Bs, ${kk * BN}u + c0 + ${j * SN}u, false, ${BN}u)`;
  const mma = range(BK / SK)
    .map((s) => {
      const kk = s * SK;
      return `${range(FM).map((i) => `let a${i} = ${loadL(i, kk)};`).join(' ')}
      ${range(FN)
        .map((j) => `{ let b = ${loadR(j, kk)}; ${range(FM).map((i) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b, acc${i}_${j});`).join(' ')} }`)
        .join('\n      ')}`;
    })
    .join('\n      ');
  const lowRank = l.lowRank
    ? `var t = 0.0;
      for (var j = 0u; j < p.r; j++) { t += H[m * p.r + j] * E[${l.lowRank.tE ? 'n * p.r + j' : 'j * N + n'}]; }
      v += p.s * t;`
    : '';
  const bindings: Record<string, string> = { A: 'vec4<f32>', B: 'vec4<f16>', C: 'rw f32' };
  if (l.lowRank) Object.assign(bindings, { H: 'f32', E: 'f32' });
  return {
    params: { M: 'u32', N: 'u32', K: 'u32', alpha: 'f32', acc: 'u32', r: 'u32', s: 'f32' },
    bindings,
    workgroupSize: [NT],
    enable: ['f16', 'subgroups', 'chromium_experimental_subgroup_matrix'],
    // the fragment offsets below depend on the subgroup's index: uniform within a subgroup, which is what the
    // matrix builtins need, but not within the workgroup, which is all WGSL's analysis can prove
    directives: ['diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);'],
    decls: `var<workgroup> As: array<f16, ${BM * BK}>;
var<workgroup> Bs: array<f16, ${BK * BN}>;
var<workgroup> Cs: array<f32, ${BM * BN}>; // the f32 results, for the epilogue`,
    body: `
  let M = p.M; let N = p.N; let K = p.K;
  let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;
  let sg = li / ${SG}u;
  let r0 = (sg / ${SGN}u) * ${FM * SM}u; let c0 = (sg % ${SGN}u) * ${FN * SN}u;
  ${range(FM).flatMap((i) => range(FN).map((j) => `var acc${i}_${j} = ${result}();`)).join(' ')}
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    ${stageA}
    ${stageB}
    workgroupBarrier();
    ${mma}
    workgroupBarrier();
  }
  ${range(FM).flatMap((i) => range(FN).map((j) => `subgroupMatrixStore(&Cs, (r0 + ${i * SM}u) * ${BN}u + c0 + ${j * SN}u, acc${i}_${j}, false, ${BN}u);`)).join('\n  ')}
  workgroupBarrier();
  for (var e = li; e < ${BM * BN}u; e += ${NT}u) {
    let m = m0 + e / ${BN}u; let n = n0 + e % ${BN}u;
    if (m < M && n < N) {
      var v = p.alpha * Cs[e];
      ${lowRank}
      if (p.acc != 0u) { C[m * N + n] += v; } else { C[m * N + n] = v; }
    }
  }`,
  };
}

/** A tile for the adapter's f16→f32 fragment shape: 2×2 subgroups of 2×2 fragments (64×64 for 16×16 fragments). */
export function defaultTcTile(c: { M: number; N: number; K: number }): TcTile {
  return { SM: c.M, SN: c.N, SK: c.K, SGM: 2, SGN: 2, FM: 2, FN: 2, BK: Math.max(c.K, 32) };
}
