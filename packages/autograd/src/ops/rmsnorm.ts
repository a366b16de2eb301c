// RMSNorm, exactly as Hugging Face's MistralRMSNorm / LlamaRMSNorm compute it in float32:
//   variance = mean(x², last dim);  y = w · (x · rsqrt(variance + eps))
// Backward per row, with r = rsqrt(mean(x²) + eps):
//   dx = r · (w·g − x · r² · mean(x·w·g))        dw = Σ_rows g · x · r   (a deterministic column sum, no atomics)
//
// Kernels: forward and dx one invocation per row, a serial loop in vec4 registers (no workgroup barriers, which cost a
// CPU adapter most); dw one invocation per 4 columns looping over the rows (one dispatch, contiguous loads). The
// measurements: bench/README.md, "Why each op's kernel has its shape".
// rstd is not kept from the forward: the backward's first pass over the row reads x anyway for mean(x·w·g), so it
// recomputes Σx² in the same loop (no extra memory traffic, and no side tensor whose lifetime would outlive the op).
import { Tensor, grid, ref, kernelFor, flatIndex } from '@dawngrad/tensor';
import { defineOp, apply, type F64, type CpuBackwardCtx } from '../op.ts';
import type { Var } from '../var.ts';

export interface RmsNormAttrs {
  /** added to the mean square before the rsqrt (HF's rms_norm_eps, e.g. 1e-6 or 1e-5) */
  eps: number;
}

/** invocations per workgroup: small, so a few hundred rows still spread over every lavapipe thread */
const WG = 16;

// ---- WGSL ---------------------------------------------------------------------------------------------------------

/** Rows are split into vectors of width 4 when C allows it, else scalars; `hsum` folds a vector into its sum. */
function vecTypes(vec4: boolean): string {
  return vec4
    ? 'alias V = vec4<f32>;\nfn hsum(v: V) -> f32 { return (v.x + v.y) + (v.z + v.w); }'
    : 'alias V = f32;\nfn hsum(v: V) -> f32 { return v; }';
}

/**
 * The three kernels share their uniforms: rows, nv (vectors per row), C, eps; `idx` is this invocation's row or column.
 * `name` (with vec4) holds everything `parts` builds on: the bindings and body are built on the kernel's first use only.
 */
function rmsKernel<B extends Record<string, string>>(name: string, vec4: boolean, parts: () => { bindings: B; body: string }) {
  return kernelFor(`rmsnorm.${name}:v${vec4 ? 4 : 1}`, () => {
    const { bindings, body } = parts();
    return {
      workgroupSize: [WG],
      params: { rows: 'u32', nv: 'u32', C: 'u32', eps: 'f32' },
      bindings,
      decls: vecTypes(vec4),
      body: `${flatIndex(WG, 'idx')}\n${body}`,
    };
  });
}

// x: [rows, C], w: [C] -> y: [rows, C]; one invocation per row
const forwardKernel = (vec4: boolean) =>
  rmsKernel('fwd', vec4, () => ({ bindings: { X: 'V', W: 'V', Y: 'rw V' }, body: `
  if (idx >= p.rows) { return; }
  let base = idx * p.nv;
  var ss = V(0.0);
  for (var c = 0u; c < p.nv; c++) { let v = X[base + c]; ss += v * v; }
  let r = inverseSqrt(hsum(ss) / f32(p.C) + p.eps);
  // HF order: normalise first, then scale by the weight
  for (var c = 0u; c < p.nv; c++) { Y[base + c] = W[c] * (X[base + c] * r); }` }));

// x, g: [rows, C], w: [C] -> dx: [rows, C] (when dx) and rstd: [rows] (when saveR, for the dw pass); one invocation per row
function rowBackwardKernel(vec4: boolean, dx: boolean, saveR: boolean) {
  return rmsKernel(`bwd_rows:dx${+dx}:r${+saveR}`, vec4, () => {
    const bindings: Record<string, string> = { X: 'V' };
    if (dx) Object.assign(bindings, { W: 'V', G: 'V', DX: 'rw V' });
    if (saveR) bindings.R = 'rw f32';
    return { bindings, body: `
  if (idx >= p.rows) { return; }
  let base = idx * p.nv;
  var ss = V(0.0);
  ${dx ? 'var xwg = V(0.0);' : ''}
  for (var c = 0u; c < p.nv; c++) {
    let v = X[base + c];
    ss += v * v;
    ${dx ? 'xwg += v * W[c] * G[base + c];' : ''}
  }
  let r = inverseSqrt(hsum(ss) / f32(p.C) + p.eps);
  ${saveR ? 'R[idx] = r;' : ''}
  ${dx ? `let k = r * r * (hsum(xwg) / f32(p.C));
  for (var c = 0u; c < p.nv; c++) { DX[base + c] = r * (W[c] * G[base + c] - X[base + c] * k); }` : ''}` };
  });
}

// x, g: [rows, C], rstd: [rows] -> dw: [C]; one invocation per column vector, rows summed in order (deterministic)
const dwKernel = (vec4: boolean) =>
  rmsKernel('bwd_dw', vec4, () => ({ bindings: { X: 'V', G: 'V', R: 'f32', DW: 'rw V' }, body: `
  if (idx >= p.nv) { return; }
  var acc = V(0.0);
  for (var row = 0u; row < p.rows; row++) {
    let i = row * p.nv + idx;
    acc += G[i] * X[i] * R[row];
  }
  DW[idx] = acc;` }));

// ---- GPU forward / backward -----------------------------------------------------------------------------------------

function checkInputs(x: { shape: readonly number[] }, w: { shape: readonly number[] }, eps: number): void {
  const C = x.shape[x.shape.length - 1];
  if (C === undefined) throw new Error('rmsNorm: x must have at least one dim [..., C]');
  if (w.shape.length !== 1 || w.shape[0] !== C) {
    throw new Error(`rmsNorm: weight shape [${w.shape.join(', ')}] must be [${C}] (the last dim of x [${x.shape.join(', ')}])`);
  }
  if (!(eps >= 0)) throw new Error(`rmsNorm: eps must be a non-negative number, got ${eps}`);
}

function geometry(x: Tensor) {
  const C = x.shape[x.rank - 1]!;
  const rows = C === 0 ? 0 : x.size / C;
  const vec4 = C % 4 === 0;
  return { C, rows, vec4, nv: vec4 ? C / 4 : C };
}

function rmsNormForward(x: Tensor, w: Tensor, { eps }: RmsNormAttrs): Tensor {
  checkInputs(x, w, eps);
  if (x.dtype !== 'f32' || w.dtype !== 'f32') throw new Error(`rmsNorm: needs f32 (x is ${x.dtype}, weight is ${w.dtype})`);
  const { C, rows, vec4, nv } = geometry(x);
  const y = Tensor.empty(x.shape, 'f32');
  forwardKernel(vec4).run({ X: x, W: w, Y: y }, { rows, nv, C, eps }, grid(Math.ceil(rows / WG)));
  return y;
}

function rmsNormBackward(g: Tensor, x: Tensor, w: Tensor, { eps }: RmsNormAttrs, needs: boolean[]): (Tensor | null)[] {
  const { C, rows, vec4, nv } = geometry(x);
  const params = { rows, nv, C, eps };
  const wantDx = needs[0] === true;
  const wantDw = needs[1] === true;
  if (!wantDx && !wantDw) return [null, null];
  const dx = wantDx ? Tensor.empty(x.shape, 'f32') : null;
  const rstd = wantDw ? Tensor.empty([rows], 'f32') : null;
  const buffers: Record<string, Tensor> = { X: x, ...(dx && { W: w, G: g, DX: dx }), ...(rstd && { R: rstd }) };
  rowBackwardKernel(vec4, wantDx, wantDw).run(buffers, params, grid(Math.ceil(rows / WG)));
  let dw: Tensor | null = null;
  if (rstd) {
    dw = Tensor.empty([C], 'f32');
    dwKernel(vec4).run({ X: x, G: g, R: rstd, DW: dw }, params, grid(Math.ceil(nv / WG)));
  }
  return [dx, dw];
}

// ---- float64 CPU twin -----------------------------------------------------------------------------------------------

function cpuRstd(x: F64, row: number, C: number, eps: number): number {
  let ss = 0;
  for (let c = 0; c < C; c++) ss += x.data[row * C + c]! ** 2;
  return 1 / Math.sqrt(ss / C + eps);
}

function cpuForward([x, w]: F64[], { eps }: RmsNormAttrs): F64 {
  checkInputs(x!, w!, eps);
  const C = x!.shape[x!.shape.length - 1]!;
  const y = ref.empty(x!.shape);
  for (let row = 0; row < x!.data.length / C; row++) {
    const r = cpuRstd(x!, row, C, eps);
    for (let c = 0; c < C; c++) y.data[row * C + c] = w!.data[c]! * x!.data[row * C + c]! * r;
  }
  return y;
}

function cpuBackward(g: F64, { inputs: [x, w], attrs: { eps } }: CpuBackwardCtx<RmsNormAttrs>): F64[] {
  const C = x!.shape[x!.shape.length - 1]!;
  const dx = ref.empty(x!.shape);
  const dw = ref.empty(w!.shape);
  for (let row = 0; row < x!.data.length / C; row++) {
    const r = cpuRstd(x!, row, C, eps);
    let xwg = 0;
    for (let c = 0; c < C; c++) xwg += x!.data[row * C + c]! * w!.data[c]! * g.data[row * C + c]!;
    for (let c = 0; c < C; c++) {
      const i = row * C + c;
      dx.data[i] = r * (w!.data[c]! * g.data[i]! - x!.data[i]! * r * r * (xwg / C));
      dw.data[c] = dw.data[c]! + g.data[i]! * x!.data[i]! * r;
    }
  }
  return [dx, dw];
}

// ---- the op -----------------------------------------------------------------------------------------------------------

export const RMSNORM = defineOp<RmsNormAttrs>({
  name: 'rmsnorm',
  rule: 'y = w·x·r, r = rsqrt(mean(x²)+eps): dx = r·(w·g − x·r²·mean(x·w·g)), dw = Σ_rows g·x·r',
  forward: ([x, w], attrs) => rmsNormForward(x!, w!, attrs),
  backward: (g, { inputs: [x, w], attrs, needs }) => rmsNormBackward(g, x!, w!, attrs, needs),
  cpu: { forward: cpuForward, backward: cpuBackward },
});

/** RMSNorm over the last dim, as HF's MistralRMSNorm. x: [..., C], weight: [C] -> [..., C] */
export const rmsNorm = (x: Var, weight: Var, eps: number) => apply(RMSNORM, [x, weight], { eps });
