// WGSL for fused causal attention with grouped KV heads and a key padding mask (the op itself is in attention.ts).
//
// Layouts (what the q/k/v projections produce, so nothing is permuted or repeated):
//   Q, O, dO, dQ: [B, T, H, D]   K, V, dK, dV: [B, T, KV, D]   mask: i32 [B, T]   L, Δ: [B, H, T]
//   S, P, dS (scores, probabilities and their gradient, scratch): [B, H, T, T], only blocks on or below the diagonal
//   (in the code: scores, probs, dscores)
// Query head h reads KV head g = h / (H / KV), as Hugging Face's repeat_kv does. A sliding window W (0 = none) only
// changes which (i, j) are allowed — rowdotValue's `allowed` test — so every other kernel follows from the zeros it writes.
// These are the 'blocked' family (GPUs; the policy's choice): softmax and Δ serve both families, and
// attention-subgroup.ts has the 'subgroup' rowdot/rowmix/colmix that CPU adapters with fixed subgroups take.
//
// Why this shape, first measured on lavapipe (bench/README.md): llvmpipe runs a workgroup on one CPU thread with 8
// invocations per AVX2 vector, and it turns every storage-buffer load whose address is not a compile-time constant
// into 8 bounds-checked scalar loads — even when all invocations read the same address. Arithmetic is 8-wide and
// nearly free next to that, so a kernel is as fast as it is frugal with loads per multiply-add. The one-row-per-
// invocation flash kernel (q and the output row in registers, a loop over keys) loads 2·D values per (query, key)
// pair; here every invocation owns a 4×4 register block (4 queries × 4 keys, or 4 rows × 4 head dims) and loads
// 8 values per 16 multiply-adds. The T×T scores are materialised per (batch, head) — at T = 80 that is 25 KiB — and
// the loops stay loops, so the pipelines compile in seconds instead of the flash kernel's tens of seconds.
// No atomics: every output element is written by exactly one invocation, so every result is deterministic.
import { grid, Tensor, NEG_INF, defineKernel, flatIndex, type BindingDecl } from '@dawngrad/tensor';

/** Shapes of one attention call; `scale` multiplies q·k. */
export interface AttnDims {
  B: number;
  T: number;
  H: number;
  KV: number;
  D: number;
  scale: number;
  /** Mistral's sliding window: key j is allowed for query i only when i − window < j; 0 = no window */
  window: number;
}

const WG = 64;
const TILE = 4; // the register block: 4×4 multiply-adds per 8 loads

// For the kernels that bind the mask M.
const ANY_REAL_KEY = `
fn anyRealKey(b: u32, j0: u32) -> bool {   // is any of the keys j0..j0+3 a real token?
  var found = false;
  for (var c = 0u; c < ${TILE}u; c++) { found = found || (j0 + c < p.T && M[b * p.T + j0 + c] != 0); }
  return found;
}`;

/** The uniforms of every attention kernel (one struct: the same writer serves all of them). */
export const ATTN_PARAMS = { B: 'u32', T: 'u32', H: 'u32', KV: 'u32', D: 'u32', mode: 'u32', window: 'u32', scale: 'f32' } as const;

/** ATTN_PARAMS' values for one call: the shapes and window of `d`, the kernel's `scale` (q·k's, or a mix's α), `mode`. */
export function attnParams(d: AttnDims, scale: number, mode = 0): { [K in keyof typeof ATTN_PARAMS]: number } {
  return { B: d.B, T: d.T, H: d.H, KV: d.KV, D: d.D, mode, window: d.window, scale };
}

/** Where a row starts in the projections' layouts. */
export const ROW_HELPERS = `fn qrow(b: u32, i: u32, h: u32) -> u32 { return ((b * p.T + i) * p.H + h) * p.D; }   // a row of Q, O, dO: [B, T, H, D]
fn kvrow(b: u32, j: u32, g: u32) -> u32 { return ((b * p.T + j) * p.KV + g) * p.D; } // a row of K, V: [B, T, KV, D]
`;

/**
 * Every attention kernel has the same uniforms and row helpers. D travels as a uniform: it is only a loop bound here,
 * and one pipeline per kernel serves every head size (each pipeline costs seconds of LLVM time on lavapipe the first
 * time it is used). In the body: x, the invocation's flat index; T, D; nb, the number of 4-blocks along T.
 */
function attnKernel(name: string, bindings: Record<string, BindingDecl>, body: string, decls = '') {
  return defineKernel({
    name: `attention.${name}`,
    workgroupSize: [WG],
    params: ATTN_PARAMS,
    bindings,
    decls: ROW_HELPERS + decls,
    body: `  ${flatIndex(WG, 'x')}
  let T = p.T;
  let D = p.D;
  let nb = (T + ${TILE - 1}u) / ${TILE}u;   // 4-blocks along T
${body}`,
  });
}

type AttnKernel = ReturnType<typeof attnKernel>;

function run(k: AttnKernel, buffers: Record<string, Tensor>, d: AttnDims, lanes: number, scale = d.scale, mode = 0): void {
  k.run(buffers, attnParams(d, scale, mode), grid(Math.ceil(lanes / WG)));
}

const blocks = (T: number) => Math.ceil(T / TILE);

// ---- rowdot: out[b, h, i, j] = epilogue(Σ_d X[b, i, h, d]·Y[b, j, g, d]) over 4×4 blocks of (i, j) ------------------
// One pipeline, three epilogues chosen by a uniform (the unused bindings get a read-only stand-in):
//   logits (0):  scale·q·k, or NEG_INF where the key is not allowed (forward; the softmax follows)
// (allowed: causal, not padding and, with a window, inside it)
//   probs (1):   P = exp(scale·q·k − L_i), 0 where not allowed (backward: recomputed from the saved L)
//   dscores (2): dS = P·(dO·v − Δ_i), 0 where not allowed (X = dO, Y = V)
export const ROWDOT_MODE = { logits: 0, probs: 1, dscores: 2 } as const;
export type RowdotMode = keyof typeof ROWDOT_MODE;

/** rowdot's epilogue: is key j allowed for query i, and what is stored for the dot product s there (l = L_i for
 * probs; dl = Δ_i and pij = P_ij for dscores; the caller loads only what its mode reads). */
export const ROWDOT_VALUE = `
fn allowed(i: u32, j: u32, real: bool) -> bool { return j <= i && real && (p.window == 0u || j + p.window > i); }
fn rowdotValue(s: f32, ok: bool, l: f32, dl: f32, pij: f32) -> f32 {
  if (p.mode == 1u) { return select(0.0, exp(p.scale * s - l), ok); }
  if (p.mode == 2u) { return select(0.0, pij * (s - dl), ok); }
  return select(${NEG_INF}, p.scale * s, ok);
}`;

const ROWDOT = attnKernel('rowdot', { X: 'f32', Y: 'f32', M: 'i32', L: 'f32', Probs: 'f32', Dl: 'f32', OUT: 'rw f32' }, `
  if (x >= p.B * p.H * nb * nb) { return; }
  let jb = x % nb;
  let ib = (x / nb) % nb;
  let bh = x / (nb * nb);
  if (jb > ib) { return; }   // wholly above the diagonal: never read
  let b = bh / p.H;
  let h = bh % p.H;
  let g = h / (p.H / p.KV);
  let i0 = ib * ${TILE}u;
  let j0 = jb * ${TILE}u;
  // rows past T are clamped to T - 1: read, never written
  var xr: array<u32, ${TILE}>;
  var yr: array<u32, ${TILE}>;
  for (var r = 0u; r < ${TILE}u; r++) {
    xr[r] = qrow(b, min(i0 + r, T - 1u), h);
    yr[r] = kvrow(b, min(j0 + r, T - 1u), g);
  }
  var acc: array<vec4<f32>, ${TILE}>;
  if (anyRealKey(b, j0)) {   // a block of padding keys only needs its sentinels written
    for (var d = 0u; d < D; d++) {
      let y = vec4<f32>(Y[yr[0] + d], Y[yr[1] + d], Y[yr[2] + d], Y[yr[3] + d]);
      for (var r = 0u; r < ${TILE}u; r++) { acc[r] += X[xr[r] + d] * y; }
    }
  }
  for (var r = 0u; r < ${TILE}u; r++) {
    let i = i0 + r;
    if (i >= T) { break; }
    for (var c = 0u; c < ${TILE}u; c++) {
      let j = j0 + c;
      if (j >= T) { break; }
      let at = (bh * T + i) * T + j;
      var l = 0.0; var dl = 0.0; var pij = 0.0;
      if (p.mode == 1u) { l = L[bh * T + i]; }
      if (p.mode == 2u) { dl = Dl[bh * T + i]; pij = Probs[at]; }
      OUT[at] = rowdotValue(acc[r][c], allowed(i, j, M[b * T + j] != 0), l, dl, pij);
    }
  }`, ANY_REAL_KEY + ROWDOT_VALUE);

/** The epilogue's extra inputs by mode, `rows` = [L] (probs) or [probs, Δ] (dscores); x stands in for unused ones. */
export function rowdotInputs(mode: RowdotMode, x: Tensor, rows: Tensor[]): [l: Tensor, probs: Tensor, dl: Tensor] {
  return mode === 'probs' ? [rows[0]!, x, x] : mode === 'dscores' ? [x, rows[0]!, rows[1]!] : [x, x, x];
}

/** out: [B, H, T, T] for the blocks on or below the diagonal. */
export function rowdot(mode: RowdotMode, x: Tensor, y: Tensor, mask: Tensor, rows: Tensor[], d: AttnDims): Tensor {
  const out = Tensor.empty([d.B, d.H, d.T, d.T]);
  const [l, probs, dl] = rowdotInputs(mode, x, rows);
  const nb = blocks(d.T);
  run(ROWDOT, { X: x, Y: y, M: mask, L: l, Probs: probs, Dl: dl, OUT: out }, d, d.B * d.H * nb * nb, d.scale, ROWDOT_MODE[mode]);
  return out;
}

// ---- softmax over each score row, in place: P = exp(S − L), L = logsumexp of the allowed scores ---------------------

const SOFTMAX = attnKernel('softmax', { S: 'rw f32', L: 'rw f32' }, `
  if (x >= p.B * p.H * T) { return; }   // x = (b * H + h) * T + i
  let i = x % T;
  let row = x * T;
  let jEnd = min(T, (i / ${TILE}u + 1u) * ${TILE}u);   // this row's part of the blocks rowdot wrote
  // online max and sum: masked scores before the first real one are wiped by the rescale, later ones add exp(−huge) = 0
  var m = ${NEG_INF};
  var l = 0.0;
  for (var j = 0u; j <= i; j++) {
    let s = S[row + j];
    let mNew = max(m, s);
    l = l * exp(m - mNew) + exp(s - mNew);
    m = mNew;
  }
  // a row with no allowed key (left padding): every score is NEG_INF, so is m; P = 0 so its output is 0, L = 0 unused
  let empty = m <= ${NEG_INF};
  let lse = select(m + log(l), 0.0, empty);
  L[x] = lse;
  for (var j = 0u; j < jEnd; j++) { S[row + j] = select(exp(S[row + j] - lse), 0.0, empty); }`);

// ---- rowmix: out[b, i, h, d] = α·Σ_j A[b, h, i, j]·Y[b, j, g, d] over 4×4 blocks of (i, d) — O = P·V, dQ = scale·dS·K ----

const ROWMIX = attnKernel('rowmix', { A: 'f32', Y: 'f32', M: 'i32', OUT: 'rw f32' }, `
  let nd = (D + ${TILE - 1}u) / ${TILE}u;
  if (x >= p.B * p.H * nb * nd) { return; }
  let db = x % nd;
  let ib = (x / nd) % nb;
  let bh = x / (nd * nb);
  let b = bh / p.H;
  let h = bh % p.H;
  let g = h / (p.H / p.KV);
  let i0 = ib * ${TILE}u;
  let d0 = db * ${TILE}u;
  var ar: array<u32, ${TILE}>;
  var dc: array<u32, ${TILE}>;
  for (var r = 0u; r < ${TILE}u; r++) {
    ar[r] = (bh * T + min(i0 + r, T - 1u)) * T;
    dc[r] = min(d0 + r, D - 1u);
  }
  var acc: array<vec4<f32>, ${TILE}>;
  // keys up to the block's last query: A holds zeros for j > i inside the diagonal block
  let jEnd = min(T, i0 + ${TILE}u);
  for (var j = 0u; j < jEnd; j++) {
    if (M[b * T + j] == 0) { continue; }   // a padding key: A is 0 there, one load saves eight
    let yb = kvrow(b, j, g);
    let y = vec4<f32>(Y[yb + dc[0]], Y[yb + dc[1]], Y[yb + dc[2]], Y[yb + dc[3]]);
    for (var r = 0u; r < ${TILE}u; r++) { acc[r] += A[ar[r] + j] * y; }
  }
  for (var r = 0u; r < ${TILE}u; r++) {
    if (i0 + r >= T) { break; }
    let o = qrow(b, i0 + r, h) + d0;
    for (var c = 0u; c < ${TILE}u; c++) {
      if (d0 + c < D) { OUT[o + c] = p.scale * acc[r][c]; }
    }
  }`);

export function rowmix(a: Tensor, y: Tensor, mask: Tensor, d: AttnDims, alpha: number): Tensor {
  const out = Tensor.empty([d.B, d.T, d.H, d.D]);
  run(ROWMIX, { A: a, Y: y, M: mask, OUT: out }, d, d.B * d.H * blocks(d.T) * blocks(d.D), alpha);
  return out;
}

// ---- colmix: out[b, j, g, d] = α·Σ_{h in group g} Σ_i A[b, h, i, j]·X[b, i, h, d] — dK = scale·dSᵀ·Q, dV = Pᵀ·dO ------

const COLMIX = attnKernel('colmix', { A: 'f32', X: 'f32', M: 'i32', OUT: 'rw f32' }, `
  let nd = (D + ${TILE - 1}u) / ${TILE}u;
  if (x >= p.B * p.KV * nb * nd) { return; }
  let db = x % nd;
  let jb = (x / nd) % nb;
  let bg = x / (nd * nb);
  let b = bg / p.KV;
  let g = bg % p.KV;
  let G = p.H / p.KV;
  let j0 = jb * ${TILE}u;
  let d0 = db * ${TILE}u;
  var jc: array<u32, ${TILE}>;
  var dc: array<u32, ${TILE}>;
  for (var c = 0u; c < ${TILE}u; c++) {
    jc[c] = min(j0 + c, T - 1u);
    dc[c] = min(d0 + c, D - 1u);
  }
  var acc: array<vec4<f32>, ${TILE}>;   // acc[c] = row j0 + c, columns d0..d0+3
  // a block of padding keys gets exact zeros: no query attends to it
  for (var hh = select(G, 0u, anyRealKey(b, j0)); hh < G; hh++) {
    let h = g * G + hh;
    // queries from the block's first key on: A holds zeros for i < j inside the diagonal block
    for (var i = j0; i < T; i++) {
      let arow = ((b * p.H + h) * T + i) * T;
      let xb = qrow(b, i, h);
      let xv = vec4<f32>(X[xb + dc[0]], X[xb + dc[1]], X[xb + dc[2]], X[xb + dc[3]]);
      for (var c = 0u; c < ${TILE}u; c++) { acc[c] += A[arow + jc[c]] * xv; }
    }
  }
  for (var c = 0u; c < ${TILE}u; c++) {
    if (j0 + c >= T) { break; }
    let o = kvrow(b, j0 + c, g) + d0;
    for (var k = 0u; k < ${TILE}u; k++) {
      if (d0 + k < D) { OUT[o + k] = p.scale * acc[c][k]; }
    }
  }`, ANY_REAL_KEY);

export function colmix(a: Tensor, x: Tensor, mask: Tensor, d: AttnDims, alpha: number): Tensor {
  const out = Tensor.empty([d.B, d.T, d.KV, d.D]);
  run(COLMIX, { A: a, X: x, M: mask, OUT: out }, d, d.B * d.KV * blocks(d.T) * blocks(d.D), alpha);
  return out;
}

// ---- delta: Δ_i = dO_i·O_i per query row (= Σ_j P_ij dP_ij, the softmax backward's row term) -------------------------

const DELTA = attnKernel('delta', { O: 'f32', G: 'f32', Dl: 'rw f32' }, `
  if (x >= p.B * p.H * T) { return; }   // x = (b * H + h) * T + i
  let bh = x / T;
  let o = qrow(bh / p.H, x % T, bh % p.H);
  var s = 0.0;
  for (var d = 0u; d < D; d++) { s += O[o + d] * G[o + d]; }
  Dl[x] = s;`);

/** In place: each score row of S becomes its probabilities; L: [B, H, T] gets each row's logsumexp. */
export function softmaxRows(scores: Tensor, d: AttnDims): Tensor {
  const lse = Tensor.empty([d.B, d.H, d.T]);
  run(SOFTMAX, { S: scores, L: lse }, d, d.B * d.H * d.T);
  return lse;
}

/** Δ: [B, H, T], Δ_i = dO_i·O_i. */
export function rowDelta(o: Tensor, dO: Tensor, d: AttnDims): Tensor {
  const delta = Tensor.empty([d.B, d.H, d.T]);
  run(DELTA, { O: o, G: dO, Dl: delta }, d, d.B * d.H * d.T);
  return delta;
}
