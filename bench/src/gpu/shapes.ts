// The matmuls the GPU bench times: square sizes, and the products one LoRA training step of a model makes — read from
// its config.json — in the forms the model passes them (a linear layer is x·Wᵀ with W: [out, in]; autograd's
// backward of op(a)·op(b) gives dx = dy·W and, for LoRA's trained factors, dA = dhᵀ·x and dB = dyᵀ·h).
// rows = B·T (every token goes through every linear); lm_head runs on `answer` rows a sequence only (the loss rows).

import type { MatmulCase } from '../lib/types.ts';

export type { MatmulCase };

export const squares = (sizes: number[]): MatmulCase[] => sizes.map((n) => ({ name: `${n}² A·B`, M: n, N: n, K: n }));

interface ModelDims {
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  vocab_size: number;
}

/** Every distinct matmul of one LoRA (rank r) training step at B × T, forward then backward; equal shapes share a row. */
export function stepMatmuls(cfg: ModelDims, B: number, T: number, r = 8, answer = 2): MatmulCase[] {
  const C = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const D = cfg.head_dim ?? C / cfg.num_attention_heads;
  const Q = cfg.num_attention_heads * D;
  const KV = cfg.num_key_value_heads * D;
  const V = cfg.vocab_size;
  const rows = B * T;
  const loss = B * answer;
  // the block's linear layers: name, in, out
  const linears: [string, number, number][] = [['q', C, Q], ['k/v', C, KV], ['o', Q, C], ['gate/up', C, I], ['down', I, C]];
  const cases: MatmulCase[] = [];
  const add = (c: MatmulCase) => cases.push(c);
  const dims = (a: [number, number], b: [number, number], ta = false, tb = false) =>
    `[${a[0]}×${a[1]}]${ta ? 'ᵀ' : ''}·[${b[0]}×${b[1]}]${tb ? 'ᵀ' : ''}`;

  for (const [n, i, o] of linears) add({ name: `fwd ${n} x·Wᵀ ${dims([rows, i], [o, i], false, true)}`, M: rows, N: o, K: i, transB: true });
  add({ name: `fwd lm_head ${dims([loss, C], [V, C], false, true)}`, M: loss, N: V, K: C, transB: true });
  for (const [n, i] of linears) add({ name: `fwd LoRA ${n} x·Aᵀ ${dims([rows, i], [r, i], false, true)}`, M: rows, N: r, K: i, transB: true });
  for (const [n, , o] of linears) add({ name: `fwd LoRA ${n} h·Bᵀ ${dims([rows, r], [o, r], false, true)}`, M: rows, N: o, K: r, transB: true });

  for (const [n, i, o] of linears) add({ name: `bwd ${n} dx = dy·W ${dims([rows, o], [o, i])}`, M: rows, N: i, K: o });
  add({ name: `bwd lm_head dx = dy·W ${dims([loss, V], [V, C])}`, M: loss, N: C, K: V });
  for (const [n, , o] of linears) add({ name: `bwd LoRA ${n} dh = dy·B ${dims([rows, o], [o, r])}`, M: rows, N: r, K: o });
  for (const [n, i] of linears) add({ name: `bwd LoRA ${n} dx += dh·A ${dims([rows, r], [r, i])}`, M: rows, N: i, K: r });
  for (const [n, i] of linears) add({ name: `bwd LoRA ${n} dA = dhᵀ·x ${dims([rows, r], [rows, i], true)}`, M: r, N: i, K: rows, transA: true });
  for (const [n, , o] of linears) add({ name: `bwd LoRA ${n} dB = dyᵀ·h ${dims([rows, o], [rows, r], true)}`, M: o, N: r, K: rows, transA: true });
  return dedupe(cases);
}

/** One row per distinct (M, N, K, transA, transB): the first name, with the other layers' names joined in. */
function dedupe(cases: MatmulCase[]): MatmulCase[] {
  const byKey = new Map<string, MatmulCase & { layers: string[] }>();
  for (const c of cases) {
    const key = `${c.M},${c.N},${c.K},${!!c.transA},${!!c.transB}`;
    const m = /^(fwd|bwd)( LoRA)? (\S+) (.*)$/.exec(c.name)!;
    const e = byKey.get(key);
    if (e) e.layers.push(m[3]!);
    else byKey.set(key, { ...c, layers: [m[3]!] });
  }
  return [...byKey.values()].map(({ layers, ...c }) => {
    const m = /^(fwd|bwd)( LoRA)? (\S+) (.*)$/.exec(c.name)!;
    return { ...c, name: `${m[1]}${m[2] ?? ''} ${layers.join(', ')} ${m[4]}` };
  });
}
