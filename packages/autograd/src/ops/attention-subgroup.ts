// Attention's three products as subgroup-broadcast kernels, for CPU adapters (lavapipe): the same math and the same
// scratch layouts as attention-kernels.ts, the loads of lavapipe's matmul ('subgroup' path, tensor/kernels/matmul-lavapipe.ts).
//
// A workgroup is one subgroup of SG lanes and computes SG × 4·SG tiles of one (batch, head)'s product (rowdot: every
// key panel of its SG queries up to the diagonal; the mixes: one tile):
//   rowdot  S[i, j] = Σ_d X[i, d]·Y[j, d]      rows i (queries) × columns j (keys)
//   rowmix  O[i, d] = α·Σ_j A[i, j]·Y[j, d]    rows i (queries) × columns d
//   colmix  O[j, d] = α·Σ_h Σ_i A[i, j]·X[i, d] rows j (keys)   × columns d, over the query heads of KV head g
// Lane l loads row r0 + l of the row operand and subgroupBroadcast hands it to every lane; lane l loads only its own
// 4 columns of the other operand. Per 4 steps of the sum a lane makes 5 vec4 loads for 4·SG multiply-adds of 4
// columns, where the 4×4-block kernels load 8 values per 16: lavapipe turns each storage load into 8 bounds-checked
// scalar loads, so that ratio is the speed (bench/README.md). Needs D % 4 == 0 (vec4 rows); attention.ts falls back.
//
// Tiles wider than attention-kernels' 4×4 blocks write a few scores above the diagonal too; every reader keeps to
// j ≤ i (a select, never a branch on loaded data: unwritten scratch may hold anything, NaN included).
import { kernelFor, range, Tensor } from '@dawngrad/tensor';
import { ATTN_PARAMS, attnParams, ROW_HELPERS, ROWDOT_VALUE, ROWDOT_MODE, rowdotInputs, type AttnDims, type RowdotMode } from './attention-kernels.ts';

const xyzw = (i: number) => 'xyzw'[i]!;

/** acc_r += broadcast(a.c from lane r) · b_c for every row r < SG and c < 4. */
const broadcastFmas = (SG: number) =>
  range(SG).map((r) => range(4).map((c) => `acc${r} = fma(vec4<f32>(subgroupBroadcast(a.${xyzw(c)}, ${r}u)), b${c}, acc${r});`).join(' ')).join('\n    ');
const accumulators = (SG: number) => range(SG).map((r) => `var acc${r} = vec4<f32>();`).join(' ');

/** `name` and SG hold everything `body` builds on: it is built on the kernel's first use only. */
function sgKernel(name: string, SG: number, bindings: Record<string, string>, body: () => string, decls = '') {
  return kernelFor(`attention.${name}:sg${SG}`, () => ({
    params: ATTN_PARAMS,
    bindings,
    workgroupSize: [SG],
    enable: ['subgroups'],
    decls: ROW_HELPERS + decls,
    body: `  let T = p.T;
  let D = p.D;
${body()}`,
  }));
}

// ---- rowdot: the scores (and their epilogue, ROWDOT_VALUE) of queries i0..i0+SG-1 × keys up to the diagonal ---------------
function rowdotKernel(SG: number) {
  return sgKernel('rowdot', SG, { X: 'vec4<f32>', Y: 'vec4<f32>', M: 'i32', L: 'f32', Probs: 'f32', Dl: 'f32', OUT: 'rw f32' }, () => `
  let bh = wid.z;
  let b = bh / p.H;
  let h = bh % p.H;
  let g = h / (p.H / p.KV);
  let i0 = wid.y * ${SG}u;
  let xa = qrow(b, min(i0 + lane, T - 1u), h) / 4u;   // this lane's query, broadcast to every lane
  let rowAt = bh * T + min(i0 + lane, T - 1u);   // the epilogue's L or Δ of this lane's query (broadcast later)
  var lLane = 0.0; var dLane = 0.0;
  if (p.mode == 1u) { lLane = L[rowAt]; }
  if (p.mode == 2u) { dLane = Dl[rowAt]; }
  // key panels of 4·SG up to the diagonal (the panels past it are never read)
  for (var j0 = 0u; j0 < min(T, i0 + ${SG}u); j0 += ${4 * SG}u) {
    let jl = j0 + 4u * lane;                             // this lane's 4 keys
    ${range(4).map((c) => `let y${c} = kvrow(b, min(jl + ${c}u, T - 1u), g) / 4u;`).join(' ')}
    ${accumulators(SG)}
    for (var q = 0u; q < D / 4u; q++) {
      let a = X[xa + q];
      ${range(4).map((c) => `let k${c} = Y[y${c} + q];`).join(' ')}
      ${range(4).map((c) => `let b${c} = vec4<f32>(${range(4).map((k) => `k${k}.${xyzw(c)}`).join(', ')});`).join(' ')}
      ${broadcastFmas(SG)}
    }
    // the epilogue: this lane's 4 keys' mask once, each row's L or Δ from the lane that loaded it
    let real = vec4<bool>(${range(4).map((c) => `M[b * T + min(jl + ${c}u, T - 1u)] != 0`).join(', ')});
    ${range(SG).map((r) => `{
      let i = i0 + ${r}u; let l = subgroupBroadcast(lLane, ${r}u); let dl = subgroupBroadcast(dLane, ${r}u);
      for (var c = 0u; c < 4u; c++) {
        let at = (bh * T + i) * T + jl + c;
        if (i < T && jl + c < T) {
          var pij = 0.0;
          if (p.mode == 2u) { pij = Probs[at]; }
          OUT[at] = rowdotValue(acc${r}[c], allowed(i, jl + c, real[c]), l, dl, pij);
        }
      }
    }`).join('\n  ')}
  }`,
  ROWDOT_VALUE);
}

// ---- rowmix: rows i0.. of α·A·Y over keys j ≤ i (O = P·V, dQ = scale·dS·K) ----------------------------------------------
function rowmixKernel(SG: number) {
  return sgKernel('rowmix', SG, { A: 'f32', Y: 'vec4<f32>', OUT: 'rw vec4<f32>' }, () => `
  let bh = wid.z;
  let b = bh / p.H;
  let h = bh % p.H;
  let g = h / (p.H / p.KV);
  let i0 = wid.y * ${SG}u;
  let d0 = wid.x * ${4 * SG}u + 4u * lane;   // this lane's 4 columns
  let dq = min(d0, D - 4u) / 4u;
  let il = i0 + lane;                         // this lane's row of A, broadcast to every lane
  let arow = (bh * T + min(il, T - 1u)) * T;
  ${accumulators(SG)}
  for (var j = 0u; j < min(T, i0 + ${SG}u); j += 4u) {
    let a = vec4<f32>(${range(4).map((c) => `select(0.0, A[arow + min(j + ${c}u, T - 1u)], j + ${c}u <= il)`).join(', ')});
    ${range(4).map((c) => `let b${c} = Y[kvrow(b, min(j + ${c}u, T - 1u), g) / 4u + dq];`).join(' ')}
    ${broadcastFmas(SG)}
  }
  if (d0 < D) {
    ${range(SG).map((r) => `if (i0 + ${r}u < T) { OUT[qrow(b, i0 + ${r}u, h) / 4u + d0 / 4u] = p.scale * acc${r}; }`).join('\n    ')}
  }`);
}

// ---- colmix: rows j0.. (keys) of α·Σ_h Aᵀ·X over queries i ≥ j (dK = scale·dSᵀ·Q, dV = Pᵀ·dO) ---------------------------
function colmixKernel(SG: number) {
  return sgKernel('colmix', SG, { A: 'f32', X: 'vec4<f32>', OUT: 'rw vec4<f32>' }, () => `
  let b = wid.z / p.KV;
  let g = wid.z % p.KV;
  let G = p.H / p.KV;
  let j0 = wid.y * ${SG}u;
  let d0 = wid.x * ${4 * SG}u + 4u * lane;
  let dq = min(d0, D - 4u) / 4u;
  let jl = j0 + lane;                         // this lane's column of A (a key), broadcast to every lane
  let jc = min(jl, T - 1u);
  ${accumulators(SG)}
  for (var hh = 0u; hh < G; hh++) {
    let h = g * G + hh;
    let abase = (b * p.H + h) * T * T;
    for (var i = j0; i < T; i += 4u) {
      let a = vec4<f32>(${range(4).map((c) => `select(0.0, A[abase + min(i + ${c}u, T - 1u) * T + jc], i + ${c}u >= jl && i + ${c}u < T)`).join(', ')});
      ${range(4).map((c) => `let b${c} = X[qrow(b, min(i + ${c}u, T - 1u), h) / 4u + dq];`).join(' ')}
      ${broadcastFmas(SG)}
    }
  }
  if (d0 < D) {
    ${range(SG).map((r) => `if (j0 + ${r}u < T) { OUT[kvrow(b, j0 + ${r}u, g) / 4u + d0 / 4u] = p.scale * acc${r}; }`).join('\n    ')}
  }`);
}

/** out: [B, H, T, T], every tile that reaches the diagonal (see rowdotInputs for `rows`). */
export function subgroupRowdot(SG: number, mode: RowdotMode, x: Tensor, y: Tensor, mask: Tensor, rows: Tensor[], d: AttnDims): Tensor {
  const out = Tensor.empty([d.B, d.H, d.T, d.T]);
  const [l, probs, dl] = rowdotInputs(mode, x, rows);
  rowdotKernel(SG).run({ X: x, Y: y, M: mask, L: l, Probs: probs, Dl: dl, OUT: out }, attnParams(d, d.scale, ROWDOT_MODE[mode]), [1, Math.ceil(d.T / SG), d.B * d.H]);
  return out;
}

/** out: [B, T, H, D] = α·A·Y per (batch, head). */
export function subgroupRowmix(SG: number, a: Tensor, y: Tensor, d: AttnDims, alpha: number): Tensor {
  const out = Tensor.empty([d.B, d.T, d.H, d.D]);
  rowmixKernel(SG).run({ A: a, Y: y, OUT: out }, attnParams(d, alpha), [Math.ceil(d.D / (4 * SG)), Math.ceil(d.T / SG), d.B * d.H]);
  return out;
}

/** out: [B, T, KV, D] = α·Σ_h Aᵀ·X per (batch, KV head). */
export function subgroupColmix(SG: number, a: Tensor, x: Tensor, d: AttnDims, alpha: number): Tensor {
  const out = Tensor.empty([d.B, d.T, d.KV, d.D]);
  colmixKernel(SG).run({ A: a, X: x, OUT: out }, attnParams(d, alpha), [Math.ceil(d.D / (4 * SG)), Math.ceil(d.T / SG), d.B * d.KV]);
  return out;
}
