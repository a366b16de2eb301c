// The model's cached path for generation. A prefill runs the prompts through the decoder once and stores every
// layer's post-RoPE keys and values in a preallocated cache; each decode step then runs ONE new token per row: its
// q/k/v, RoPE at the row's own position, the scatter of its k/v into the cache at that position, attention of the single
// query over the cached keys, the MLP and the head — B rows instead of B·T. Forward-only: call inside noGrad.
//
// Layout: rows are right-padded; row b's token t sits at cache position t with RoPE position t, exactly as when the row
// runs alone, and the i32 key mask [B, Tmax] says which cache positions hold real tokens. The layer below is
// DecoderLayer.forward (mistral.ts) with the attention swapped for a function, so both paths share every other op.
// Mistral's sliding window (config.sliding_window = W) applies to both: the prefill's attention and each decode step's
// see only the keys at positions pos − W < j ≤ pos. The cache still keeps every position (a rolling buffer of W would
// save memory only for sequences far longer than the classification prompts this engine generates for).
import { Tensor, zeros, ones, writeRowsAt, attentionDecode, concat } from '@dawngrad/tensor';
import { Var, constant, reshape, rmsNorm, attention, take } from '@dawngrad/autograd';
import type { ModelConfig } from './config.ts';
import type { DecoderLayer, MistralForCausalLM } from './mistral.ts';
import { positionIds } from './modules.ts';
import { prefixLayerForward, type PrefixStream } from './prefix.ts';

/** Keys and values of every layer for B rows of up to maxLen positions, and which positions are filled. */
export class KVCache {
  /** per layer, post-RoPE keys [B, maxLen, KV, D] */
  readonly keys: Tensor[] = [];
  /** per layer, values [B, maxLen, KV, D] */
  readonly values: Tensor[] = [];
  /** 1 where a position holds a real token, i32 [B, maxLen] */
  readonly mask: Tensor;
  /** Mistral's sliding window W (null: none): the attention of a query at position i reads keys i − W < j ≤ i */
  readonly window: number | null;

  constructor(
    cfg: ModelConfig,
    readonly batch: number,
    readonly maxLen: number,
  ) {
    const shape = [batch, maxLen, cfg.numKeyValueHeads, cfg.headDim];
    for (let i = 0; i < cfg.numHiddenLayers; i++) {
      this.keys.push(Tensor.empty(shape, 'f32'));
      this.values.push(Tensor.empty(shape, 'f32'));
    }
    this.mask = zeros([batch, maxLen], 'i32');
    this.window = cfg.slidingWindow;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.mask]) t.dispose();
  }
}

/** The attention of one layer given its q [B, S, H, D], k and v [B, S, KV, D]; returns [B*S, H*D]. */
type Attend = (layer: number, q: Var, k: Var, v: Var) => Var;

// x: [B*S, C] -> [B*S, C]; DecoderLayer.forward with the attention supplied by the caller
function layerForward(l: DecoderLayer, x: Var, cfg: ModelConfig, B: number, S: number, positions: Var, attend: Attend): Var {
  const { q, k, v } = l.qkv(x, cfg, B, S, positions); // q: [B, S, H, D], k and v: [B, S, KV, D]
  return l.afterAttention(x, attend(l.index, q, k, v), cfg);
}

// i32 [rows, n]: positions from, from+1, .. in every row
const positionsFrom = (rows: number, n: number, from: number): Var => constant(positionIds(rows, n, from));

// x: [N, C] -> logits [N, V]
function head(model: MistralForCausalLM, x: Var): Var {
  return model.lmHead.forward(rmsNorm(x, model.norm, model.config.rmsNormEps));
}

/**
 * Run right-padded prompts through the model, filling the cache's positions 0..T-1 and its mask.
 * inputIds, attentionMask: i32 [B, T] (T ≤ cache.maxLen); lastRows: i32 [B], the flat row b*T + len_b - 1 of each prompt's
 * last token -> logits at those rows [B, V]. The same ops as model.forward, so these logits are the forward's.
 */
export function prefill(model: MistralForCausalLM, cache: KVCache, inputIds: Tensor, attentionMask: Tensor, lastRows: Tensor, prefix?: Tensor): Var {
  if (prefix) return prefillShared(model, cache, prefix, inputIds, attentionMask, lastRows);
  const [B, T] = inputIds.shape as [number, number];
  const cfg = model.config;
  if (B !== cache.batch || T > cache.maxLen) throw new Error(`prefill: prompts [${B}, ${T}] do not fit a cache of [${cache.batch}, ${cache.maxLen}]`);
  const start = zeros([B], 'i32');
  const rowsOf = (t: Var) => t.data.reshape([B, T, cfg.numKeyValueHeads * cfg.headDim]);
  const positions = positionsFrom(B, T, 0);
  const mask = constant(attentionMask);
  writeRowsAt(cache.mask.reshape([B, cache.maxLen, 1]), attentionMask.reshape([B, T, 1]), start);
  const attend: Attend = (i, q, k, v) => {
    writeRowsAt(cache.keys[i]!.reshape([B, cache.maxLen, -1]), rowsOf(k), start);
    writeRowsAt(cache.values[i]!.reshape([B, cache.maxLen, -1]), rowsOf(v), start);
    return reshape(attention(q, k, v, mask, { window: cache.window }), [B * T, cfg.numAttentionHeads * cfg.headDim]);
  };
  let x = model.embed(inputIds); // [B*T, C]
  for (const layer of model.layers) x = layerForward(layer, x, cfg, B, T, positions, attend);
  return head(model, take(x, constant(lastRows)));
}

/**
 * prefill() for prompts that all start with the same P tokens (prefix: i32 [1, P]): the prefix runs once, the rows
 * only for their suffixes (inputIds, attentionMask: [B, S], at positions P..; lastRows index the [B*S] suffix rows), as
 * model.forward does with Batch.prefix. Each layer's joined keys and values [B, P+S] fill cache positions 0..P+S-1,
 * so the decode steps that follow see exactly the cache of the plain prefill.
 */
function prefillShared(model: MistralForCausalLM, cache: KVCache, prefix: Tensor, inputIds: Tensor, attentionMask: Tensor, lastRows: Tensor): Var {
  const [B, S] = inputIds.shape as [number, number];
  const prefixLen = prefix.shape[1]!;
  const cfg = model.config;
  if (prefix.rank !== 2 || prefix.shape[0] !== 1 || prefixLen < 1) throw new Error(`prefill: prefix must be i32 [1, P] with P ≥ 1, got [${prefix.shape.join(', ')}]`);
  if (B !== cache.batch || prefixLen + S > cache.maxLen) throw new Error(`prefill: a prefix of ${prefixLen} and suffixes [${B}, ${S}] do not fit a cache of [${cache.batch}, ${cache.maxLen}]`);
  const start = zeros([B], 'i32');
  const mask = concat([ones([B, prefixLen], 'i32'), attentionMask], 1); // [B, P+S]: the prefix is real in every row
  writeRowsAt(cache.mask.reshape([B, cache.maxLen, 1]), mask.reshape([B, prefixLen + S, 1]), start);
  const kvRows = (t: Var) => t.data.reshape([B, prefixLen + S, cfg.numKeyValueHeads * cfg.headDim]);
  const stream: PrefixStream = { x: model.embed(prefix), positions: positionsFrom(1, prefixLen, 0) };
  const suffixPositions = positionsFrom(B, S, prefixLen);
  const maskVar = constant(mask);
  let x = model.embed(inputIds); // [B*S, C]
  model.layers.forEach((layer, i) => {
    stream.last = i === model.layers.length - 1;
    stream.onKeysValues = (k, v) => {
      writeRowsAt(cache.keys[i]!.reshape([B, cache.maxLen, -1]), kvRows(k), start);
      writeRowsAt(cache.values[i]!.reshape([B, cache.maxLen, -1]), kvRows(v), start);
    };
    x = prefixLayerForward(layer, x, cfg, B, S, suffixPositions, maskVar, stream);
  });
  return head(model, take(x, constant(lastRows)));
}

/**
 * One decode step: token ids i32 [B], each written at cache position pos[b] (i32 [B], < cache.maxLen), attending to
 * the cached positions ≤ pos[b] (and > pos[b] − W under a sliding window W) -> logits [B, V].
 */
export function decodeStep(model: MistralForCausalLM, cache: KVCache, ids: Tensor, pos: Tensor): Var {
  const B = cache.batch;
  const cfg = model.config;
  const { numAttentionHeads: H, numKeyValueHeads: KV, headDim: D } = cfg;
  if (ids.size !== B || pos.size !== B) throw new Error(`decodeStep: ids and pos must hold ${B} entries, got ${ids.size} and ${pos.size}`);
  writeRowsAt(cache.mask.reshape([B, cache.maxLen, 1]), ones([B, 1, 1], 'i32'), pos);
  const attend: Attend = (i, q, k, v) => {
    const keys = cache.keys[i]!;
    const values = cache.values[i]!;
    writeRowsAt(keys.reshape([B, cache.maxLen, KV * D]), k.data.reshape([B, 1, KV * D]), pos);
    writeRowsAt(values.reshape([B, cache.maxLen, KV * D]), v.data.reshape([B, 1, KV * D]), pos);
    return constant(attentionDecode(q.data.reshape([B, H, D]), keys, values, cache.mask, pos, { window: cache.window }).reshape([B, H * D]));
  };
  let x = model.embed(ids); // [B, C]
  const positions = constant(pos.reshape([B, 1]));
  for (const layer of model.layers) x = layerForward(layer, x, cfg, B, 1, positions, attend);
  return head(model, x);
}
