// Embedding lookup: y[n] = table[ids[n]]. Backward: dtable[v] = Σ_{n: ids[n] = v} g[n], a scatter-add of the gradient
// rows into a [V, C] gradient. The tensor package's kernel sums repeated ids in position order through a linked list
// per id, because WGSL has no float atomics and a compare-and-swap loop would add in arrival order (not reproducible).
// Out-of-range ids read zero rows and contribute no gradient (a kernel cannot throw).
import * as tensor from '@dawngrad/tensor';
import { ref } from '@dawngrad/tensor';
import { defineOp, apply } from '../op.ts';
import type { Var } from '../var.ts';

// table: [V, C], ids: [...] (i32) -> [..., C]
export const EMBEDDING = defineOp<null>({
  name: 'embedding',
  rule: 'dtable[v] = Σ_{n: ids[n] = v} g[n] (a deterministic scatter-add, no atomics); ids get none',
  differentiable: [true, false],
  forward([table, ids]) {
    if (table!.rank !== 2) throw new Error(`embedding: table must be [V, C], got [${table!.shape.join(', ')}]`);
    if (ids!.dtype !== 'i32') throw new Error(`embedding: ids must be i32, got ${ids!.dtype}`);
    const rows = tensor.gatherRows(table!, ids!);
    if (table!.dtype !== 'f16') return rows;
    // an f16 table (mixed precision's frozen embedding): the rows move as f16, then widen exactly to f32
    const wide = tensor.cast(rows, 'f32');
    rows.dispose();
    return wide;
  },
  backward: (g, { inputs: [table, ids], needs }) => [needs[0] ? tensor.scatterAddRows(g, ids!, table!.shape[0]!) : null, null],
  cpu: {
    forward: ([table, ids]) => ref.gatherRows(table!, ids!),
    backward: (g, { inputs: [table, ids] }) => [ref.scatterAddRows(g, ids!, table!.shape[0]!), ref.empty(ids!.shape)],
  },
});

/** Rows of `table` ([V, C]) at `ids` (i32 [...]) -> [..., C]. */
export const embedding = (table: Var, ids: Var) => apply(EMBEDDING, [table, ids], null);
