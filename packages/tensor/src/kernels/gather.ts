// Row gathers and their gradient: take (numpy.take along an axis), gatherRows (the embedding lookup) and
// scatterAddRows (the embedding gradient). Out-of-range indices read as zero rows and are skipped when scattering:
// a kernel cannot throw, and a bounds check on the host would need a readback.
import { rt, grid } from '../runtime.ts';
import { Tensor, BYTES, numel } from '../tensor.ts';
import { WG, FLAT_INDEX, kernelFor } from '../kernel.ts';
import { normAxis } from './layout.ts';
import { zeros } from './misc.ts';

/** The widest WGSL unit that tiles a row of `bytes` bytes: rows are moved as raw bits, whatever the dtype. */
function unitFor(bytes: number): { U: string; size: number } {
  if (bytes % 16 === 0) return { U: 'vec4<u32>', size: 16 };
  if (bytes % 4 === 0) return { U: 'u32', size: 4 };
  if (!rt().ctx.hasF16) throw new Error('f16 rows of odd length need an adapter with shader-f16');
  return { U: 'f16', size: 2 };
}

function checkIndex(op: string, idx: Tensor): void {
  if (idx.dtype !== 'i32' && idx.dtype !== 'u32') throw new Error(`${op}: indices must be i32 or u32, got ${idx.dtype}`);
}

// x: [...pre, N, ...post], idx: [...I] -> [...pre, ...I, ...post]: out[p, i, q] = x[p, idx[i], q]
export function take(x: Tensor, idx: Tensor, axis = 0): Tensor {
  checkIndex('take', idx);
  const ax = normAxis('take', axis, x.rank);
  const N = x.shape[ax]!;
  const outer = numel(x.shape.slice(0, ax));
  const inner = numel(x.shape.slice(ax + 1));
  const M = idx.size;
  const y = Tensor.empty([...x.shape.slice(0, ax), ...idx.shape, ...x.shape.slice(ax + 1)], x.dtype);
  if (y.size === 0) return y;
  const { U, size } = unitFor(inner * BYTES[x.dtype]);
  const innerU = (inner * BYTES[x.dtype]) / size; // row length in units
  const n = outer * M * innerU;
  kernelFor(`take:${U}:${idx.dtype}`, () => ({
    enable: U === 'f16' ? ['f16'] : [],
    params: { n: 'u32', M: 'u32', inner: 'u32', N: 'u32' },
    bindings: { X: U, Idx: idx.dtype, Y: `rw ${U}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let k = i % p.inner;
  let t = i / p.inner;
  let m = t % p.M;
  let o = t / p.M;
  let id = i32(Idx[m]); // u32 ids past 2^31 turn negative: out of range either way
  if (id < 0 || id >= i32(p.N)) { Y[i] = ${U}(); return; }
  Y[i] = X[(o * p.N + u32(id)) * p.inner + k];`,
  })).run({ X: x, Idx: idx, Y: y }, { n, M, inner: innerU, N }, grid(Math.ceil(n / WG)));
  return y;
}

// table: [V, C], ids: [...] (i32) -> [..., C]: the embedding lookup
export function gatherRows(table: Tensor, ids: Tensor): Tensor {
  if (table.rank !== 2) throw new Error(`gatherRows: table must be [V, C], got [${table.shape.join(', ')}]`);
  return take(table, ids, 0);
}

/**
 * grad: [..., C], ids: [...] -> [V, C]: row v is the sum of the grad rows whose id is v (the embedding gradient).
 *
 * Deterministic by construction. WGSL has no float atomics, and a compare-and-swap loop on the bits would add in
 * whatever order the threads arrive, so results would change from run to run. Instead, a linked list per id:
 * (1) one invocation per position n marks whether n is the first position with its id and links it to the next
 * one (O(N²) comparisons, fine for the N = B·T of a batch); (2) after a zero fill, one invocation per (first
 * position, column) walks its list in position order and writes the sum once — one writer per output element.
 * The result equals a sequential f32 loop over positions, bit for bit. (A variant with one invocation per
 * (vocab row, column) needs no zero fill but measured 2x slower for V = 32000 >> N = 2048 on lavapipe.)
 */
export function scatterAddRows(grad: Tensor, ids: Tensor, V: number): Tensor {
  checkIndex('scatterAddRows', ids);
  if (grad.dtype !== 'f32') throw new Error(`scatterAddRows: grad must be f32, got ${grad.dtype}`);
  if (!Number.isInteger(V) || V < 0) throw new Error(`scatterAddRows: V must be a non-negative integer, got ${V}`);
  const C = grad.shape[grad.rank - 1];
  if (C === undefined || grad.rank !== ids.rank + 1 || ids.shape.some((d, i) => d !== grad.shape[i])) {
    throw new Error(`scatterAddRows: grad [${grad.shape.join(', ')}] must be ids [${ids.shape.join(', ')}] plus a column axis`);
  }
  const out = zeros([V, C]);
  const N = ids.size;
  if (N === 0 || C === 0 || V === 0) return out;
  const links = Tensor.empty([N, 2], 'u32'); // [n] = (1 if n is the first position of its id, next position or N)
  kernelFor(`scatterLinks:${ids.dtype}`, () => ({
    params: { N: 'u32' },
    bindings: { Ids: ids.dtype, Links: 'rw u32' },
    body: `${FLAT_INDEX}
  if (i >= p.N) { return; }
  let id = Ids[i];
  var first = 1u;
  for (var j = 0u; j < i; j++) { if (Ids[j] == id) { first = 0u; break; } }
  var next = p.N;
  for (var j = i + 1u; j < p.N; j++) { if (Ids[j] == id) { next = j; break; } }
  Links[2u * i] = first;
  Links[2u * i + 1u] = next;`,
  })).run({ Ids: ids, Links: links }, { N }, grid(Math.ceil(N / WG)));
  // columns move as vec4 when C allows: a quarter of the invocations, same per-lane order (still bit-exact)
  const v4 = C % 4 === 0;
  const E = v4 ? 'vec4<f32>' : 'f32';
  const CU = v4 ? C / 4 : C;
  kernelFor(`scatterSum:${ids.dtype}:${E}`, () => ({
    params: { n: 'u32', C: 'u32', N: 'u32', V: 'u32' },
    bindings: { G: E, Ids: ids.dtype, Links: 'u32', Out: `rw ${E}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let c = i % p.C;
  let n = i / p.C;
  let id = i32(Ids[n]);
  if (Links[2u * n] == 0u || id < 0 || id >= i32(p.V)) { return; } // not the head of its list, or out of range
  var acc = ${E}(0.0);
  var j = n;
  loop {
    acc += G[j * p.C + c];
    j = Links[2u * j + 1u];
    if (j >= p.N) { break; }
  }
  Out[u32(id) * p.C + c] = acc;`,
  })).run({ G: grad, Ids: ids, Links: links, Out: out }, { n: N * CU, C: CU, N, V }, grid(Math.ceil((N * CU) / WG)));
  links.dispose(); // stream-ordered pool: reuse is safe once the reading dispatch is encoded
  return out;
}
