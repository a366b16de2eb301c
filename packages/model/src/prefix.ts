// A prompt prefix shared by every row of a batch (Batch.prefix), run through the decoder once instead of once per row.
// Its P tokens go through every layer as a batch-1 stream [P, C] beside the rows' suffixes [B*S, C]. Only attention
// mixes the two: each layer broadcasts the prefix's q/k/v to the B rows and puts them in front of the suffix's, so one
// causal attention over P+S positions gives every suffix token exactly the keys it would see in the full row. Every
// other op is per token, so its prefix rows are the same numbers whichever row they sit in: computing them once
// changes nothing but the work. The layer below is DecoderLayer.forward (mistral.ts) with that join around attention.
import { Tensor, fill, concat as concatTensors } from '@dawngrad/tensor';
import { Var, constant, reshape, attention, expand, concat, slice } from '@dawngrad/autograd';
import type { ModelConfig } from './config.ts';
import type { Batch, DecoderLayer, MistralForCausalLM } from './mistral.ts';
import { positionIds } from './modules.ts';

/** The shared prefix as it flows through the decoder beside the rows' suffixes. */
export interface PrefixStream {
  /** its hidden states [P, C]; prefixLayerForward replaces them with the layer's output */
  x: Var;
  /** its RoPE positions, i32 [1, P] */
  positions: Var;
  /** true in the last layer: nothing reads the prefix's output there, so its o_proj and MLP are skipped */
  last?: boolean;
  /** handed each layer's joined keys and values [B, P+S, KV, D] (post-RoPE): the KV cache's prefill stores them */
  onKeysValues?: (k: Var, v: Var) => void;
}

/** Below this many shared tokens the prefix path's extra copies cost about what it saves. */
export const MIN_SHARED_PREFIX = 8;

/**
 * The longest token prefix all prompts share, capped so every prompt keeps at least its last token out of it: that
 * token's logits predict what follows, and logits are computed for suffix rows only.
 */
export function commonPrefixLength(prompts: readonly ArrayLike<number>[]): number {
  if (prompts.length === 0) return 0;
  let prefixLen = Math.min(...prompts.map((p) => p.length - 1));
  const first = prompts[0]!;
  for (const p of prompts) {
    let i = 0;
    while (i < prefixLen && p[i] === first[i]) i++;
    prefixLen = i;
  }
  return Math.max(prefixLen, 0);
}

/**
 * One decoder layer over the suffix rows x: [B*S, C] at `positions` [B, S], with the prefix stream beside them;
 * mask: [B, P+S] -> the suffix rows' output [B*S, C], and the prefix's [P, C] in stream.x unless stream.last.
 */
export function prefixLayerForward(layer: DecoderLayer, x: Var, cfg: ModelConfig, B: number, S: number, positions: Var, mask: Var, stream: PrefixStream): Var {
  const { numAttentionHeads: H, headDim: D } = cfg;
  const prefixLen = stream.x.shape[0]!;
  const own = layer.qkv(x, cfg, B, S, positions); // [B, S, heads, D]
  const shared = layer.qkv(stream.x, cfg, 1, prefixLen, stream.positions); // [1, P, heads, D]
  // [1, P, heads, D] ‖ [B, S, heads, D] -> [B, P+S, heads, D]; expand's backward sums the B rows' gradients into the prefix
  const join = (a: Var, b: Var) => concat([expand(a, [B, ...a.shape.slice(1)]), b], 1);
  const [k, v] = [join(shared.k, own.k), join(shared.v, own.v)]; // [B, P+S, KV, D]
  stream.onKeysValues?.(k, v);
  const a = attention(join(shared.q, own.q), k, v, mask, { window: cfg.slidingWindow }); // [B, P+S, H, D]
  const out = layer.afterAttention(x, reshape(slice(a, [0, prefixLen], [B, prefixLen + S]), [B * S, H * D]), cfg);
  // row 0's copy of the prefix is the prefix's own output; rows 1.. repeat it (and their slice gets no gradient)
  if (!stream.last) stream.x = layer.afterAttention(stream.x, reshape(slice(a, [0, 0], [1, prefixLen]), [prefixLen, H * D]), cfg);
  return out;
}

/**
 * The decoder stack for a batch with a prefix: inputIds/attentionMask [B, S] hold each row's suffix (positions default
 * P..P+S-1) -> the suffix rows' last-layer output [B*S, C], as model.forward's plain decoder gives for those rows.
 */
export function prefixDecoder(model: MistralForCausalLM, batch: Batch): Var {
  const [B, S] = batch.inputIds.shape as [number, number];
  const prefixLen = checkPrefix(batch, B, S);
  const positions = constant(batch.positions ?? positionIds(B, S, prefixLen));
  // mask: the prefix's P real tokens in front of every row's suffix mask -> [B, P+S]
  const mask = constant(concatTensors([fill([B, prefixLen], 1, 'i32'), batch.attentionMask], 1));
  const stream: PrefixStream = { x: model.embed(batch.prefix!.ids), positions: constant(positionIds(1, prefixLen, 0)) };
  let x = model.embed(batch.inputIds); // [B*S, C]
  model.layers.forEach((layer, i) => {
    stream.last = i === model.layers.length - 1;
    x = prefixLayerForward(layer, x, model.config, B, S, positions, mask, stream);
  });
  return x;
}

/** P of a batch's prefix, after checking that its ids are i32 [1, P] and the suffix tensors are [B, S]. */
function checkPrefix(batch: Batch, B: number, S: number): number {
  const ids: Tensor = batch.prefix!.ids;
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (ids.rank !== 2 || ids.shape[0] !== 1 || ids.shape[1]! < 1 || ids.dtype !== 'i32') {
    throw new Error(`forward: prefix.ids must be i32 [1, P] with P ≥ 1, got ${ids.dtype} ${fmt(ids.shape)}`);
  }
  const m = batch.attentionMask.shape;
  if (m.length !== 2 || m[0] !== B || m[1] !== S) {
    throw new Error(`forward: attentionMask ${fmt(m)} must match the suffix ids [${B}, ${S}]`);
  }
  return ids.shape[1]!;
}
