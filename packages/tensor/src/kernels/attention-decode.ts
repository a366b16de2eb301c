// The two kernels of cached (incremental) decoding. After a prefill has stored every layer's post-RoPE keys and values
// in a preallocated cache, each new token only needs its own query against the cache:
//
//   writeRowsAt(dst [B, Tmax, W], src [B, S, W], start i32 [B])         dst[b, start[b] + s, :] = src[b, s, :]  (in place)
//   attentionDecode(q [B, H, D], k, v [B, Tmax, KV, D], mask i32 [B, Tmax], pos i32 [B])  ->  [B, H, D]
//
// writeRowsAt is the scatter that puts each row's new key/value at that row's own offset (rows of a batch have different
// lengths); it moves raw 32-bit words, so the same kernel updates the i32 key mask. Rows past Tmax are skipped.
//
// attentionDecode: the one query of row b, head h attends to the cached keys j ≤ pos[b] with mask[b, j] ≠ 0 of KV head
// floor(h / (H / KV)) (HF's repeat_kv), with a softmax of scale·q·k; with Mistral's sliding window W only to the keys
// pos[b] − W < j ≤ pos[b], as in the full attention op. A row with no allowed key gives zeros. Three
// small dispatches, each a plain serial loop per invocation (lavapipe runs invocations as SIMD lanes): scores, one
// invocation per (b, h, j); the softmax in place, one per (b, h); P·V, one per (b, h, d). Keys outside
// firstKey..lastKey cost nothing (and their scores are never written, so nothing may read them).
// (Not one invocation per (b, h) with an online softmax: its private arrays of D compiled pathologically on lavapipe;
// bench/README.md.) Float64 twins: cpu/attention-decode.ts.
import { grid } from '../runtime.ts';
import { Tensor } from '../tensor.ts';
import { WG, FLAT_INDEX, NEG_INF, kernelFor, flatIndex } from '../kernel.ts';

// invocations per workgroup of the per-(b, h) softmax: B·H is small, and lavapipe runs each workgroup on one thread
const ROW_WG = 8;

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

// dst: [B, Tmax, W], src: [B, S, W], start: i32 [B] -> dst (written in place; also returned)
export function writeRowsAt(dst: Tensor, src: Tensor, start: Tensor): Tensor {
  if (dst.rank !== 3 || src.rank !== 3) throw new Error(`writeRowsAt: dst must be [B, Tmax, W] and src [B, S, W], got ${fmt(dst.shape)} and ${fmt(src.shape)}`);
  const [B, Tmax, W] = dst.shape as [number, number, number];
  const S = src.shape[1]!;
  if (src.shape[0] !== B || src.shape[2] !== W) throw new Error(`writeRowsAt: src ${fmt(src.shape)} must be [${B}, S, ${W}] to match dst ${fmt(dst.shape)}`);
  if (src.dtype !== dst.dtype || dst.dtype === 'f16') throw new Error(`writeRowsAt: dst and src must share a 32-bit dtype, got ${dst.dtype} and ${src.dtype}`);
  if (start.dtype !== 'i32' || start.rank !== 1 || start.shape[0] !== B) throw new Error(`writeRowsAt: start must be i32 [${B}], got ${start.dtype} ${fmt(start.shape)}`);
  const v4 = W % 4 === 0;
  const U = v4 ? 'vec4<u32>' : 'u32';
  const WU = v4 ? W / 4 : W;
  const n = B * S * WU;
  kernelFor(`writeRowsAt:${U}`, () => ({
    params: { n: 'u32', S: 'u32', W: 'u32', T: 'u32' },
    bindings: { Src: U, Start: 'i32', Dst: `rw ${U}` },
    body: `${FLAT_INDEX}
  if (i >= p.n) { return; }
  let w = i % p.W;
  let s = (i / p.W) % p.S;
  let b = i / (p.W * p.S);
  let t = Start[b] + i32(s);
  if (t < 0 || t >= i32(p.T)) { return; } // past the cache: nothing to write
  Dst[(b * p.T + u32(t)) * p.W + w] = Src[i];`,
  })).run({ Src: src, Start: start, Dst: dst }, { n, S, W: WU, T: Tmax }, grid(Math.ceil(n / WG)));
  return dst;
}

export interface DecodeAttentionOptions {
  /** multiplies q·k before the softmax; default 1/√D */
  scale?: number;
  /** Mistral's sliding window W: keys pos − W < j ≤ pos only; null/undefined = every cached key up to pos */
  window?: number | null;
}

// q: [B, H, D], k, v: [B, Tmax, KV, D], mask: i32 [B, Tmax], pos: i32 [B] -> [B, H, D]
export function attentionDecode(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, pos: Tensor, opts: DecodeAttentionOptions = {}): Tensor {
  if (q.rank !== 3) throw new Error(`attentionDecode: q must be [B, H, D], got ${fmt(q.shape)}`);
  const [B, H, D] = q.shape as [number, number, number];
  if (k.rank !== 4 || k.shape[0] !== B || k.shape[3] !== D) throw new Error(`attentionDecode: k must be [${B}, Tmax, KV, ${D}] to match q ${fmt(q.shape)}, got ${fmt(k.shape)}`);
  if (fmt(v.shape) !== fmt(k.shape)) throw new Error(`attentionDecode: v ${fmt(v.shape)} must have the shape of k ${fmt(k.shape)}`);
  const [, Tmax, KV] = k.shape as [number, number, number, number];
  if (KV < 1 || H % KV !== 0) throw new Error(`attentionDecode: query heads (${H}) must be a multiple of KV heads (${KV})`);
  if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== Tmax || mask.dtype !== 'i32') {
    throw new Error(`attentionDecode: mask must be i32 [${B}, ${Tmax}], got ${mask.dtype} ${fmt(mask.shape)}`);
  }
  if (pos.rank !== 1 || pos.shape[0] !== B || pos.dtype !== 'i32') throw new Error(`attentionDecode: pos must be i32 [${B}], got ${pos.dtype} ${fmt(pos.shape)}`);
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new Error(`attentionDecode: ${n} must be f32, got ${t.dtype}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new Error(`attentionDecode: scale must be a finite number, got ${opts.scale}`);
  const window = opts.window ?? null;
  if (window !== null && (!Number.isSafeInteger(window) || window < 1)) throw new Error(`attentionDecode: window must be a positive integer or null, got ${window}`);
  const out = Tensor.empty([B, H, D], 'f32');
  if (out.size === 0 || Tmax === 0) return out;
  // head dims move as vec4 when D allows: a quarter of the loop trips, 16-byte loads
  const v4 = D % 4 === 0;
  const E = v4 ? 'vec4<f32>' : 'f32';
  const DU = v4 ? D / 4 : D;
  const dot = v4 ? 'dot' : 'mul';
  const probs = Tensor.empty([B, H, Tmax], 'f32'); // scores, then probabilities
  // the three kernels share their uniforms and the key range of a row: j ≤ pos[b] inside the cache, and pos[b] − W < j
  // (`name` holds what the body specialises on; the body is built on the kernel's first use only)
  const decodeKernel = (name: string, bindings: Record<string, string>, body: () => string, workgroup = WG) =>
    kernelFor(`attentionDecode.${name}`, () => ({
      workgroupSize: [workgroup],
      params: { n: 'u32', H: 'u32', KV: 'u32', T: 'u32', D: 'u32', window: 'u32', scale: 'f32' },
      bindings,
      decls: `fn mul(a: f32, b: f32) -> f32 { return a * b; }
fn lastKey(b: u32) -> i32 { return min(Pos[b], i32(p.T) - 1); }
fn firstKey(b: u32) -> i32 { return select(0, max(0, Pos[b] - i32(p.window) + 1), p.window > 0u); }`,
      body: `${flatIndex(workgroup)}
  if (i >= p.n) { return; }
${body()}`,
    }));
  // window 0 = none; firstKey handles any other (one that covers every key up to pos gives 0). The kernel reads it as
  // an i32, so a window past i32's range, which covers every position an i32 pos can hold anyway, travels as its max.
  const params = (n: number) => ({ n, H, KV, T: Tmax, D: DU, window: Math.min(window ?? 0, 0x7fffffff), scale });
  // (1) one invocation per (b, h, j ≤ pos[b]): S = scale·q·k_j
  decodeKernel(`scores:${E}`, { Q: E, K: E, Pos: 'i32', S: 'rw f32' }, () => `  let j = i % p.T;
  let bh = i / p.T;
  let b = bh / p.H;
  if (i32(j) > lastKey(b) || i32(j) < firstKey(b)) { return; }
  let g = (bh % p.H) / (p.H / p.KV); // repeat_kv: query head h reads KV head h / (H / KV)
  let kb = ((b * p.T + j) * p.KV + g) * p.D;
  var s = 0.0;
  for (var c = 0u; c < p.D; c++) { s += ${dot}(Q[bh * p.D + c], K[kb + c]); }
  S[i] = p.scale * s;`).run({ Q: q, K: k, Pos: pos, S: probs }, params(B * H * Tmax), grid(Math.ceil((B * H * Tmax) / WG)));
  // (2) one invocation per (b, h): softmax over the allowed keys, in place (0 where the mask says padding)
  decodeKernel('softmax', { M: 'i32', Pos: 'i32', S: 'rw f32' }, () => `  let b = i / p.H;
  let first = firstKey(b);
  let last = lastKey(b);
  var m = ${NEG_INF};
  for (var j = first; j <= last; j++) { if (M[b * p.T + u32(j)] != 0) { m = max(m, S[i * p.T + u32(j)]); } }
  var l = 0.0;
  for (var j = first; j <= last; j++) {
    let e = select(0.0, exp(S[i * p.T + u32(j)] - m), M[b * p.T + u32(j)] != 0);
    S[i * p.T + u32(j)] = e;
    l += e;
  }
  let inv = select(0.0, 1.0 / l, l > 0.0); // no allowed key: zeros
  for (var j = first; j <= last; j++) { S[i * p.T + u32(j)] *= inv; }`, ROW_WG).run({ M: mask, Pos: pos, S: probs }, params(B * H), grid(Math.ceil((B * H) / ROW_WG)));
  // (3) one invocation per (b, h, d): out = Σ_j P_j · v_j
  decodeKernel(`pv:${E}`, { S: 'f32', V: E, Pos: 'i32', O: `rw ${E}` }, () => `  let c = i % p.D;
  let bh = i / p.D;
  let b = bh / p.H;
  let g = (bh % p.H) / (p.H / p.KV);
  var acc = ${E}(0.0);
  for (var j = firstKey(b); j <= lastKey(b); j++) { acc += S[bh * p.T + u32(j)] * V[((b * p.T + u32(j)) * p.KV + g) * p.D + c]; }
  O[i] = acc;`).run({ S: probs, V: v, Pos: pos, O: out }, params(B * H * DU), grid(Math.ceil((B * H * DU) / WG)));
  probs.dispose(); // stream-ordered pool: safe once the reading dispatch is encoded
  return out;
}
