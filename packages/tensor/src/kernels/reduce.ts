// Reductions: sum, mean, max over any axes (keepdim optional), argmax over one axis, sumTo (undo a broadcast), sumAll.
// Every reduction is planned as passes over [outer, K, inner] views (K = the axes being reduced, merged when adjacent):
//  - inner = 1 on a GPU: the row kernel — one workgroup per row, strided loads, then a tree in workgroup memory;
//  - otherwise: the column kernel — one invocation per output, looping over K with stride `inner` (neighbouring
//    invocations read neighbouring addresses, so loads stay coalesced).
// Few long rows/columns are split in K (a first pass writes [outer, S, inner] partials) so there is enough parallel work.
// Non-adjacent reduced axes take one pass each, innermost first.
// On a software adapter (lavapipe) a workgroup barrier costs tens of microseconds, so rows go one per invocation there
// too (20× faster for short rows; bench/README.md).
import { grid } from '../runtime.ts';
import { Tensor, numel, type DType, type Shape } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor, treeReduce } from '../kernel.ts';
import { wgslType } from './elementwise.ts';
import { stridedCopy, broadcastsTo } from './layout.ts';
import { fill } from './misc.ts';
import { kernelPolicy } from '../policy.ts';

export type ReduceOp = 'sum' | 'max' | 'argmax';

const SMALL_K = 32; // at or below this a loop per output beats a workgroup per row on any adapter

/** How rows are reduced: a workgroup per row (tree in workgroup memory) or an invocation per row (a plain loop). */
export type RowStrategy = 'auto' | 'workgroup' | 'thread';
let forcedRows: RowStrategy = 'auto';

/** Force a row strategy for rows longer than 32 in every reduction and softmax (tests and benchmarks cover both
 *  paths on any adapter); 'auto' restores the adapter's choice. */
export function setRowStrategy(s: RowStrategy): void {
  forcedRows = s;
}

/** The strategy for `rows` rows of K contiguous elements on this adapter. */
export function rowStrategy(rows: number, K: number): 'workgroup' | 'thread' {
  if (K <= SMALL_K) return 'thread';
  if (forcedRows !== 'auto') return forcedRows;
  if (kernelPolicy().adapterClass === 'cpu') return rows < 8 && K > 4096 ? 'workgroup' : 'thread';
  return 'workgroup';
}

/** Axes as sorted, distinct, non-negative numbers; undefined means every axis. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) throw new Error(`${op}: axis ${a} out of range for rank ${rank}`);
    return a < 0 ? a + rank : a;
  });
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in [${list.join(', ')}]`);
  return out.sort((a, b) => a - b);
}

function checkDtype(op: string, x: Tensor, allowed: DType[]): void {
  if (!allowed.includes(x.dtype)) throw new Error(`${op}: needs ${allowed.join(' or ')}, got ${x.dtype}`);
}

// ---- the two kernels -------------------------------------------------------------------------------------------

/** The final write: a mean scales its f32 sum; everything else is stored as is. */
function finish(op: ReduceOp, elem: string): string {
  return op === 'sum' && elem === 'f32' ? 'v * p.scale' : 'v';
}

// Per-op pieces of the row kernel: the per-thread start, the fold of one element k, the tree step folding slot
// lid.x + h into lid.x, the final write. argmax carries (value, index) pairs and keeps the smaller index on ties, so
// it returns the first maximum.
function rowParts(op: ReduceOp, elem: string) {
  if (op === 'argmax') {
    return {
      shared: `var<workgroup> sh: array<${elem}, W>;\nvar<workgroup> si: array<u32, W>;`,
      init: 'var acc = X[start];\n  var ai = 0u;',
      fold: 'let v = X[k]; if (v > acc) { acc = v; ai = k - start; }',
      store: 'sh[lid.x] = acc; si[lid.x] = ai;',
      step: (h: string) => `let a = sh[lid.x]; let b = sh[lid.x + ${h}]; let ia = si[lid.x]; let ib = si[lid.x + ${h}];
      if (b > a || (b == a && ib < ia)) { sh[lid.x] = b; si[lid.x] = ib; }`,
      write: 'Y[w] = i32(si[0]);',
    };
  }
  const c = (a: string, b: string) => (op === 'sum' ? `${a} + ${b}` : `max(${a}, ${b})`);
  return {
    shared: `var<workgroup> sh: array<${elem}, W>;`,
    // max starts from the chunk's first element (repeats are harmless); sum from zero
    init: `var acc = ${op === 'sum' ? `${elem}(0)` : 'X[start]'};`,
    fold: `acc = ${c('acc', 'X[k]')};`,
    store: 'sh[lid.x] = acc;',
    step: (h: string) => `sh[lid.x] = ${c('sh[lid.x]', `sh[lid.x + ${h}]`)};`,
    write: `let v = sh[0]; Y[w] = ${finish(op, elem)};`,
  };
}

// x: [rows, K] -> y: [rows, S]; workgroup w reduces row w / S, elements [s·chunk, min(K, (s+1)·chunk)) with s = w % S.
function rowPass(op: ReduceOp, x: Tensor, y: Tensor, rows: number, K: number, S: number, chunk: number, scale: number): void {
  const elem = wgslType(x.dtype);
  const W = K <= 256 ? 64 : 256;
  kernelFor(`reduceRows:${op}:${elem}:w${W}`, () => {
    const r = rowParts(op, elem);
    return {
      workgroupSize: [W],
      params: { rows: 'u32', K: 'u32', S: 'u32', chunk: 'u32', scale: 'f32' },
      bindings: { X: elem, Y: `rw ${op === 'argmax' ? 'i32' : elem}` },
      decls: `const W = ${W}u;\n${r.shared}`,
      body: `  let w = wid.y * nwg.x + wid.x;
  if (w >= p.rows * p.S) { return; } // uniform per workgroup, so the barriers below stay legal
  let row = w / p.S;
  let part = w % p.S;
  let start = row * p.K + part * p.chunk;
  let end = row * p.K + min(p.K, part * p.chunk + p.chunk);
  ${r.init}
  for (var k = start + lid.x; k < end; k += W) { ${r.fold} }
  ${r.store}
  ${treeReduce(W, 'lid.x', r.step)}
  if (lid.x == 0u) { ${r.write} }`,
    };
  }).run({ X: x, Y: y }, { rows, K, S, chunk, scale }, grid(rows * S));
}

// x: [outer, K, inner] -> y: [outer, S, inner]; invocation (o, s, j) loops k over [s·chunk, min(K, (s+1)·chunk)).
function columnPass(op: ReduceOp, x: Tensor, y: Tensor, outer: number, K: number, inner: number, S: number, chunk: number, scale: number): void {
  const elem = wgslType(x.dtype);
  const n = outer * S * inner;
  kernelFor(`reduceColumns:${op}:${elem}`, () => {
    const body =
      op === 'argmax'
        ? `var best = X[idx];
  var bi = 0u;
  for (var k = k0 + 1u; k < k1; k++) { idx += p.inner; let v = X[idx]; if (v > best) { best = v; bi = k; } }
  Y[i] = i32(bi);`
        : `var acc = ${op === 'sum' ? `${elem}(0)` : 'X[idx]'};
  for (var k = k0; k < k1; k++) { acc = ${op === 'sum' ? 'acc + X[idx]' : 'max(acc, X[idx])'}; idx += p.inner; }
  let v = acc;
  Y[i] = ${finish(op, elem)};`;
    return {
      params: { n: 'u32', K: 'u32', S: 'u32', chunk: 'u32', inner: 'u32', scale: 'f32' },
      bindings: { X: elem, Y: `rw ${op === 'argmax' ? 'i32' : elem}` },
      body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let j = i % p.inner;
  let t = i / p.inner;
  let s = t % p.S;
  let o = t / p.S;
  let k0 = s * p.chunk;
  let k1 = min(p.K, k0 + p.chunk);
  var idx = (o * p.K + k0) * p.inner + j;
  ${body}`,
    };
  }).run({ X: x, Y: y }, { n, K, S, chunk, inner, scale }, grid(Math.ceil(n / WG)));
}

/** Reduce x viewed as [outer, K, inner] into y ([outer, inner] elements), splitting K when there are few outputs. */
function reduceBlock(op: ReduceOp, x: Tensor, y: Tensor, outer: number, K: number, inner: number, scale: number): void {
  const outputs = outer * inner;
  if (outputs === 0) return;
  const rows = inner === 1 && rowStrategy(outer, K) === 'workgroup';
  let S = 1;
  if (op !== 'argmax') {
    if (rows && outputs < 256 && K > 4096) S = Math.min(Math.ceil(K / 2048), Math.ceil(1024 / outputs));
    if (!rows && outputs < 4096 && K >= 512) S = Math.min(Math.ceil(K / 256), Math.ceil(16384 / outputs));
  }
  const chunk = Math.ceil(K / S);
  S = Math.ceil(K / chunk); // every split non-empty
  const partial = S > 1 ? Tensor.empty([outer, S, inner], x.dtype) : y;
  const passScale = S > 1 ? 1 : scale;
  if (rows) rowPass(op, x, partial, outer, K, S, chunk, passScale);
  else columnPass(op, x, partial, outer, K, inner, S, chunk, passScale);
  if (S > 1) {
    reduceBlock(op, partial, y, outer, S, inner, scale);
    partial.dispose(); // stream-ordered pool: safe to recycle once the reading pass is encoded
  }
}

// ---- planning ----------------------------------------------------------------------------------------------------

/** Reduce `axes` of x (sorted, distinct) into a tensor of `outShape` (same element count as the kept axes). */
function reduceInto(op: ReduceOp, x: Tensor, axes: number[], outShape: Shape, scale: number): Tensor {
  const outDtype: DType = op === 'argmax' ? 'i32' : x.dtype;
  // Drop size-1 axes, then merge neighbours of the same kind: blocks alternate kept / reduced.
  const blocks: { n: number; red: boolean }[] = [];
  x.shape.forEach((n, d) => {
    if (n === 1) return;
    const red = axes.includes(d);
    const last = blocks[blocks.length - 1];
    if (last && last.red === red) last.n *= n;
    else blocks.push({ n, red });
  });
  if (!blocks.some((b) => b.red)) {
    // nothing to reduce but size-1 axes: a copy (argmax of a size-1 axis is all zeros)
    if (op === 'argmax') return fill(outShape, 0, 'i32');
    const y = Tensor.empty(outShape, outDtype);
    stridedCopy(x, y, [x.size], [1], 0, [1], 0);
    return y;
  }
  let cur = x;
  for (;;) {
    const b = blocks.map((bl) => bl.red).lastIndexOf(true);
    const outer = numel(blocks.slice(0, b).map((bl) => bl.n));
    const inner = numel(blocks.slice(b + 1).map((bl) => bl.n));
    const last = !blocks.slice(0, b).some((bl) => bl.red);
    const next = last ? Tensor.empty(outShape, outDtype) : Tensor.empty([outer * inner], outDtype);
    reduceBlock(op, cur, next, outer, blocks[b]!.n, inner, last ? scale : 1);
    if (cur !== x) cur.dispose();
    cur = next;
    if (last) return cur;
    // the kept blocks on either side of the reduced one are now adjacent: merge them
    blocks.splice(b, 1);
    if (blocks[b - 1] && blocks[b] && !blocks[b - 1]!.red && !blocks[b]!.red) blocks.splice(b - 1, 2, { n: blocks[b - 1]!.n * blocks[b]!.n, red: false });
  }
}

function reduce(name: string, op: 'sum' | 'max', x: Tensor, axes: number | readonly number[] | undefined, keepdim: boolean, mean: boolean): Tensor {
  const ax = normAxes(name, axes, x.rank);
  const outShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d)).filter((_, i) => keepdim || !ax.includes(i));
  const count = numel(ax.map((a) => x.shape[a]!));
  if (count === 0) {
    if (op === 'max') throw new Error(`${name}: cannot reduce an empty axis of [${x.shape.join(', ')}]`);
    return fill(outShape, mean ? NaN : 0, x.dtype); // an empty sum is 0, an empty mean 0/0
  }
  if (numel(outShape) === 0) return Tensor.empty(outShape, x.dtype);
  return reduceInto(op, x, ax, outShape, mean ? 1 / count : 1);
}

// ---- public ops --------------------------------------------------------------------------------------------------

/** Sum over `axes` (default: all). x: [..., K, ...] -> [..., (1 if keepdim), ...] */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  checkDtype('sum', x, ['f32', 'i32', 'u32']);
  return reduce('sum', 'sum', x, axes, keepdim, false);
}

/** Mean over `axes` (default: all); NaN over an empty axis. f32 only. */
export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  checkDtype('mean', x, ['f32']);
  return reduce('mean', 'sum', x, axes, keepdim, true);
}

/** Maximum over `axes` (default: all). */
export function max(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  checkDtype('max', x, ['f32', 'i32', 'u32']);
  return reduce('max', 'max', x, axes, keepdim, false);
}

/** Index of the largest value along one axis (the first on ties), as i32. x: [..., K, ...] -> [..., ...] */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  checkDtype('argmax', x, ['f32', 'i32', 'u32']);
  const [ax] = normAxes('argmax', axis, x.rank) as [number];
  const outShape = x.shape.map((d, i) => (i === ax ? 1 : d)).filter((_, i) => keepdim || i !== ax);
  if (x.shape[ax] === 0) throw new Error(`argmax: cannot reduce an empty axis of [${x.shape.join(', ')}]`);
  if (numel(outShape) === 0) return Tensor.empty(outShape, 'i32');
  return reduceInto('argmax', x, [ax], outShape, 1);
}

/** Sum a broadcast result x back to `shape` — the gradient of broadcasting `shape` up to x.shape. */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  checkDtype('sumTo', x, ['f32', 'i32', 'u32']);
  if (!broadcastsTo(shape, x.shape)) throw new Error(`sumTo: [${shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  const lead = x.rank - shape.length;
  const axes = x.shape.map((_, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1));
  if (numel(shape) === 0) return Tensor.empty(shape, x.dtype);
  if (axes.some((a) => x.shape[a] === 0)) return fill(shape, 0, x.dtype);
  return reduceInto('sum', x, axes, shape, 1);
}

/** The sum of every element, as a scalar tensor (shape []). */
export function sumAll(x: Tensor): Tensor {
  return sum(x);
}
